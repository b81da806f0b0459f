--
-- claim_next: oldest first, max_claims, region/model filters, backoff,
-- rescue of expired leases and dead owners before pending work, exhausted
-- rows end failed, payload returned. Job ids start with 'cn-'. claim_next
-- takes any due row, so the file starts from empty tables.
--
-- Keys are claimed here without submitting their jobs first (the seed's
-- create-on-claim), which execguard.claims_require_submitted_job refuses
-- by default: claim_strict tests that.
SET execguard.claims_require_submitted_job = off;
TRUNCATE execguard.queue, execguard.executions, execguard.jobs, execguard.regions RESTART IDENTITY;
-- Rescue in every call, so the order is exact (the busy path, which may
-- skip it between passes, is tested at the end).
SET execguard.rescue_interval = 0;

CREATE FUNCTION pg_temp.prompts(n int) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_agg('q' || i ORDER BY i) FROM generate_series(1, n) AS i
$$;

-- Owner gone: a running claim whose backend no longer exists (a pid no
-- backend has stands for a crashed worker) is rescued first, long before
-- its one-hour lease ends.
SELECT outcome FROM execguard.claim_execution('cn-gone', 'm', 'r', 'q1', 'w-crashed', lease => '1 hour', track_owner => true);
UPDATE execguard.executions SET owner_pid = 2147483000 WHERE job_id = 'cn-gone';
SELECT executions_created FROM execguard.submit_job(
    jsonb_build_object('id', 'cn-order', 'models', '["a"]'::jsonb, 'regions', '["r1"]'::jsonb, 'questions', pg_temp.prompts(5)));
SELECT executions_created FROM execguard.submit_job(
    '{"id": "cn-later", "models": [{"id": "Llama3.2-1B", "provider": "meta"}], "regions": ["eu-west"],
      "params": {"temperature": 0}, "benchmark": {"input": {"data": {"prompt": "Hello"}}}}');
SELECT job_id, question_id, fencing_token, attempt FROM execguard.claim_next('w-rescue', track_owner => true);

-- Oldest first, up to max_claims.
SELECT job_id, model_id, region, question_id, fencing_token, attempt FROM execguard.claim_next('w1', track_owner => true);
SELECT job_id, model_id, region, question_id, fencing_token, attempt FROM execguard.claim_next('w1', 2, track_owner => true) ORDER BY execution_id;
-- Fewer due rows than max_claims: all of them; the payload is returned.
SELECT job_id, model_id, region, question_id, payload FROM execguard.claim_next('w2', 10, track_owner => true) ORDER BY execution_id;
-- Nothing due: no rows.
SELECT count(*) AS claimed FROM execguard.claim_next('w2', 10);
SELECT job_id, question_id, status, worker, attempt, owner_pid = pg_backend_pid() AS owner_is_me,
       lease_expires_at > now() + interval '59 seconds' AS leased
  FROM execguard.executions ORDER BY execution_id;

-- Worker filters, canonicalised like the keys.
SELECT executions_created FROM execguard.submit_job(
    '{"id": "cn-filter", "models": ["a", "b"], "regions": ["r1", "r2"], "questions": ["q"]}');
SELECT model_id, region FROM execguard.claim_next('w', 10, regions => '{" R2 "}') ORDER BY execution_id;
SELECT model_id, region FROM execguard.claim_next('w', 10, models => '{B}') ORDER BY execution_id;
SELECT model_id, region FROM execguard.claim_next('w', 10, regions => '{nowhere}', models => '{a}') ORDER BY execution_id;
SELECT model_id, region FROM execguard.claim_next('w', 10, regions => '{r1, nowhere}', models => '{A, c}') ORDER BY execution_id;
SELECT count(*) AS claimed FROM execguard.claim_next('w', 10, regions => '{}');

-- Rows in backoff are skipped until due.
SELECT executions_created FROM execguard.submit_job(
    '{"id": "cn-backoff", "models": ["m"], "regions": ["r1", "r2"], "questions": ["q"]}');
SELECT execution_id AS k_id, fencing_token AS k_token, region FROM execguard.claim_next('w', 1) \gset
\echo :region
SELECT execguard.fail_execution(:k_id, :k_token, 'rate limited', retry_after => '1 hour') AS outcome;
SELECT region, attempt FROM execguard.claim_next('w', 10) ORDER BY execution_id;
SELECT count(*) AS claimed FROM execguard.claim_next('w', 10);
UPDATE execguard.executions SET not_before = now() - interval '1 second' WHERE execution_id = :k_id;
SELECT region, fencing_token, attempt FROM execguard.claim_next('w', 10);

