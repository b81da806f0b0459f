-- bench/claims/eg_single.sql: one worker cycle, two transactions (autocommit):
-- claim_next(worker, 1), then complete_execution with the fencing token.
-- track_owner => true: the runner's own claim (the default is false since 0.6.0).
-- An empty queue yields id 0, a refused (stale) completion, not an abort.
SELECT coalesce(max(execution_id), 0) AS id, coalesce(max(fencing_token), 0) AS token
  FROM execguard.claim_next('bench-' || :client_id, 1, track_owner => true) \gset
SELECT execguard.complete_execution(:id, :token, '{"answer": "Paris"}');
