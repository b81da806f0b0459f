--
-- claim_lifecycle: fencing tokens on every write, complete (single and
-- batch), fail/retry/backoff, release, cancel_job, retry_job, what
-- execution_state tells a holder, argument errors. Job ids start with 'cl-'.
--
-- Keys are claimed here without submitting their jobs first (the seed's
-- create-on-claim), which execguard.claims_require_submitted_job refuses
-- by default: claim_strict tests that.
SET execguard.claims_require_submitted_job = off;
TRUNCATE execguard.queue, execguard.executions, execguard.jobs, execguard.regions RESTART IDENTITY;

CREATE FUNCTION pg_temp.row_of(id bigint)
RETURNS TABLE (status text, attempt int, max_attempts int, fencing_token bigint, result jsonb, error text,
               leased boolean, has_owner boolean, finished boolean, in_backoff boolean)
LANGUAGE sql AS $$
    SELECT status, attempt, max_attempts, fencing_token, result, error, lease_expires_at IS NOT NULL,
           owner_pid IS NOT NULL, finished_at IS NOT NULL, coalesce(not_before > now(), false)
      FROM execguard.executions WHERE execution_id = id
$$;

-- Fencing: after a reclaim, the first holder's token is stale; none of its
-- writes gets through, and the row is untouched.
SELECT execution_id AS id, fencing_token AS old_token
  FROM execguard.claim_execution('cl-fence', 'm', 'r', lease => '10 ms') \gset
SELECT pg_sleep(0.05);
SELECT outcome, fencing_token AS new_token FROM execguard.claim_execution('cl-fence', 'm', 'r') \gset
\echo :outcome :old_token :new_token
SELECT execguard.heartbeat(:id, :old_token) AS heartbeat;
SELECT execguard.complete_execution(:id, :old_token, '{"by": "old"}') AS complete;
SELECT execguard.fail_execution(:id, :old_token, 'old holder failed') AS fail;
SELECT execguard.fail_execution(:id, :old_token, 'old holder failed', retryable => false) AS fail_final;
SELECT execguard.release_execution(:id, :old_token) AS release;
-- A token from the future is as stale as one from the past.
SELECT execguard.complete_execution(:id, :new_token + 1, '{"by": "nobody"}') AS complete_future;
SELECT * FROM pg_temp.row_of(:id);
-- execution_state: the first holder learns it was taken over; the current
-- holder sees its grant running.
SELECT execguard.execution_state(:id, :old_token) AS old_holder_state,
       execguard.execution_state(:id, :new_token) AS new_holder_state,
       execguard.execution_state(:id, :new_token + 1) AS future_token_state;
-- The current holder heartbeats and completes.
SELECT execguard.heartbeat(:id, :new_token, '1 hour') AS heartbeat;
SELECT lease_expires_at > now() + interval '59 minutes' AS lease_extended FROM execguard.executions WHERE execution_id = :id;
SELECT execguard.complete_execution(:id, :new_token, '{"by": "new"}') AS complete;
SELECT * FROM pg_temp.row_of(:id);
-- After completion even the right token writes nothing more.
SELECT execguard.complete_execution(:id, :new_token, '{"by": "again"}') AS complete_again;
SELECT execguard.heartbeat(:id, :new_token) AS heartbeat_after;
SELECT execguard.fail_execution(:id, :new_token, 'too late') AS fail_after;
SELECT execguard.release_execution(:id, :new_token) AS release_after;
SELECT result FROM execguard.executions WHERE execution_id = :id;
SELECT execguard.execution_state(:id, :new_token) AS state_after_complete;
-- An execution id that does not exist.
SELECT execguard.complete_execution(-1, 1, '{}') AS complete_unknown;
SELECT execguard.heartbeat(-1, 1) AS heartbeat_unknown;
SELECT execguard.execution_state(-1, 1) IS NULL AS state_unknown_is_null;

