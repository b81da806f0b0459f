-- bench/claims/base_batch.sql: the baseline batch cycle, shaped exactly like
-- eg_batch.sql: one statement, the SKIP LOCKED claim of :batch rows
-- (bench_baseline_queue.claim), then one UPDATE completing them all
-- (bench_baseline_queue.complete).
WITH c AS (SELECT execution_id, fencing_token FROM bench_baseline_queue.claim('bench-' || :client_id, :batch)),
     a AS (SELECT coalesce(array_agg(execution_id), '{}') AS ids,
                  coalesce(array_agg(fencing_token), '{}') AS tokens,
                  coalesce(array_agg('{"answer": "Paris"}'::jsonb), '{}') AS results
             FROM c)
SELECT bench_baseline_queue.complete(a.ids, a.tokens, a.results) FROM a;