-- Expired leases are rescued before pending rows, even older ones; a row
-- whose last allowed attempt lost its lease ends failed instead.
SELECT executions_created FROM execguard.submit_job(
    jsonb_build_object('id', 'cn-rescue', 'models', '["m"]'::jsonb, 'regions', '["r"]'::jsonb, 'questions', pg_temp.prompts(3)));
SELECT executions_created FROM execguard.submit_job(
    '{"id": "cn-exhausted", "models": ["exh"], "regions": ["r"], "questions": ["q"], "max_attempts": 1}');
SELECT execution_id AS s_id, fencing_token AS s_token
  FROM execguard.claim_execution('cn-rescue', 'm', 'r', 'q3', 'w-slow', lease => '10 ms') \gset
SELECT question_id, attempt FROM execguard.claim_next('w-slow', 1, lease => '10 ms', models => '{exh}');
SELECT pg_sleep(0.05);
SELECT job_id, question_id, fencing_token, attempt FROM execguard.claim_next('w-fast', 1);
SELECT job_id, question_id, status, attempt, worker, error FROM execguard.executions
 WHERE job_id IN ('cn-rescue', 'cn-exhausted') ORDER BY execution_id;
SELECT execguard.complete_execution(:s_id, :s_token, '{"late": true}') AS late_complete;
-- Then the pending ones, oldest first.
SELECT job_id, question_id, fencing_token, attempt FROM execguard.claim_next('w-fast', 10) ORDER BY execution_id;

-- track_owner => false records no owner.
SELECT executions_created FROM execguard.submit_job('{"id": "cn-untracked", "models": ["m"], "regions": ["r"], "questions": ["q"]}');
SELECT job_id FROM execguard.claim_next('w-pooled', 1, track_owner => false);
SELECT owner_pid IS NULL AS no_pid, owner_backend_start IS NULL AS no_start, worker
  FROM execguard.executions WHERE job_id = 'cn-untracked';

-- Nothing is claimed twice: every row above was granted to one caller at a time.
SELECT job_id, count(*) AS rows, sum(attempt) AS attempts FROM execguard.executions GROUP BY job_id ORDER BY job_id;

-- The busy path: within execguard.rescue_interval of its last rescue pass,
-- a session takes due pending rows first and rescues only when they do not
-- fill max_claims.
TRUNCATE execguard.queue, execguard.executions, execguard.jobs RESTART IDENTITY;
SELECT executions_created FROM execguard.submit_job('{"id": "cn-busy", "models": ["m"], "regions": ["busy"], "questions": ["q1", "q2", "q3"]}');
SELECT question_id FROM execguard.claim_next('w-busy', 1, lease => '10 ms', regions => '{busy}');
SELECT pg_sleep(0.05);
SET execguard.rescue_interval = '1min';
SELECT question_id, attempt FROM execguard.claim_next('w-busy', 1, regions => '{busy}');
SELECT question_id, attempt FROM execguard.claim_next('w-busy', 2, regions => '{busy}') ORDER BY question_id;
SELECT reset_val, unit FROM pg_settings WHERE name = 'execguard.rescue_interval';

-- The busy path starts after the newest row the session claimed, not at the
-- oldest pending row (walking the dead index entries of every row claimed
-- since the last vacuum). A row that becomes due again below that point
-- waits for a call the busy path does not fill, or for the next rescue
-- pass; the session's own release starts it from the oldest row again.
TRUNCATE execguard.queue, execguard.executions, execguard.jobs RESTART IDENTITY;
SET execguard.rescue_interval = 0;
SELECT executions_created FROM execguard.submit_job('{"id": "cn-hint", "models": ["m"], "regions": ["hint"], "questions": ["q1", "q2", "q3", "q4", "q5", "q6"]}');
SELECT question_id FROM execguard.claim_next('w-hint', 2, regions => '{hint}') ORDER BY question_id;
SET execguard.rescue_interval = '1min';
-- q1 due again, as another session's release would make it (the
-- execution's row and its queue row, as release_execution writes them):
WITH released AS (
    UPDATE execguard.executions
       SET status = 'pending', attempt = 0, worker = NULL, lease_expires_at = NULL,
           owner_pid = NULL, owner_backend_start = NULL, started_at = NULL
     WHERE job_id = 'cn-hint' AND question_id = 'q1'
    RETURNING execution_id)
