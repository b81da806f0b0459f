--
-- counters: the execguard.stats view moves exactly as the operations say.
-- The test cluster preloads the library; counters are cluster-wide, so this
-- file resets them and must not run concurrently with other claim tests.
-- Job ids start with 'ct-'.
--
-- Keys are claimed here without submitting their jobs first (the seed's
-- create-on-claim), which execguard.claims_require_submitted_job refuses
-- by default: claim_strict tests that.
SET execguard.claims_require_submitted_job = off;
TRUNCATE execguard.queue, execguard.executions, execguard.jobs, execguard.regions RESTART IDENTITY;

-- The counters as (name, value) rows, in the view's column order.
CREATE FUNCTION pg_temp.counters() RETURNS TABLE (counter text, value bigint) LANGUAGE sql AS $$
    SELECT key, value::bigint FROM json_each_text((SELECT row_to_json(s) FROM execguard.stats AS s))
     WHERE key <> 'stats_reset'
$$;

SELECT execguard.stats_reset();
SELECT counter, value FROM pg_temp.counters() WHERE value <> 0;
SELECT stats_reset <= now() AND stats_reset > now() - interval '1 minute' AS just_reset FROM execguard.stats;

-- submit_job: 8 units (2 models x 2 regions x 2 questions), 2 normalisation
-- duplicates (one model, one question). A resubmission and a rejected
-- conflicting one count nothing.
SELECT * FROM execguard.submit_job('{"id": "ct-job", "models": ["m1", "M1", "m2"], "regions": ["r1", "r2"],
    "questions": ["qa", "qa ", " qb"]}');
SELECT * FROM execguard.submit_job('{"id": "ct-job", "models": ["m1", "M1", "m2"], "regions": ["r1", "r2"],
    "questions": ["qa", "qa ", " qb"]}');
SELECT * FROM execguard.submit_job('{"id": "ct-job", "models": ["m1"], "regions": ["r1"], "questions": ["qa"]}');
SELECT * FROM execguard.submit_job('{"id": "ct-exhausted", "models": ["m"], "regions": ["r"], "questions": ["q"], "max_attempts": 1}');

-- claimed, running, completed.
SELECT execution_id AS a_id, fencing_token AS a_token FROM execguard.claim_execution('ct-job', 'm1', 'r1', 'qa') \gset
SELECT outcome FROM execguard.claim_execution('ct-job', 'm1', 'r1', 'qa');
SELECT execguard.complete_execution(:a_id, :a_token, '{"answer": 1}');
SELECT outcome FROM execguard.claim_execution('ct-job', 'm1', 'r1', 'qa');

-- Four stale writes: complete, heartbeat, fail and release of a row that
-- is no longer running with that token.
SELECT execguard.complete_execution(:a_id, :a_token, '{"answer": 2}');
SELECT execguard.heartbeat(:a_id, :a_token);
SELECT execguard.fail_execution(:a_id, :a_token, 'late');
SELECT execguard.release_execution(:a_id, :a_token);

-- A retry scheduled, then a claim in backoff.
SELECT execution_id AS b_id, fencing_token AS b_token FROM execguard.claim_execution('ct-job', 'm1', 'r1', 'qb') \gset
SELECT execguard.fail_execution(:b_id, :b_token, 'rate limited', retry_after => '1 hour');
SELECT outcome FROM execguard.claim_execution('ct-job', 'm1', 'r1', 'qb');

-- A final failure, then a claim that finds it failed.
SELECT execution_id AS c_id, fencing_token AS c_token FROM execguard.claim_execution('ct-job', 'm1', 'r2', 'qa') \gset
SELECT execguard.fail_execution(:c_id, :c_token, 'bad input', retryable => false);
SELECT outcome FROM execguard.claim_execution('ct-job', 'm1', 'r2', 'qa');

-- A release, then the same key claimed again (left running).
SELECT execution_id AS d_id, fencing_token AS d_token FROM execguard.claim_execution('ct-job', 'm1', 'r2', 'qb') \gset
SELECT execguard.release_execution(:d_id, :d_token);
SELECT outcome FROM execguard.claim_execution('ct-job', 'm1', 'r2', 'qb');

-- Lease expiry: one rescued, one on its last attempt failed.
SELECT execution_id AS e_id FROM execguard.claim_execution('ct-job', 'm2', 'r1', 'qa', lease => '10 ms') \gset
SELECT outcome FROM execguard.claim_execution('ct-exhausted', 'm', 'r', 'q', lease => '10 ms');
SELECT pg_sleep(0.05);
SELECT outcome, fencing_token AS e_token FROM execguard.claim_execution('ct-job', 'm2', 'r1', 'qa') \gset
\echo :outcome
SELECT outcome FROM execguard.claim_execution('ct-exhausted', 'm', 'r', 'q');

-- Owner gone: rescued at once.
SELECT execution_id AS g_id, fencing_token AS g_token FROM execguard.claim_execution('ct-job', 'm2', 'r1', 'qb', lease => '1 hour', track_owner => true) \gset
UPDATE execguard.executions SET owner_pid = 2147483000 WHERE execution_id = :g_id;
SELECT outcome FROM execguard.claim_execution('ct-job', 'm2', 'r1', 'qb');

-- A batch: one accepted (the rescuer's token), one refused (the first token).
SELECT accepted FROM execguard.complete_executions(ARRAY[:e_id, :g_id]::bigint[], ARRAY[:e_token, :g_token]::bigint[],
                                                   ARRAY['{"answer": 3}', '{"answer": 4}']::jsonb[])
 ORDER BY execution_id = :g_id;

-- retry_job puts the one failed execution back: a retry scheduled.
SELECT execguard.retry_job('ct-job');

-- cancel_job: 4 pending (one in backoff, one retried) and 2 running
-- cancelled; then a claim that finds it cancelled.
SELECT execguard.cancel_job('ct-job');
SELECT outcome FROM execguard.claim_execution('ct-job', 'm2', 'r2', 'qa');

SELECT status, count(*) FROM execguard.executions GROUP BY status ORDER BY status;

-- The holder of a cancelled execution is refused with the token of its
-- grant: told to stop, counted as writes_after_cancel, not as stale.
SELECT execution_id AS c_id, fencing_token AS c_token FROM execguard.executions
 WHERE job_id = 'ct-job' AND status = 'cancelled' AND started_at IS NOT NULL
 ORDER BY execution_id LIMIT 1 \gset
SELECT execguard.heartbeat(:c_id, :c_token) AS beat;
SELECT execguard.complete_execution(:c_id, :c_token, '{"late": true}') AS completed;

-- Every counter, exactly.
SELECT * FROM pg_temp.counters();
-- The two layers of duplicate prevention are sums of the layers below.
SELECT duplicates_prevented_claim = claims_running + claims_completed AS claim_layer,
       duplicates_prevented_normalization = 2 AS normalization_layer
  FROM execguard.stats;

-- stats_reset zeroes every counter.
SELECT execguard.stats_reset();
SELECT count(*) FILTER (WHERE value <> 0) AS nonzero FROM pg_temp.counters();

\i sql/include/queue_in_step.sql
