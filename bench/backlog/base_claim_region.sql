-- bench/backlog/base_claim_region.sql: base_claim.sql by a worker that
-- serves one region (the region of eg_claim_region.sql), read through the
-- partial index on (region, execution_id) of pending rows. Written the way
-- it has to be for that index to be used: with "region = X ORDER BY
-- execution_id" the planner assumes a region's rows are spread evenly over
-- the ids and walks the index of all pending rows by id instead (generic
-- and custom plans alike), through every row of the regions nobody serves.
-- The region as an array, like claim_next's filter, and the order by
-- (region, execution_id) leave the region index the only one that delivers
-- the order (EXPLAIN shows it for both plans).
\set r :client_id % :nregions + 1
WITH c AS (
UPDATE bench_backlog.executions AS e
           SET status = 'running', attempt = e.attempt + 1, fencing_token = e.fencing_token + 1,
               worker = 'bench-' || :client_id::text, lease_expires_at = now() + interval '60 seconds',
               not_before = NULL, started_at = now(), finished_at = NULL
         WHERE e.execution_id IN (SELECT q.execution_id FROM bench_backlog.executions AS q
                                   WHERE q.status = 'pending'
                                     AND q.region = ANY (ARRAY['r' || :r::text])
                                     AND (q.not_before IS NULL OR q.not_before <= now())
                                   ORDER BY q.region, q.execution_id
                                   LIMIT 1
                                     FOR UPDATE SKIP LOCKED)
        RETURNING e.execution_id, e.fencing_token, e.attempt, e.job_id, e.model_id, e.region,
                  e.question_id, e.payload)
SELECT coalesce(max(execution_id), 0) AS id, coalesce(max(fencing_token), 0) AS token FROM c \gset
UPDATE bench_backlog.executions
   SET status = 'completed', result = '{"answer": "Paris"}', finished_at = now(),
       owner_pid = NULL, owner_backend_start = NULL
 WHERE execution_id = :id AND fencing_token = :token AND status = 'running';
