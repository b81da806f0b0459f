--
-- direct_writes: claim_next's scan of pending rows, claim_execution's new
-- keys, complete_execution(s) and heartbeat write execguard.executions
-- through the table access method (execguard.direct_writes, on by
-- default). What an UPDATE or INSERT statement would enforce still holds:
-- constraints a DBA adds are checked, defaults are applied, and a table
-- with triggers takes the SQL path, so the triggers fire. (The whole suite
-- also runs with the setting off.)
-- Job ids start with 'dw-'.
--
-- Keys are claimed here without submitting their jobs first (the seed's
-- create-on-claim), which execguard.claims_require_submitted_job refuses
-- by default: claim_strict tests that.
SET execguard.claims_require_submitted_job = off;
TRUNCATE execguard.queue, execguard.executions, execguard.jobs, execguard.regions RESTART IDENTITY;
-- A session's first claim_next runs the rescue pass; later ones take the
-- direct busy path, which is what this file exercises.
SET execguard.rescue_interval = '1min';
SELECT count(*) AS claimed FROM execguard.claim_next('dw-warm-up', 1);

SELECT executions_created FROM execguard.submit_job(
    '{"id": "dw-1", "models": ["a", "b"], "regions": ["r1", "r2"], "questions": ["q1", "q2"]}');

-- The busy path: oldest first, filters canonicalised, one grant each.
SELECT model_id, region, question_id, fencing_token, attempt
  FROM execguard.claim_next('w1', 2, regions => '{" R2 "}', track_owner => true) ORDER BY execution_id;
SELECT model_id, region, question_id, fencing_token, attempt
  FROM execguard.claim_next('w1', 1, models => '{B}', track_owner => true);
SELECT question_id, status, worker, attempt, fencing_token, owner_pid = pg_backend_pid() AS owner_is_me,
       lease_expires_at BETWEEN now() + interval '59 seconds' AND now() + interval '61 seconds' AS leased,
       started_at IS NOT NULL AS started, not_before IS NULL AS due
  FROM execguard.executions WHERE status = 'running' ORDER BY execution_id;

-- Holder writes: a heartbeat extends the lease; complete stores the result
-- once; every stale token is refused and counted.
SELECT execution_id AS h_id, fencing_token AS h_token FROM execguard.executions
 WHERE status = 'running' ORDER BY execution_id LIMIT 1 \gset
SELECT stale_writes_rejected AS stale_before FROM execguard.stats \gset
SELECT execguard.heartbeat(:h_id, :h_token, '2 hours') AS held,
       execguard.heartbeat(:h_id, :h_token + 1) AS stale_held;
SELECT lease_expires_at > now() + interval '119 minutes' AS extended FROM execguard.executions WHERE execution_id = :h_id;
SELECT execguard.complete_execution(:h_id, :h_token + 1, '{"answer": "stale"}') AS stale_accepted,
       execguard.complete_execution(:h_id, :h_token, '{"answer": 1}') AS accepted,
       execguard.complete_execution(:h_id, :h_token, '{"answer": 2}') AS again_accepted;
SELECT status, result, owner_pid IS NULL AS owner_cleared, finished_at IS NOT NULL AS finished
  FROM execguard.executions WHERE execution_id = :h_id;
SELECT stale_writes_rejected - :stale_before AS stale_counted FROM execguard.stats;
SELECT e.question_id, d.accepted
  FROM execguard.complete_executions(
         (SELECT array_agg(execution_id ORDER BY execution_id) FROM execguard.executions WHERE status = 'running'),
         (SELECT array_agg(fencing_token ORDER BY execution_id) FROM execguard.executions WHERE status = 'running'),
         (SELECT array_agg('{}'::jsonb) FROM execguard.executions WHERE status = 'running')) AS d
  JOIN execguard.executions AS e USING (execution_id) ORDER BY e.execution_id;

