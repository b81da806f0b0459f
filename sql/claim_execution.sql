--
-- claim_execution: every outcome, key canonicalisation, owner tracking.
-- Job ids start with 'ce-'. Only a grant (claimed, reclaimed) returns a
-- fencing token.
--
-- Keys are claimed here without submitting their jobs first (the seed's
-- create-on-claim), which execguard.claims_require_submitted_job refuses
-- by default: claim_strict tests that.
SET execguard.claims_require_submitted_job = off;
TRUNCATE execguard.queue, execguard.executions, execguard.jobs, execguard.regions RESTART IDENTITY;

-- The state of one key, without timestamps or pids.
CREATE FUNCTION pg_temp.row_of(job text)
RETURNS TABLE (model_id text, region text, question_id text, status text, attempt int, fencing_token bigint,
               worker text, has_owner boolean, lease_in_future boolean)
LANGUAGE sql AS $$
    SELECT model_id, region, question_id, status, attempt, fencing_token, worker,
           owner_pid IS NOT NULL, lease_expires_at > now()
      FROM execguard.executions WHERE job_id = job
     ORDER BY model_id, region, question_id
$$;

-- claimed: a key never seen is created running with token 1, attempt 1.
SELECT outcome, execution_id IS NOT NULL AS has_id, fencing_token, attempt
  FROM execguard.claim_execution('ce-new', 'llama3.2-1b', 'us-east', 'q1', 'worker-a', track_owner => true);
SELECT * FROM pg_temp.row_of('ce-new');
-- With track_owner => true the row records this backend as its owner.
SELECT owner_pid = pg_backend_pid() AS owner_is_me,
       owner_backend_start = (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()) AS start_is_mine
  FROM execguard.executions WHERE job_id = 'ce-new';

-- running: the same key again is a duplicate; no token, the id and attempt shown.
SELECT outcome, execution_id = (SELECT execution_id FROM execguard.executions WHERE job_id = 'ce-new') AS same_id,
       fencing_token, attempt
  FROM execguard.claim_execution('ce-new', 'llama3.2-1b', 'us-east', 'q1', 'worker-b');
-- Nothing changed.
SELECT * FROM pg_temp.row_of('ce-new');

-- Key canonicalisation, as normalize_models: model and region are trimmed
-- and lower-cased ('QWEN ' = 'qwen'); job and question ids only trimmed.
SELECT outcome FROM execguard.claim_execution('ce-canon', 'qwen', 'us-east');
SELECT outcome FROM execguard.claim_execution('ce-canon', 'QWEN ', ' US-East');
SELECT outcome FROM execguard.claim_execution(' ce-canon ', 'Qwen', 'US-EAST', '');
SELECT outcome FROM execguard.claim_execution('ce-canon', 'qwen', 'us-east', '   ');
SELECT outcome FROM execguard.claim_execution('CE-CANON', 'qwen', 'us-east');
SELECT outcome FROM execguard.claim_execution('ce-canon', 'qwen', 'us-east', 'Q1');
SELECT outcome FROM execguard.claim_execution('ce-canon', 'qwen', 'us-east', ' Q1 ');
SELECT outcome FROM execguard.claim_execution('ce-canon', 'qwen', 'us-east', 'q1');
SELECT job_id, model_id, region, question_id, status FROM execguard.executions
 WHERE job_id IN ('ce-canon', 'CE-CANON') ORDER BY job_id, question_id;

-- claimed from pending: a submitted unit that is due.
SELECT executions_created FROM execguard.submit_job('{"id": "ce-pending", "models": ["llama3.2-1b", "qwen2.5-1.5b"],
    "regions": ["us-east"], "benchmark": {"input": {"data": {"prompt": "Hello"}}}}');
SELECT outcome, fencing_token, attempt FROM execguard.claim_execution('ce-pending', 'LLAMA3.2-1B', 'us-east');
SELECT * FROM pg_temp.row_of('ce-pending');
-- The payload written by submit_job survives the grant.
SELECT payload ->> 'prompt' AS prompt FROM execguard.executions WHERE job_id = 'ce-pending' AND model_id = 'llama3.2-1b';

