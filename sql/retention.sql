--
-- retention: purge_jobs deletes the executions of jobs that finished
-- longer ago than older_than, at most max_executions per call, and leaves
-- the job rows as tombstones that claims, submit_job and retry_job
-- respect; the procedure purge repeats it with a commit after each batch.
-- Job ids start with 'rt-'.
--
TRUNCATE execguard.queue, execguard.executions, execguard.jobs, execguard.regions RESTART IDENTITY;
SELECT executions_purged AS purged_before FROM execguard.stats \gset
-- rt-done: 5 units completed. rt-failed: 1 unit failed. rt-cancelled:
-- cancelled. rt-running: one unit still running. rt-pending: not started.
SELECT count(*) AS submitted FROM (
    SELECT execguard.submit_job(spec::jsonb) FROM (VALUES
        ('{"id": "rt-done", "models": ["m"], "regions": ["r"], "questions": ["q1", "q2", "q3", "q4", "q5"]}'),
        ('{"id": "rt-failed", "models": ["m"], "regions": ["r"], "questions": ["q1"], "max_attempts": 1}'),
        ('{"id": "rt-cancelled", "models": ["m"], "regions": ["r"], "questions": ["q1", "q2"]}'),
        ('{"id": "rt-running", "models": ["m"], "regions": ["r"], "questions": ["q1", "q2"]}'),
        ('{"id": "rt-pending", "models": ["m"], "regions": ["r"], "questions": ["q1"]}')) AS s(spec)) AS s;
SELECT count(*) FILTER (WHERE execguard.complete_execution(c.execution_id, c.fencing_token, '{"ok": true}')) AS completed
  FROM execguard.claim_next('w', 5, models => '{m}') AS c;
SELECT execguard.fail_execution(c.execution_id, c.fencing_token, 'bad input', retryable => false) AS failed
  FROM execguard.claim_execution('rt-failed', 'm', 'r', 'q1') AS c;
SELECT execguard.cancel_job('rt-cancelled') AS cancelled;
SELECT count(*) FILTER (WHERE execguard.complete_execution(c.execution_id, c.fencing_token, '{"ok": true}')) AS completed
  FROM execguard.claim_execution('rt-running', 'm', 'r', 'q1') AS c;
SELECT outcome FROM execguard.claim_execution('rt-running', 'm', 'r', 'q2');

-- Nothing finished an hour ago: nothing to purge.
SELECT * FROM execguard.purge_jobs('1 hour');
-- Two days pass.
UPDATE execguard.jobs SET submitted_at = submitted_at - interval '2 days',
                          cancelled_at = cancelled_at - interval '2 days';
UPDATE execguard.executions SET finished_at = finished_at - interval '2 days' WHERE finished_at IS NOT NULL;

-- At most max_executions per call; the oldest finished jobs first.
SELECT * FROM execguard.purge_jobs('1 day', 3);
SELECT job_id, purged_at IS NOT NULL AS purged, purge_finished_at IS NOT NULL AS purge_finished
  FROM execguard.jobs ORDER BY job_id;
SELECT * FROM execguard.purge_jobs('1 day', 3);
SELECT * FROM execguard.purge_jobs('1 day', 3);
SELECT * FROM execguard.purge_jobs('1 day', 3);
-- What is left: the unfinished jobs, whole.
SELECT job_id, question_id, status FROM execguard.executions ORDER BY execution_id;
SELECT job_id, purged_at IS NOT NULL AS purged, purge_finished_at IS NOT NULL AS purge_finished
  FROM execguard.jobs ORDER BY job_id;
SELECT executions_purged - :purged_before AS purged_counted FROM execguard.stats;

-- A purged job's work is never done again: its keys are refused (with or
-- without create-on-claim, on both write paths), a resubmission is an
-- error, a retry does nothing.
SELECT outcome, execution_id FROM execguard.claim_execution('rt-done', 'm', 'r', 'q1');
SET execguard.claims_require_submitted_job = off;
SELECT outcome, execution_id FROM execguard.claim_execution('rt-done', 'm', 'r', 'q1');
SET execguard.direct_writes = off;
SELECT outcome, execution_id FROM execguard.claim_execution('rt-done', 'm', 'r', 'q2');
RESET execguard.direct_writes;
RESET execguard.claims_require_submitted_job;
\set VERBOSITY terse
SELECT * FROM execguard.submit_job(
    '{"id": "rt-done", "models": ["m"], "regions": ["r"], "questions": ["q1", "q2", "q3", "q4", "q5"]}');
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.retry_job('rt-failed') AS retried;
SELECT count(*) AS recreated FROM execguard.executions WHERE job_id IN ('rt-done', 'rt-failed');

-- The procedure purges until nothing is left, committing each batch: once
-- rt-running finishes and two more days pass, it goes too.
SELECT execguard.complete_execution(execution_id, fencing_token, '{"ok": true}') AS completed
  FROM execguard.executions WHERE job_id = 'rt-running' AND status = 'running';
UPDATE execguard.jobs SET submitted_at = submitted_at - interval '2 days' WHERE job_id = 'rt-running';
UPDATE execguard.executions SET finished_at = finished_at - interval '2 days' WHERE job_id = 'rt-running';
CALL execguard.purge('1 day', 1);
SELECT job_id, purged_at IS NOT NULL AS purged, purge_finished_at IS NOT NULL AS purge_finished
  FROM execguard.jobs ORDER BY job_id;
SELECT job_id, status FROM execguard.executions ORDER BY execution_id;

-- Errors: inside a transaction block the procedure cannot commit; the
-- arguments are checked.
\set VERBOSITY terse
BEGIN;
CALL execguard.purge('1 day');
ROLLBACK;
SELECT * FROM execguard.purge_jobs('-1 day');
SELECT * FROM execguard.purge_jobs('1 day', 0);
SELECT * FROM execguard.purge_jobs(NULL);
\set VERBOSITY default
