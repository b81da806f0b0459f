-- sql/include/queue_in_step.sql: included (\i, relative to the checkout,
-- where make runs pg_regress) at the end of every pg_regress file that
-- writes executions. execguard.queue holds exactly the pending and running
-- executions, each running one with its lease, each with its execution's
-- region and model: every write in the file kept it in step.
SELECT count(*) AS queue_mismatches
  FROM execguard.executions AS e FULL JOIN execguard.queue AS q USING (execution_id)
 WHERE (e.status IN ('pending', 'running')) IS DISTINCT FROM (q.execution_id IS NOT NULL)
    OR q.lease_expires_at IS DISTINCT FROM CASE WHEN e.status = 'running' THEN e.lease_expires_at END
    OR (q.execution_id IS NOT NULL AND (q.region, q.model_id) IS DISTINCT FROM (e.region, e.model_id));