UPDATE execguard.queue AS q SET lease_expires_at = NULL FROM released AS r
 WHERE q.execution_id = r.execution_id;
SELECT question_id FROM execguard.claim_next('w-hint', 1, regions => '{hint}');
SELECT question_id FROM execguard.claim_next('w-hint', 4, regions => '{hint}') ORDER BY question_id;
SELECT executions_created FROM execguard.submit_job('{"id": "cn-hint-2", "models": ["m"], "regions": ["hint"], "questions": ["q7"]}');
SELECT execguard.release_execution(execution_id, fencing_token) AS released
  FROM execguard.executions WHERE job_id = 'cn-hint' AND question_id = 'q5';
SELECT job_id, question_id FROM execguard.claim_next('w-hint', 1, regions => '{hint}');

-- The start belongs to the filter it was earned with: a call that serves
-- other regions (or models) starts from the oldest row again. Here the
-- session's newest claim in region ha is past both rows of region hb.
TRUNCATE execguard.queue, execguard.executions, execguard.jobs RESTART IDENTITY;
SET execguard.rescue_interval = 0;
SELECT executions_created FROM execguard.submit_job('{"id": "cn-f1", "models": ["m"], "regions": ["hb"], "questions": ["q1"]}');
SELECT executions_created FROM execguard.submit_job('{"id": "cn-f2", "models": ["m"], "regions": ["ha"], "questions": ["q1", "q2"]}');
SELECT executions_created FROM execguard.submit_job('{"id": "cn-f3", "models": ["m"], "regions": ["hb"], "questions": ["q1"]}');
SELECT job_id, question_id FROM execguard.claim_next('w-f', 2, regions => '{ha}') ORDER BY question_id;
SET execguard.rescue_interval = '1min';
SELECT job_id, question_id FROM execguard.claim_next('w-f', 1, regions => '{hb}');
SELECT job_id, question_id FROM execguard.claim_next('w-f', 1, regions => '{hb}');
RESET execguard.rescue_interval;

-- Argument errors.
SELECT * FROM execguard.claim_next(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_next('w', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_next('w', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_next('w', 10001);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_next('w', 1, '0');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_next('w', 1, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_next('w', 1, regions => '{r1, NULL}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_next('w', 1, models => '{""}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_next(repeat('w', 201));
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_next('w', 1, track_owner => NULL);
\echo :LAST_ERROR_SQLSTATE

-- A filtered worker reads only what it serves: with 200 pending rows of a
-- region and a model it does not serve ahead of its own, each filtered
-- claim reads one execution row, the one it takes (the queue rows carry
-- region and model). Filters of regions, of models, and of both; a filter
-- that names its region twice takes the row once. In one transaction, so
-- that the statistics counters are this transaction's.
SELECT executions_created FROM execguard.submit_job(jsonb_build_object(
    'id', 'cn-elsewhere', 'models', '["other-model"]'::jsonb, 'regions', '["elsewhere"]'::jsonb,
    'questions', pg_temp.prompts(200)));
SELECT executions_created FROM execguard.submit_job(
    '{"id": "cn-here", "models": ["m1", "m2"], "regions": ["here"], "questions": ["q1", "q2"]}');
BEGIN;
SELECT pg_stat_get_xact_tuples_fetched('execguard.executions_pkey'::regclass) AS fetched \gset
SELECT model_id, question_id FROM execguard.claim_next('w-here', 1, regions => '{here}');
SELECT model_id, question_id FROM execguard.claim_next('w-here', 1, models => '{m2}');
SELECT model_id, question_id FROM execguard.claim_next('w-here', 1, regions => '{here, HERE}', models => '{m1, m2}');
SELECT model_id, question_id FROM execguard.claim_next('w-here', 5, regions => '{here, here}') ORDER BY execution_id;
SELECT pg_stat_get_xact_tuples_fetched('execguard.executions_pkey'::regclass) - :fetched AS execution_rows_read;
COMMIT;
SELECT count(*) AS claimed_elsewhere FROM execguard.executions WHERE job_id = 'cn-elsewhere' AND status <> 'pending';

\i sql/include/queue_in_step.sql