-- completed: a duplicate that returns the execution id, so the caller can
-- read the stored result; never a token.
SELECT execution_id AS done_id, fencing_token AS done_token
  FROM execguard.claim_execution('ce-done', 'm', 'r') \gset
SELECT execguard.complete_execution(:done_id, :done_token, '{"answer": 4}');
SELECT outcome, execution_id = :done_id AS same_id, fencing_token, attempt
  FROM execguard.claim_execution('ce-done', 'm', 'r');
SELECT status, result FROM execguard.executions WHERE execution_id = :done_id;

-- cancelled: every key of a cancelled job, existing or not.
SELECT executions_created FROM execguard.submit_job('{"id": "ce-cancel", "models": ["m"],
    "regions": ["r1", "r2"], "benchmark": {"input": {"data": {"prompt": "Hello"}}}}');
SELECT execguard.cancel_job('ce-cancel');
SELECT outcome, execution_id IS NOT NULL AS has_id, fencing_token FROM execguard.claim_execution('ce-cancel', 'm', 'r1');
-- A key the job never had is not created either.
SELECT outcome, execution_id IS NOT NULL AS has_id, fencing_token FROM execguard.claim_execution('ce-cancel', 'other', 'r1');
SELECT model_id, region, status FROM execguard.executions WHERE job_id = 'ce-cancel' ORDER BY region;

-- failed: a failure that is not retryable ends the unit.
SELECT execution_id AS f_id, fencing_token AS f_token FROM execguard.claim_execution('ce-failed', 'm', 'r') \gset
SELECT execguard.fail_execution(:f_id, :f_token, 'model returned garbage', retryable => false);
SELECT outcome, execution_id = :f_id AS same_id, fencing_token, attempt FROM execguard.claim_execution('ce-failed', 'm', 'r');

-- backoff: pending, but not due before not_before.
SELECT execution_id AS b_id, fencing_token AS b_token FROM execguard.claim_execution('ce-backoff', 'm', 'r') \gset
SELECT execguard.fail_execution(:b_id, :b_token, 'rate limited', retry_after => '1 hour');
SELECT outcome, execution_id = :b_id AS same_id, fencing_token, attempt FROM execguard.claim_execution('ce-backoff', 'm', 'r');
SELECT status, attempt, not_before > now() + interval '59 minutes' AS backoff_kept FROM execguard.executions WHERE execution_id = :b_id;
-- Once due, the same key is claimed again on its next attempt.
UPDATE execguard.executions SET not_before = now() - interval '1 second' WHERE execution_id = :b_id;
SELECT outcome, fencing_token, attempt FROM execguard.claim_execution('ce-backoff', 'm', 'r');

-- reclaimed (lease expired): the next caller gets the next attempt and a
-- new token; the old holder is fenced off.
SELECT execution_id AS x_id, fencing_token AS x_token
  FROM execguard.claim_execution('ce-expired', 'm', 'r', worker => 'slow', lease => '10 ms') \gset
SELECT pg_sleep(0.05);
SELECT outcome, execution_id = :x_id AS same_id, fencing_token, attempt
  FROM execguard.claim_execution('ce-expired', 'm', 'r', worker => 'rescuer');
SELECT * FROM pg_temp.row_of('ce-expired');
SELECT execguard.complete_execution(:x_id, :x_token, '{"late": true}') AS old_token_accepted;
-- The rescuer's grant has a fresh lease: a third caller sees running.
SELECT outcome, fencing_token FROM execguard.claim_execution('ce-expired', 'm', 'r');

