-- bench/claims/base_single.sql: the baseline cycle, two transactions
-- (autocommit): the usual SKIP LOCKED claim of :batch rows (1 here), then
-- the fenced completion. The claim is the statement issue 3 names, one text
-- for any batch size, so in prepared mode LIMIT is a parameter: its
-- generic plan is a hash join over the whole table, and the plan cache
-- plans it afresh on every execution instead (the planner trap).
-- run.sh derives the tuned baseline from this file: the same cycle with a
-- constant LIMIT 1, as written by hand for single claims.
WITH c AS (
UPDATE bench_baseline_queue.executions AS e
           SET status = 'running', attempt = e.attempt + 1, fencing_token = e.fencing_token + 1,
               worker = 'bench-' || :client_id, lease_expires_at = now() + interval '60 seconds',
               not_before = NULL, started_at = now(), finished_at = NULL
         WHERE e.execution_id IN (SELECT q.execution_id FROM bench_baseline_queue.executions AS q
                                   WHERE q.status = 'pending'
                                     AND (q.not_before IS NULL OR q.not_before <= now())
                                   ORDER BY q.execution_id
                                   LIMIT :batch
                                     FOR UPDATE SKIP LOCKED)
        RETURNING e.execution_id, e.fencing_token, e.attempt, e.job_id, e.model_id, e.region,
                  e.question_id, e.payload)
SELECT coalesce(max(execution_id), 0) AS id, coalesce(max(fencing_token), 0) AS token FROM c \gset
UPDATE bench_baseline_queue.executions
   SET status = 'completed', result = '{"answer": "Paris"}', finished_at = now(),
       owner_pid = NULL, owner_backend_start = NULL
 WHERE execution_id = :id AND fencing_token = :token AND status = 'running';
