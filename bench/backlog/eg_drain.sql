-- bench/backlog/eg_drain.sql: the churn before (d), not itself measured:
-- one statement claims 50 executions (claim_next) and completes them all
-- (complete_executions), as bench/claims/eg_batch.sql does (owner-tracked).
WITH c AS (SELECT execution_id, fencing_token FROM execguard.claim_next('churn-' || :client_id::text, 50, track_owner => true)),
     a AS (SELECT coalesce(array_agg(execution_id), '{}') AS ids,
                  coalesce(array_agg(fencing_token), '{}') AS tokens,
                  coalesce(array_agg('{"answer": "Paris"}'::jsonb), '{}') AS results
             FROM c)
SELECT count(*) FILTER (WHERE done.accepted)
  FROM a, execguard.complete_executions(a.ids, a.tokens, a.results) AS done;
