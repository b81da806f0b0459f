--
-- hardening: the direct writes refuse or fall back to SQL exactly where
-- the SQL statements would (read-only transactions, a foreign key a DBA
-- added, rules), each case on both paths; and the functions act only on
-- the extension's own tables, so renaming schemas cannot redirect them.
-- Runs as a superuser (it alters the extension's tables). Job ids start
-- with 'hd-'.
--
TRUNCATE execguard.queue, execguard.executions, execguard.jobs, execguard.regions RESTART IDENTITY;
SELECT executions_created FROM execguard.submit_job(
    '{"id": "hd-1", "models": ["m"], "regions": ["r"], "questions": ["q1", "q2", "q3", "q4"]}');
SELECT execution_id AS id1, fencing_token AS t1 FROM execguard.claim_execution('hd-1', 'm', 'r', 'q1') \gset

-- A read-only transaction (or a hot standby) writes nothing, on both paths.
\set VERBOSITY terse
BEGIN READ ONLY;
SET LOCAL execguard.direct_writes = on;
SELECT execguard.complete_execution(:id1, :t1, '{"answer": "forged"}');
ROLLBACK;
BEGIN READ ONLY;
SET LOCAL execguard.direct_writes = off;
SELECT execguard.complete_execution(:id1, :t1, '{"answer": "forged"}');
ROLLBACK;
BEGIN READ ONLY;
SET LOCAL execguard.direct_writes = on;
SELECT execguard.heartbeat(:id1, :t1);
ROLLBACK;
BEGIN READ ONLY;
SET LOCAL execguard.direct_writes = on;
SELECT count(*) FROM execguard.claim_next('w');
ROLLBACK;
BEGIN READ ONLY;
SET LOCAL execguard.direct_writes = off;
SELECT count(*) FROM execguard.claim_next('w');
ROLLBACK;
BEGIN READ ONLY;
SET LOCAL execguard.direct_writes = on;
SELECT outcome FROM execguard.claim_execution('hd-1', 'm', 'r', 'q2');
ROLLBACK;
\set VERBOSITY default
SELECT question_id, status, result FROM execguard.executions ORDER BY execution_id;

-- A foreign key a DBA added (every execution's job must have a row) is
-- checked on both paths when a claim creates a key.
ALTER TABLE execguard.executions
    ADD CONSTRAINT hd_job_exists FOREIGN KEY (job_id) REFERENCES execguard.jobs (job_id);
SET execguard.claims_require_submitted_job = off;
\set VERBOSITY terse
BEGIN;
SET LOCAL execguard.direct_writes = on;
SELECT outcome FROM execguard.claim_execution('hd-no-job', 'm', 'r');
ROLLBACK;
BEGIN;
SET LOCAL execguard.direct_writes = off;
SELECT outcome FROM execguard.claim_execution('hd-no-job', 'm', 'r');
ROLLBACK;
\set VERBOSITY default
RESET execguard.claims_require_submitted_job;
-- Writes the key allows go on, on both paths.
BEGIN;
SET LOCAL execguard.direct_writes = on;
SELECT execguard.complete_execution(:id1, :t1, '{"answer": 1}') AS completed;
SET LOCAL execguard.direct_writes = off;
SELECT outcome FROM execguard.claim_execution('hd-1', 'm', 'r', 'q2');
COMMIT;
ALTER TABLE execguard.executions DROP CONSTRAINT hd_job_exists;

-- A rule on the table: the SQL statements (data-modifying WITH) refuse a
-- DO ALSO rule, and so do the direct writes, which take the SQL path.
SELECT execution_id AS id4, fencing_token AS t4 FROM execguard.claim_execution('hd-1', 'm', 'r', 'q4') \gset
CREATE TABLE hd_log (execution_id bigint, status text);
CREATE RULE hd_audit AS ON UPDATE TO execguard.executions
    DO ALSO INSERT INTO hd_log VALUES (new.execution_id, new.status);
\set VERBOSITY terse
BEGIN;
SET LOCAL execguard.direct_writes = on;
SELECT execguard.complete_execution(:id4, :t4, '{"answer": 4}');
ROLLBACK;
BEGIN;
SET LOCAL execguard.direct_writes = off;
SELECT execguard.complete_execution(:id4, :t4, '{"answer": 4}');
ROLLBACK;
BEGIN;
SET LOCAL execguard.direct_writes = on;
SELECT execguard.heartbeat(:id4, :t4);
ROLLBACK;
BEGIN;
SET LOCAL execguard.direct_writes = on;
SELECT count(*) FROM execguard.claim_next('w');
ROLLBACK;
\set VERBOSITY default
DROP RULE hd_audit ON execguard.executions;
SELECT count(*) AS logged FROM hd_log;
DROP TABLE hd_log;

-- A generated column a DBA added is computed on both paths (the direct
-- writes hand such a table to SQL).
ALTER TABLE execguard.executions ADD COLUMN hd_question_length int
    GENERATED ALWAYS AS (length(question_id)) STORED;
SET execguard.claims_require_submitted_job = off;
BEGIN;
SET LOCAL execguard.direct_writes = on;
SELECT outcome FROM execguard.claim_execution('hd-gen', 'm', 'r', 'direct');
SET LOCAL execguard.direct_writes = off;
SELECT outcome FROM execguard.claim_execution('hd-gen', 'm', 'r', 'sql path');
COMMIT;
RESET execguard.claims_require_submitted_job;
SELECT question_id, hd_question_length FROM execguard.executions WHERE job_id = 'hd-gen' ORDER BY question_id;
ALTER TABLE execguard.executions DROP COLUMN hd_question_length;

-- Row-level security, even forced, binds neither path: the functions run as
-- the extension's owner, a superuser, as the SQL statements do.
ALTER TABLE execguard.executions ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY hd_nothing ON execguard.executions USING (false);
SELECT execution_id AS g1, fencing_token AS gt1 FROM execguard.executions WHERE job_id = 'hd-gen' AND question_id = 'direct' \gset
SELECT execution_id AS g2, fencing_token AS gt2 FROM execguard.executions WHERE job_id = 'hd-gen' AND question_id = 'sql path' \gset
BEGIN;
SET LOCAL execguard.direct_writes = on;
SELECT execguard.complete_execution(:g1, :gt1, '{"answer": 1}') AS completed;
SET LOCAL execguard.direct_writes = off;
SELECT execguard.complete_execution(:g2, :gt2, '{"answer": 2}') AS completed;
COMMIT;
DROP POLICY hd_nothing ON execguard.executions;
ALTER TABLE execguard.executions DISABLE ROW LEVEL SECURITY, NO FORCE ROW LEVEL SECURITY;
SELECT question_id, status, result FROM execguard.executions WHERE job_id = 'hd-gen' ORDER BY question_id;

-- Renaming the extension's schema and planting look-alike tables under the
-- name execguard does not redirect the SECURITY DEFINER functions: they
-- refuse, naming the relation, until the schemas are put back.
ALTER SCHEMA execguard RENAME TO hd_real;
CREATE SCHEMA execguard;
CREATE TABLE execguard.executions (LIKE hd_real.executions INCLUDING ALL);
CREATE TABLE execguard.jobs (LIKE hd_real.jobs INCLUDING ALL);
CREATE TABLE execguard.queue (LIKE hd_real.queue INCLUDING ALL);
CREATE TABLE execguard.regions (LIKE hd_real.regions INCLUDING ALL);
SELECT hd_real.cancel_job('hd-1');
\echo :LAST_ERROR_SQLSTATE
SELECT outcome FROM hd_real.claim_execution('hd-1', 'm', 'r', 'q3');
SELECT count(*) FROM hd_real.claim_next('w');
SELECT count(*) AS planted_rows FROM execguard.jobs;
DROP SCHEMA execguard CASCADE;
ALTER SCHEMA hd_real RENAME TO execguard;
SELECT outcome FROM execguard.claim_execution('hd-1', 'm', 'r', 'q3');

-- A claim made with the defaults is not tied to the session that made it
-- (track_owner defaults to false): a worker that opens a connection per
-- request, or whose pool closes idle connections, keeps its claim when
-- that connection ends. Only the lease can end it.
SELECT executions_created FROM execguard.submit_job(
    '{"id": "hd-own", "models": ["m"], "regions": ["r"], "questions": ["q"]}');
SELECT outcome, fencing_token FROM execguard.claim_execution('hd-own', 'm', 'r', 'q', 'per-request-worker');
SELECT owner_pid IS NULL AS untracked FROM execguard.executions WHERE job_id = 'hd-own';
\c -
SELECT pg_sleep(0.2);
SELECT outcome, fencing_token, attempt FROM execguard.claim_execution('hd-own', 'm', 'r', 'q', 'another-worker');
SELECT count(*) AS rescued FROM execguard.claim_next('another-worker', 10, models => '{m}', regions => '{r}');
SELECT worker, attempt, fencing_token FROM execguard.executions WHERE job_id = 'hd-own';