-- A constraint a DBA adds is enforced on direct writes, by its own name,
-- and forgotten once dropped. (NOT VALID: existing rows are not checked,
-- every new version is.)
ALTER TABLE execguard.executions
    ADD CONSTRAINT dw_no_forbidden_worker CHECK (worker IS DISTINCT FROM 'forbidden') NOT VALID,
    ADD CONSTRAINT dw_result_has_answer CHECK (result IS NULL OR result ? 'answer') NOT VALID;
\set VERBOSITY terse
SELECT question_id FROM execguard.claim_next('forbidden', 1);
SELECT outcome FROM execguard.claim_execution('dw-refused', 'm', 'r', 'q', 'forbidden');
SELECT execution_id AS c_id, fencing_token AS c_token FROM execguard.claim_next('w2', 1) \gset
SELECT execguard.complete_execution(:c_id, :c_token, '{"no": "answer"}');
\set VERBOSITY default
SELECT execguard.complete_execution(:c_id, :c_token, '{"answer": 3}') AS accepted;
-- An error inside a direct write, caught by a subtransaction: the write is
-- undone, nothing it opened is left behind, and the session claims on.
DO $$
DECLARE
    granted int;
BEGIN
    BEGIN
        PERFORM execguard.claim_next('forbidden', 1);
    EXCEPTION WHEN check_violation THEN
        RAISE NOTICE 'refused: %', SQLERRM;
    END;
    SELECT count(*) INTO granted FROM execguard.claim_next('w2', 1);
    RAISE NOTICE 'granted after the refusal: %', granted;
END
$$;
ALTER TABLE execguard.executions DROP CONSTRAINT dw_no_forbidden_worker, DROP CONSTRAINT dw_result_has_answer;
SELECT count(*) AS refused_rows FROM execguard.executions WHERE job_id = 'dw-refused';
SELECT model_id, region, question_id FROM execguard.claim_next('forbidden', 1);
SELECT model_id, region, question_id FROM execguard.claim_next('w2', 10) ORDER BY execution_id;

