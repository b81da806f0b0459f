-- bench/backlog/base_claim.sql: the baseline cycle of (a) and (d), two
-- transactions (autocommit): the usual SKIP LOCKED claim of one pending row,
-- written as a single-claim queue is written by hand (a constant LIMIT 1,
-- so the prepared statement keeps one generic plan: bench/claims' "tuned"
-- baseline), then the fenced completion.
WITH c AS (
UPDATE bench_backlog.executions AS e
           SET status = 'running', attempt = e.attempt + 1, fencing_token = e.fencing_token + 1,
               worker = 'bench-' || :client_id::text, lease_expires_at = now() + interval '60 seconds',
               not_before = NULL, started_at = now(), finished_at = NULL
         WHERE e.execution_id IN (SELECT q.execution_id FROM bench_backlog.executions AS q
                                   WHERE q.status = 'pending'
                                     AND (q.not_before IS NULL OR q.not_before <= now())
                                   ORDER BY q.execution_id
                                   LIMIT 1
                                     FOR UPDATE SKIP LOCKED)
        RETURNING e.execution_id, e.fencing_token, e.attempt, e.job_id, e.model_id, e.region,
                  e.question_id, e.payload)
SELECT coalesce(max(execution_id), 0) AS id, coalesce(max(fencing_token), 0) AS token FROM c \gset
UPDATE bench_backlog.executions
   SET status = 'completed', result = '{"answer": "Paris"}', finished_at = now(),
       owner_pid = NULL, owner_backend_start = NULL
 WHERE execution_id = :id AND fencing_token = :token AND status = 'running';
