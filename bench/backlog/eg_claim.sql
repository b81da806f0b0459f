-- bench/backlog/eg_claim.sql: one worker cycle of (a) and (d), two
-- transactions (autocommit): claim_next(worker, 1), unfiltered, then
-- complete_execution with the fencing token. An empty queue yields id 0, a
-- refused completion (run.sh then reports the queue drained). Owner-tracked
-- (track_owner => true), as the runner claims; the default is false since 0.6.0.
SELECT coalesce(max(execution_id), 0) AS id, coalesce(max(fencing_token), 0) AS token
  FROM execguard.claim_next('bench-' || :client_id::text, 1, track_owner => true) \gset
SELECT execguard.complete_execution(:id, :token, '{"answer": "Paris"}');
