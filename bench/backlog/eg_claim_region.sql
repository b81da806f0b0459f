-- bench/backlog/eg_claim_region.sql: the cycle of eg_claim.sql by a worker
-- that serves one region: r<client_id % nregions + 1> (with 8 clients and
-- nregions=4, two clients per region; nregions=1: every client serves r1).
-- Keys are sent as text ('r' || :r::text), as a client sends them.
-- Owner-tracked (track_owner => true), as in eg_claim.sql.
\set r :client_id % :nregions + 1
SELECT coalesce(max(execution_id), 0) AS id, coalesce(max(fencing_token), 0) AS token
  FROM execguard.claim_next('bench-' || :client_id::text, 1, regions => ARRAY['r' || :r::text], track_owner => true) \gset
SELECT execguard.complete_execution(:id, :token, '{"answer": "Paris"}');
