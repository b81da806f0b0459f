-- bench/claims/eg_batch.sql: one batch cycle in one statement (one
-- transaction): claim_next(worker, :batch), then complete_executions on
-- everything claimed. The function call is the statement boundary that lets
-- the completion see the claim. track_owner => true: the runner's own claim
-- (the default is false since 0.6.0).
WITH c AS (SELECT execution_id, fencing_token FROM execguard.claim_next('bench-' || :client_id, :batch, track_owner => true)),
     a AS (SELECT coalesce(array_agg(execution_id), '{}') AS ids,
                  coalesce(array_agg(fencing_token), '{}') AS tokens,
                  coalesce(array_agg('{"answer": "Paris"}'::jsonb), '{}') AS results
             FROM c)
SELECT count(*) FILTER (WHERE done.accepted)
  FROM a, execguard.complete_executions(a.ids, a.tokens, a.results) AS done;
