--
-- no_jit: execguard never JIT-compiles its own statements, whatever the
-- session's jit settings and the tables' sizes, and leaves the user's own
-- statements to the planner. With every jit_*_above_cost at 0, every plan
-- the planner makes asks for JIT; pg_stat_statements (preloaded by the test
-- cluster) records, per statement, how many functions were compiled. The
-- file calls every function of the extension through the paths that run
-- SQL statements (claim, grant, rescue, exhaustion, owner sweep, fenced
-- writes, job operations, submit), and the test command runs it with
-- execguard.direct_writes on and off. Job ids start with 'nj-'. claim_next
-- takes any due row, so the file starts from empty tables.
--
-- Keys are claimed here without submitting their jobs first (the seed's
-- create-on-claim), which execguard.claims_require_submitted_job refuses
-- by default: claim_strict tests that.
SET execguard.claims_require_submitted_job = off;
TRUNCATE execguard.queue, execguard.executions, execguard.jobs, execguard.regions RESTART IDENTITY;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SET pg_stat_statements.track = 'all';
SET jit = on;
SET jit_above_cost = 0;
SET jit_inline_above_cost = 0;
SET jit_optimize_above_cost = 0;
SET execguard.rescue_interval = 0;
-- The server can JIT (Debian's postgresql-15 ships llvmjit), so the test
-- below cannot pass because nothing could have been compiled.
SELECT pg_jit_available() AS jit_available;
SELECT pg_stat_statements_reset() IS NOT NULL AS reset;

-- submit_job: new job, the same spec again, a spec naming an unknown
-- region while execguard.regions lists regions.
SELECT executions_created FROM execguard.submit_job(
    '{"id": "nj-1", "models": ["a", "b"], "regions": ["r1"], "questions": ["q1", "q2", "q3"]}');
SELECT executions_existing FROM execguard.submit_job(
    '{"id": "nj-1", "models": ["a", "b"], "regions": ["r1"], "questions": ["q1", "q2", "q3"]}');
INSERT INTO execguard.regions (name) VALUES ('r1');
SELECT executions_created FROM execguard.submit_job(
    '{"id": "nj-2", "models": ["a"], "regions": ["r-unknown"], "questions": ["q1"]}');
DELETE FROM execguard.regions;

-- claim_execution: a new key, a pending key, a running key, a rescue of an
-- expired lease, a last attempt whose lease expired (exhausted), a
-- cancelled job.
SELECT outcome FROM execguard.claim_execution('nj-new', 'm', 'r', 'q');
SELECT outcome FROM execguard.claim_execution('nj-1', 'a', 'r1', 'q1');
SELECT outcome FROM execguard.claim_execution('nj-1', 'a', 'r1', 'q1');
SELECT outcome FROM execguard.claim_execution('nj-1', 'a', 'r1', 'q2', lease => '1 microsecond');
SELECT pg_sleep(0.01);
SELECT outcome FROM execguard.claim_execution('nj-1', 'a', 'r1', 'q2');
UPDATE execguard.executions SET max_attempts = 1, lease_expires_at = now() - interval '1 second'
 WHERE job_id = 'nj-1' AND model_id = 'a' AND question_id = 'q1';
UPDATE execguard.queue SET lease_expires_at = now() - interval '1 second'
 WHERE execution_id = (SELECT execution_id FROM execguard.executions
                        WHERE job_id = 'nj-1' AND model_id = 'a' AND question_id = 'q1');
SELECT outcome FROM execguard.claim_execution('nj-1', 'a', 'r1', 'q1');

-- claim_next: pending rows, then a rescue of an expired lease and of a
-- claim whose owner is gone.
SELECT count(*) AS claimed FROM execguard.claim_next('w', 2, regions => '{r1}', models => '{b}');
SELECT execution_id AS gone_id FROM execguard.claim_execution('nj-gone', 'm', 'r', 'q', track_owner => true) \gset
UPDATE execguard.executions SET owner_pid = 2147483000 WHERE execution_id = :gone_id;
SELECT outcome FROM execguard.claim_execution('nj-expire', 'm', 'r', 'q', lease => '1 microsecond');
SELECT pg_sleep(0.01);
SELECT count(*) AS claimed FROM execguard.claim_next('w', 10);

-- Fenced writes: heartbeat, complete, complete_executions, fail (retry and
-- final), release, execution_state; each also with a stale token.
SELECT execution_id AS id1, fencing_token AS t1 FROM execguard.claim_execution('nj-w', 'm', 'r', 'q1') \gset
SELECT execution_id AS id2, fencing_token AS t2 FROM execguard.claim_execution('nj-w', 'm', 'r', 'q2') \gset
SELECT execution_id AS id3, fencing_token AS t3 FROM execguard.claim_execution('nj-w', 'm', 'r', 'q3') \gset
SELECT execution_id AS id4, fencing_token AS t4 FROM execguard.claim_execution('nj-w', 'm', 'r', 'q4') \gset
SELECT execution_id AS id5, fencing_token AS t5 FROM execguard.claim_execution('nj-w', 'm', 'r', 'q5') \gset
SELECT execguard.heartbeat(:id1, :t1) AS beat, execguard.heartbeat(:id1, :t1 + 1) AS stale_beat;
SELECT execguard.execution_state(:id1, :t1) AS state;
SELECT execguard.complete_execution(:id1, :t1, '{"text": "4"}') AS completed;
SELECT execguard.complete_execution(:id1, :t1, '{"text": "5"}') AS completed_again;
SELECT accepted FROM execguard.complete_executions(ARRAY[:id2, :id1]::bigint[], ARRAY[:t2, :t1]::bigint[],
                                                   ARRAY['{}', '{}']::jsonb[]) ORDER BY execution_id;
SELECT execguard.fail_execution(:id3, :t3, 'rate limited', retry_after => '1 hour') AS outcome;
SELECT execguard.fail_execution(:id4, :t4, 'bad input', retryable => false) AS outcome;
SELECT execguard.release_execution(:id5, :t5) AS released;

-- Job operations.
SELECT execguard.cancel_job('nj-1') AS cancelled;
SELECT outcome FROM execguard.claim_execution('nj-1', 'b', 'r1', 'q3');
SELECT execguard.retry_job('nj-w') AS retried;
-- Retention: every job is finished (cancelled, completed or failed) now or
-- not; age 0 purges those that are, through all three statements.
SELECT jobs_purged > 0 AS purged, executions_deleted > 0 AS deleted FROM execguard.purge_jobs('0');

-- Reading functions.
SELECT count(*) AS statuses FROM execguard.queue_summary();
SELECT duplicates_prevented_claim > 0 AS counted FROM execguard.stats;
SELECT jsonb_array_length(execguard.normalize_models('["a", "A"]')) AS models;

-- Not one nested statement was compiled, although the file ran many of
-- execguard's and, on the SQL path, the foreign-key checks that PostgreSQL
-- runs for them; while the statements the file itself sent were compiled:
-- the settings did ask for JIT, and the user's statements keep it.
SELECT count(*) FILTER (WHERE NOT toplevel AND query LIKE '%execguard.%') > 10 AS execguard_statements_ran,
       count(*) FILTER (WHERE NOT toplevel AND jit_functions > 0) AS nested_statements_compiled,
       count(*) FILTER (WHERE toplevel AND jit_functions > 0) > 0 AS user_statements_compiled
  FROM pg_stat_statements
 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database());

\i sql/include/queue_in_step.sql
DROP EXTENSION pg_stat_statements;