-- claim_execution creates a key never seen as an INSERT would: the
-- columns it leaves out take their defaults, as they are now (a changed
-- default, a DBA's column, a dropped column), and both paths write the
-- same row and the same queue row. 'before' plans the defaults.
SELECT outcome, fencing_token, attempt FROM execguard.claim_execution('dw-new', 'm', 'r', 'before', 'w5', track_owner => true);
ALTER TABLE execguard.executions ALTER COLUMN payload SET DEFAULT '{"from": "default"}',
    ADD COLUMN dw_note text DEFAULT 'noted';
BEGIN;
SET LOCAL execguard.direct_writes = on;
SELECT outcome, fencing_token, attempt FROM execguard.claim_execution('dw-new', 'm', 'r', 'direct', 'w5', track_owner => true);
SET LOCAL execguard.direct_writes = off;
SELECT outcome, fencing_token, attempt FROM execguard.claim_execution('dw-new', 'm', 'r', 'sql', 'w5', track_owner => true);
SELECT question_id, status, attempt, max_attempts, fencing_token, worker, owner_pid = pg_backend_pid() AS owner_is_me,
       lease_expires_at = now() + interval '60 seconds' AS leased, started_at = now() AS started,
       created_at = now() AS created, payload, dw_note, not_before, result, error, finished_at
  FROM execguard.executions WHERE job_id = 'dw-new' AND question_id <> 'before' ORDER BY question_id;
COMMIT;
ALTER TABLE execguard.executions ALTER COLUMN payload SET DEFAULT '{}', DROP COLUMN dw_note;
SELECT outcome, fencing_token, attempt FROM execguard.claim_execution('dw-new', 'm', 'r', 'after', 'w5');
SELECT e.question_id, e.payload, q.lease_expires_at = e.lease_expires_at AS queued_running
  FROM execguard.executions AS e LEFT JOIN execguard.queue AS q USING (execution_id)
 WHERE e.job_id = 'dw-new' ORDER BY e.execution_id;
-- A key of a submitted job takes the job's max_attempts; once the job is
-- cancelled, a new key is refused and not written.
SELECT executions_created FROM execguard.submit_job(
    '{"id": "dw-job", "models": ["m"], "regions": ["r"], "questions": ["listed"], "max_attempts": 5}');
SELECT outcome, fencing_token, attempt FROM execguard.claim_execution('dw-job', 'm', 'r', 'unlisted', 'w5');
SELECT execguard.cancel_job('dw-job') AS cancelled;
SELECT outcome, execution_id IS NULL AS no_row FROM execguard.claim_execution('dw-job', 'm', 'r', 'late', 'w5');
SELECT question_id, status, max_attempts FROM execguard.executions WHERE job_id = 'dw-job' ORDER BY question_id;

-- A trigger on the table: claims, completions and heartbeats run as SQL
-- statements, so the trigger sees every one of them. pg_temp.work_one
-- submits a job, claims one of its executions, heartbeats and completes it.
CREATE FUNCTION pg_temp.work_one(job text, questions jsonb, worker text,
                                 OUT execution_id bigint, OUT held boolean, OUT accepted boolean)
LANGUAGE plpgsql AS $$
DECLARE
    token bigint;
BEGIN
    PERFORM execguard.submit_job(jsonb_build_object('id', job, 'models', '["m"]'::jsonb,
                                                    'regions', '["r"]'::jsonb, 'questions', questions));
    SELECT c.execution_id, c.fencing_token INTO execution_id, token FROM execguard.claim_next(worker, 1) AS c;
    held := execguard.heartbeat(execution_id, token);
    accepted := execguard.complete_execution(execution_id, token, '{"answer": 4}');
END
$$;
CREATE TABLE pg_temp.dw_audit (execution_id bigint, old_status text, new_status text);
CREATE FUNCTION pg_temp.dw_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pg_temp.dw_audit VALUES (NEW.execution_id, OLD.status, NEW.status);
    RETURN NEW;
END
$$;
CREATE TRIGGER dw_audit AFTER UPDATE ON execguard.executions
    FOR EACH ROW EXECUTE FUNCTION pg_temp.dw_audit_row();
SELECT held, accepted FROM pg_temp.work_one('dw-trigger', '["q1", "q2"]', 'w3');
SELECT e.job_id, e.question_id, a.old_status, a.new_status
  FROM pg_temp.dw_audit AS a JOIN execguard.executions AS e USING (execution_id) ORDER BY a.ctid;
DROP TRIGGER dw_audit ON execguard.executions;
SELECT question_id FROM execguard.claim_next('w3', 1);
SELECT count(*) AS audited_after_drop FROM pg_temp.dw_audit;

-- The same for a trigger on execguard.queue, which every claim, heartbeat
-- and completion writes too. (The foreign key's own triggers on both
-- tables do not send the writes to SQL: they do nothing for them.)
CREATE TABLE pg_temp.dw_queue_audit (op text, execution_id bigint, running boolean);
CREATE FUNCTION pg_temp.dw_queue_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO pg_temp.dw_queue_audit VALUES (TG_OP, OLD.execution_id, NULL);
    ELSE
        INSERT INTO pg_temp.dw_queue_audit VALUES (TG_OP, NEW.execution_id, NEW.lease_expires_at IS NOT NULL);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER dw_queue_audit AFTER UPDATE OR DELETE ON execguard.queue
    FOR EACH ROW EXECUTE FUNCTION pg_temp.dw_queue_audit_row();
SELECT execution_id AS u_id, held, accepted FROM pg_temp.work_one('dw-queue-trigger', '["q1"]', 'w4') \gset
SELECT :'held' AS held, :'accepted' AS accepted;
SELECT op, execution_id = :u_id AS this_execution, running FROM pg_temp.dw_queue_audit ORDER BY ctid;
DROP TRIGGER dw_queue_audit ON execguard.queue;

SELECT job_id, question_id, status, fencing_token, attempt FROM execguard.executions ORDER BY execution_id;

\i sql/include/queue_in_step.sql
