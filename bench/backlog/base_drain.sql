-- bench/backlog/base_drain.sql: the baseline's churn before (d), shaped
-- like eg_drain.sql: claim 50 (bench_backlog.claim_batch), complete them
-- all (bench_backlog.complete_batch), one statement.
WITH c AS (SELECT execution_id, fencing_token FROM bench_backlog.claim_batch('churn-' || :client_id::text)),
     a AS (SELECT coalesce(array_agg(execution_id), '{}') AS ids,
                  coalesce(array_agg(fencing_token), '{}') AS tokens
             FROM c)
SELECT bench_backlog.complete_batch(a.ids, a.tokens) FROM a;
