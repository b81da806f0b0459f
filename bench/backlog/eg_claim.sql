-- bench/backlog/eg_claim.sql: one worker cycle of (a) and (d), two
-- transactions (autocommit): claim_next(worker, 1), unfiltered, then
-- complete_execution with the fencing token. An empty queue yields id 0, a
-- refused completion (run.sh then reports the queue drained).
SELECT coalesce(max(execution_id), 0) AS id, coalesce(max(fencing_token), 0) AS token
  FROM execguard.claim_next('bench-' || :client_id::text, 1) \gset
SELECT execguard.complete_execution(:id, :token, '{"answer": "Paris"}');