-- reclaimed (owner gone): a running claim, owner-tracked, whose backend no
-- longer exists is rescued at once, long before its lease ends. A pid no
-- backend has stands for a crashed worker.
SELECT execution_id AS g_id FROM execguard.claim_execution('ce-owner-gone', 'm', 'r', lease => '1 hour', track_owner => true) \gset
-- The owner is alive (it is this session): a duplicate.
SELECT outcome FROM execguard.claim_execution('ce-owner-gone', 'm', 'r');
UPDATE execguard.executions SET owner_pid = 2147483000 WHERE execution_id = :g_id;
SELECT outcome, execution_id = :g_id AS same_id, fencing_token, attempt
  FROM execguard.claim_execution('ce-owner-gone', 'm', 'r', worker => 'rescuer', track_owner => true);
SELECT * FROM pg_temp.row_of('ce-owner-gone');
-- A live pid with another backend start time is a different session (the
-- pid was reused): the owner is gone too.
UPDATE execguard.executions SET owner_pid = pg_backend_pid(), owner_backend_start = owner_backend_start - interval '1 day'
 WHERE execution_id = :g_id;
SELECT outcome, fencing_token, attempt FROM execguard.claim_execution('ce-owner-gone', 'm', 'r');

-- track_owner => false (workers behind a transaction-mode pooler): no
-- owner is recorded, so only the lease can end the claim.
SELECT outcome, fencing_token FROM execguard.claim_execution('ce-untracked', 'm', 'r', track_owner => false);
SELECT owner_pid IS NULL AS no_pid, owner_backend_start IS NULL AS no_start, lease_expires_at > now() AS leased
  FROM execguard.executions WHERE job_id = 'ce-untracked';
SELECT outcome FROM execguard.claim_execution('ce-untracked', 'm', 'r');

-- failed (attempts exhausted): a lost lease on the last allowed attempt
-- ends the unit instead of granting a fourth attempt.
SELECT executions_created FROM execguard.submit_job('{"id": "ce-exhausted", "models": ["m"], "regions": ["r"],
    "max_attempts": 2, "benchmark": {"input": {"data": {"prompt": "Hello"}}}}');
SELECT outcome, attempt FROM execguard.claim_execution('ce-exhausted', 'm', 'r', lease => '10 ms');
SELECT pg_sleep(0.05);
SELECT outcome, attempt FROM execguard.claim_execution('ce-exhausted', 'm', 'r', lease => '10 ms');
SELECT pg_sleep(0.05);
SELECT outcome, execution_id IS NOT NULL AS has_id, fencing_token, attempt
  FROM execguard.claim_execution('ce-exhausted', 'm', 'r');
SELECT status, attempt, error, finished_at IS NOT NULL AS finished, owner_pid IS NULL AS no_owner
  FROM execguard.executions WHERE job_id = 'ce-exhausted';
SELECT outcome FROM execguard.claim_execution('ce-exhausted', 'm', 'r');

-- The worker name is stored with the grant.
SELECT worker FROM execguard.executions WHERE job_id = 'ce-new';

-- Argument errors.
SELECT * FROM execguard.claim_execution(NULL, 'm', 'r');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_execution('ce-err', NULL, 'r');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_execution('ce-err', 'm', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_execution('ce-err', 'm', 'r', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_execution('ce-err', ' ', 'r');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_execution('', 'm', 'r');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_execution('ce-err', E'm\u0001', 'r');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_execution('ce-err', repeat('m', 201), 'r');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_execution('ce-err', 'm', 'r', worker => repeat('w', 201));
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_execution('ce-err', 'm', 'r', lease => '0');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_execution('ce-err', 'm', 'r', lease => '-5 seconds');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_execution('ce-err', 'm', 'r', lease => '7 days 1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_execution('ce-err', 'm', 'r', lease => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_execution('ce-err', 'm', 'r', track_owner => NULL);
\echo :LAST_ERROR_SQLSTATE
-- None of them created a row; a lease of exactly 7 days is allowed.
SELECT count(*) AS rows FROM execguard.executions WHERE job_id = 'ce-err';
SELECT outcome FROM execguard.claim_execution('ce-err', 'm', 'r', lease => '7 days');

\i sql/include/queue_in_step.sql