-- complete_executions: one row per input position, in input order.
SELECT execution_id AS b1, fencing_token AS t1 FROM execguard.claim_execution('cl-batch', 'm', 'r1') \gset
SELECT execution_id AS b2, fencing_token AS t2 FROM execguard.claim_execution('cl-batch', 'm', 'r2') \gset
SELECT execution_id AS b3, fencing_token AS t3 FROM execguard.claim_execution('cl-batch', 'm', 'r3') \gset
SELECT execution_id AS b4, fencing_token AS t4 FROM execguard.claim_execution('cl-batch', 'm', 'r4') \gset
SELECT execguard.complete_execution(:b4, :t4, '{"n": 4}') AS b4_done_first;
SELECT c.execution_id = (ARRAY[:b3, :b1, :b2, :b4, -1]::bigint[])[c.ord] AS in_order, c.accepted
  FROM execguard.complete_executions(ARRAY[:b3, :b1, :b2, :b4, -1]::bigint[],
                                     ARRAY[:t3, :t1, :t2 + 7, :t4, 1]::bigint[],
                                     ARRAY['{"n": 3}', '{"n": 1}', '{"n": 2}', '{"n": 44}', '{}']::jsonb[])
       WITH ORDINALITY AS c(execution_id, accepted, ord);
SELECT region, status, result FROM execguard.executions WHERE job_id = 'cl-batch' ORDER BY region;
-- An empty batch is fine.
SELECT count(*) AS rows FROM execguard.complete_executions('{}', '{}', '{}');
-- Length mismatch, a repeated id, NULLs: errors, and nothing is written.
SELECT * FROM execguard.complete_executions(ARRAY[:b2], ARRAY[:t2, :t2]::bigint[], ARRAY['{}']::jsonb[]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.complete_executions(ARRAY[:b2], ARRAY[:t2]::bigint[], '{}'::jsonb[]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.complete_executions(ARRAY[:b2, :b2]::bigint[], ARRAY[:t2, :t2]::bigint[], ARRAY['{}', '{}']::jsonb[]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.complete_executions(ARRAY[:b2, NULL]::bigint[], ARRAY[:t2, 1]::bigint[], ARRAY['{}', '{}']::jsonb[]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.complete_executions(ARRAY[:b2]::bigint[], ARRAY[:t2]::bigint[], ARRAY[NULL]::jsonb[]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.complete_executions(NULL, ARRAY[:t2]::bigint[], ARRAY['{}']::jsonb[]);
\echo :LAST_ERROR_SQLSTATE
SELECT status FROM execguard.executions WHERE execution_id = :b2;

-- fail_execution, retryable: back to pending with a default backoff
-- (exponential with jitter: 1 to 3 s after the first attempt); the
-- attempt is used up and the error kept.
SELECT executions_created FROM execguard.submit_job('{"id": "cl-fail", "models": ["m"], "regions": ["r1", "r2", "r3"],
    "benchmark": {"input": {"data": {"prompt": "Hello"}}}}');
SELECT execution_id AS f1, fencing_token AS ft1 FROM execguard.claim_execution('cl-fail', 'm', 'r1') \gset
SELECT execguard.fail_execution(:f1, :ft1, 'HTTP 503') AS outcome;
SELECT * FROM pg_temp.row_of(:f1);
SELECT not_before > now() + interval '0.5 seconds' AND not_before < now() + interval '3 seconds' AS default_backoff
  FROM execguard.executions WHERE execution_id = :f1;
-- The holder's token is spent.
SELECT execguard.complete_execution(:f1, :ft1, '{}') AS complete_after_retry;
SELECT outcome FROM execguard.claim_execution('cl-fail', 'm', 'r1');
-- retry_after is honoured exactly.
UPDATE execguard.executions SET not_before = NULL WHERE execution_id = :f1;
SELECT outcome, fencing_token AS ft1, attempt FROM execguard.claim_execution('cl-fail', 'm', 'r1') \gset
\echo :outcome :ft1 :attempt
SELECT execguard.fail_execution(:f1, :ft1, 'rate limited', retry_after => '10 minutes') AS outcome;
SELECT not_before > now() + interval '9 minutes 59 seconds' AND not_before <= now() + interval '10 minutes 1 second'
       AS retry_after_honoured
  FROM execguard.executions WHERE execution_id = :f1;
-- retry_after => '0' makes it due at once.
UPDATE execguard.executions SET not_before = NULL WHERE execution_id = :f1;
SELECT outcome, fencing_token AS ft1, attempt FROM execguard.claim_execution('cl-fail', 'm', 'r1') \gset
\echo :outcome :ft1 :attempt
-- Third and last attempt: a retryable failure now ends it.
SELECT execguard.fail_execution(:f1, :ft1, 'HTTP 503 again') AS outcome;
SELECT * FROM pg_temp.row_of(:f1);
SELECT outcome FROM execguard.claim_execution('cl-fail', 'm', 'r1');
-- Not retryable: failed on the first attempt.
SELECT execution_id AS f2, fencing_token AS ft2 FROM execguard.claim_execution('cl-fail', 'm', 'r2') \gset
SELECT execguard.fail_execution(:f2, :ft2, 'invalid prompt', retryable => false) AS outcome;
SELECT * FROM pg_temp.row_of(:f2);
-- retry_after 0 on a retryable failure: due at once.
SELECT execution_id AS f3, fencing_token AS ft3 FROM execguard.claim_execution('cl-fail', 'm', 'r3') \gset
SELECT execguard.fail_execution(:f3, :ft3, 'blip', retry_after => '0') AS outcome;
SELECT outcome, fencing_token, attempt FROM execguard.claim_execution('cl-fail', 'm', 'r3');
-- A NULL error text is allowed.
SELECT execution_id AS f4, fencing_token AS ft4 FROM execguard.claim_execution('cl-fail', 'm', 'r4') \gset
SELECT execguard.fail_execution(:f4, :ft4, NULL, retryable => false) AS outcome;

-- A completed execution keeps no error of an earlier attempt: the error
-- column describes the row's current state (complete_execution and
-- complete_executions).
SELECT execution_id AS e1, fencing_token AS et1 FROM execguard.claim_execution('cl-error-then-done', 'm', 'r', 'q1') \gset
SELECT execution_id AS e2, fencing_token AS et2 FROM execguard.claim_execution('cl-error-then-done', 'm', 'r', 'q2') \gset
SELECT execguard.fail_execution(:e1, :et1, 'rate limited', retry_after => '0 seconds') AS outcome;
SELECT execguard.fail_execution(:e2, :et2, 'rate limited', retry_after => '0 seconds') AS outcome;
SELECT execution_id AS e1, fencing_token AS et1 FROM execguard.claim_execution('cl-error-then-done', 'm', 'r', 'q1') \gset
SELECT execution_id AS e2, fencing_token AS et2 FROM execguard.claim_execution('cl-error-then-done', 'm', 'r', 'q2') \gset
SELECT execguard.complete_execution(:e1, :et1, '{"text": "4"}') AS completed;
SELECT accepted FROM execguard.complete_executions(ARRAY[:e2]::bigint[], ARRAY[:et2]::bigint[], ARRAY['{}']::jsonb[]);
SELECT question_id, status, attempt, error FROM execguard.executions
 WHERE job_id = 'cl-error-then-done' ORDER BY question_id;

-- release_execution: back to pending, the attempt given back, nothing
-- counted against the budget; the token is spent.
SELECT execution_id AS r_id, fencing_token AS r_token, attempt FROM execguard.claim_execution('cl-release', 'm', 'r') \gset
SELECT execguard.release_execution(:r_id, :r_token) AS released;
SELECT * FROM pg_temp.row_of(:r_id);
SELECT worker IS NULL AS no_worker, started_at IS NULL AS not_started FROM execguard.executions WHERE execution_id = :r_id;
SELECT execguard.execution_state(:r_id, :r_token) AS state_after_release;
SELECT execguard.release_execution(:r_id, :r_token) AS released_again;
SELECT execguard.complete_execution(:r_id, :r_token, '{}') AS complete_after_release;
SELECT outcome, fencing_token, attempt FROM execguard.claim_execution('cl-release', 'm', 'r');

-- cancel_job: pending and running executions are cancelled, completed
-- ones are untouched; the running holder is told to stop (heartbeat false)
-- and its complete is refused; every key of the job claims as cancelled.
SELECT executions_created FROM execguard.submit_job('{"id": "cl-cancel", "models": ["m"],
    "regions": ["r1", "r2", "r3", "r4"], "benchmark": {"input": {"data": {"prompt": "Hello"}}}}');
SELECT execution_id AS c1, fencing_token AS ct1 FROM execguard.claim_execution('cl-cancel', 'm', 'r1') \gset
SELECT execguard.complete_execution(:c1, :ct1, '{"kept": true}') AS completed_before_cancel;
SELECT execution_id AS c2, fencing_token AS ct2 FROM execguard.claim_execution('cl-cancel', 'm', 'r2') \gset
SELECT execguard.cancel_job('cl-cancel') AS cancelled;
SELECT region, status, result, lease_expires_at IS NULL AS no_lease, owner_pid IS NULL AS no_owner,
       finished_at IS NOT NULL AS finished
  FROM execguard.executions WHERE job_id = 'cl-cancel' ORDER BY region;
SELECT cancelled_at IS NOT NULL AS job_cancelled FROM execguard.jobs WHERE job_id = 'cl-cancel';
SELECT execguard.heartbeat(:c2, :ct2) AS heartbeat;
-- The refused heartbeat's reason, for a holder that heard no NOTIFY.
SELECT execguard.execution_state(:c2, :ct2) AS state_after_cancel;
SELECT execguard.complete_execution(:c2, :ct2, '{"late": true}') AS complete;
SELECT execguard.fail_execution(:c2, :ct2, 'stopped') AS fail;
SELECT execguard.release_execution(:c2, :ct2) AS release;
SELECT r.region, c.outcome, c.fencing_token
  FROM unnest(ARRAY['r1', 'r2', 'r3', 'r4', 'r5']) AS r(region),
       LATERAL execguard.claim_execution('cl-cancel', 'm', r.region) AS c
 ORDER BY r.region;
SELECT count(*) AS rows FROM execguard.executions WHERE job_id = 'cl-cancel';
-- Cancelling again changes nothing; an unknown job has nothing to cancel.
SELECT execguard.cancel_job('cl-cancel') AS cancelled_again;
SELECT execguard.cancel_job('cl-no-such-job') AS cancelled_unknown;
-- retry_job never revives a cancelled job.
SELECT execguard.retry_job('cl-cancel') AS retried;

-- retry_job: failed executions go back to pending with a fresh attempt
-- budget; completed ones are never re-run.
SELECT executions_created FROM execguard.submit_job('{"id": "cl-retry", "models": ["m"], "regions": ["r1", "r2", "r3"],
    "max_attempts": 1, "benchmark": {"input": {"data": {"prompt": "Hello"}}}}');
SELECT execution_id AS y1, fencing_token AS yt1 FROM execguard.claim_execution('cl-retry', 'm', 'r1') \gset
SELECT execguard.complete_execution(:y1, :yt1, '{"ok": true}') AS completed;
SELECT execution_id AS y2, fencing_token AS yt2 FROM execguard.claim_execution('cl-retry', 'm', 'r2') \gset
SELECT execguard.fail_execution(:y2, :yt2, 'HTTP 500') AS outcome;
SELECT execution_id AS y3, fencing_token AS yt3 FROM execguard.claim_execution('cl-retry', 'm', 'r3') \gset
SELECT execguard.fail_execution(:y3, :yt3, 'bad input', retryable => false) AS outcome;
SELECT region, status, attempt, max_attempts FROM execguard.executions WHERE job_id = 'cl-retry' ORDER BY region;
SELECT execguard.retry_job('cl-retry') AS retried;
SELECT region, status, attempt, max_attempts, not_before IS NULL AS due, finished_at IS NULL AS unfinished, result
  FROM execguard.executions WHERE job_id = 'cl-retry' ORDER BY region;
SELECT r.region, c.outcome, c.fencing_token, c.attempt
  FROM unnest(ARRAY['r1', 'r2', 'r3']) AS r(region),
       LATERAL execguard.claim_execution('cl-retry', 'm', r.region) AS c
 ORDER BY r.region;
-- Nothing failed any more: a second retry_job does nothing.
SELECT execguard.retry_job('cl-retry') AS retried_again;
SELECT execguard.retry_job('cl-no-such-job') AS retried_unknown;

-- Argument errors: NULLs are 22004, out-of-range values 22023.
SELECT execguard.heartbeat(NULL, 1);
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.heartbeat(1, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.heartbeat(1, 1, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.heartbeat(1, 1, '0');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.heartbeat(1, 1, '8 days');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.complete_execution(NULL, 1, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.complete_execution(1, NULL, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.complete_execution(1, 1, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.fail_execution(NULL, 1, 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.fail_execution(1, NULL, 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.fail_execution(1, 1, 'x', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.fail_execution(1, 1, 'x', true, '-1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.fail_execution(1, 1, 'x', true, '31 days');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.release_execution(NULL, 1);
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.release_execution(1, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.cancel_job(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.retry_job(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.cancel_job('  ');
\echo :LAST_ERROR_SQLSTATE

\i sql/include/queue_in_step.sql
