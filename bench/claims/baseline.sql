-- bench/claims/baseline.sql
--
-- The plain-SQL SKIP LOCKED queue that execguard's claims are measured
-- against: the same table as execguard.executions (generated from it, below)
-- and the usual statements, written as a competent engineer would (the
-- functions below, and base_single.sql / base_batch.sql next to this file):
--   claim:    UPDATE ... WHERE execution_id IN (SELECT ... WHERE status =
--             'pending' ORDER BY execution_id LIMIT n FOR UPDATE SKIP LOCKED)
--             RETURNING ...
--   complete: UPDATE ... WHERE execution_id = $1 AND fencing_token = $2
--             AND status = 'running'
-- What it does not do, and execguard does: lease rescue of expired or
-- dead-owner claims, failing exhausted claims, owner tracking, counters,
-- canonicalised keys, argument checks.
DROP SCHEMA IF EXISTS bench_baseline_queue CASCADE;
CREATE SCHEMA bench_baseline_queue;

-- The same table as execguard.executions, generated from it so the two
-- cannot drift apart: columns, domains, collations, defaults, constraints,
-- and every index with its options (LIKE ... INCLUDING ALL), plus the
-- table's autovacuum settings, which LIKE does not copy. And the indexes a
-- SKIP LOCKED queue has on its own table, which execguard keeps in
-- execguard.queue since 0.4.0: pending rows by id, running rows by lease,
-- exactly as execguard.executions had them up to 0.3.0. Not its
-- fillfactor: with status indexed, no update here can be HOT, and the
-- baseline stays the table earlier benchmarks measured.
CREATE TABLE bench_baseline_queue.executions (LIKE execguard.executions INCLUDING ALL);
DO $$
BEGIN
    EXECUTE format('ALTER TABLE bench_baseline_queue.executions SET (%s)',
                   (SELECT string_agg(o, ', ')
                      FROM pg_catalog.pg_class, unnest(reloptions) AS o
                     WHERE oid = 'execguard.executions'::regclass AND o NOT LIKE 'fillfactor=%'));
END
$$;
CREATE INDEX executions_pending
    ON bench_baseline_queue.executions (execution_id) WHERE status = 'pending';
CREATE INDEX executions_running_lease
    ON bench_baseline_queue.executions (lease_expires_at)
    WHERE status = 'running' AND lease_expires_at IS NOT NULL;

-- Batch forms for the one-statement batch cycle (claim_batch.sql): a
-- function call is what puts a statement boundary between the claim and
-- the completion inside one SQL statement, exactly as claim_next and
-- complete_executions do on the execguard side. PL/pgSQL keeps its plans
-- for the session, as a competent stored-procedure version would.
CREATE FUNCTION bench_baseline_queue.claim(worker text, max_claims int, lease interval DEFAULT '60 seconds')
RETURNS TABLE (execution_id bigint, fencing_token bigint, attempt int, job_id text, model_id text,
               region text, question_id text, payload jsonb)
LANGUAGE plpgsql VOLATILE
AS $fn$
BEGIN
    RETURN QUERY
    UPDATE bench_baseline_queue.executions AS e
       SET status = 'running', attempt = e.attempt + 1, fencing_token = e.fencing_token + 1,
           worker = claim.worker, lease_expires_at = now() + claim.lease, not_before = NULL,
           started_at = now(), finished_at = NULL
     WHERE e.execution_id IN (SELECT q.execution_id FROM bench_baseline_queue.executions AS q
                               WHERE q.status = 'pending'
                                 AND (q.not_before IS NULL OR q.not_before <= now())
                               ORDER BY q.execution_id
                               LIMIT max_claims
                                 FOR UPDATE SKIP LOCKED)
    RETURNING e.execution_id, e.fencing_token, e.attempt::int, e.job_id, e.model_id, e.region,
              e.question_id, e.payload;
END
$fn$;

CREATE FUNCTION bench_baseline_queue.complete(execution_ids bigint[], fencing_tokens bigint[], results jsonb[])
RETURNS int
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    accepted int;
BEGIN
    UPDATE bench_baseline_queue.executions AS e
       SET status = 'completed', result = i.result, finished_at = now(),
           owner_pid = NULL, owner_backend_start = NULL
      FROM unnest(execution_ids, fencing_tokens, results) AS i(execution_id, fencing_token, result)
     WHERE e.execution_id = i.execution_id AND e.fencing_token = i.fencing_token
       AND e.status = 'running';
    GET DIAGNOSTICS accepted = ROW_COUNT;
    RETURN accepted;
END
$fn$;

-- Pending work for both queues: n rows with the payload submit_job would
-- write, keys unique per call (tag). execguard's rows are queued as
-- submit_job queues them (execguard.queue).
CREATE FUNCTION bench_baseline_queue.fill(target regclass, n int, tag text)
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    insert_rows text := format($q$
        INSERT INTO %s (job_id, model_id, region, question_id, payload)
        SELECT 'bench-' || $1 || '-' || (g / 1000), 'llama3.2-1b', 'us-east', g::text,
               jsonb_build_object('model_id', 'llama3.2-1b', 'model_name', 'Llama 3.2 1B',
                                  'region', 'us-east', 'question_id', g::text,
                                  'prompt', 'What is the capital of France? (' || g || ')',
                                  'params', '{"temperature": 0, "max_tokens": 64}'::jsonb)
          FROM generate_series(1, $2) AS g$q$, target);
BEGIN
    IF target = 'execguard.executions'::regclass THEN
        EXECUTE format($q$
            WITH created AS (%s RETURNING execution_id, region, model_id)
            INSERT INTO execguard.queue (execution_id, region, model_id)
            SELECT execution_id, region, model_id FROM created$q$, insert_rows)
        USING tag, n;
    ELSE
        EXECUTE insert_rows USING tag, n;
    END IF;
END
$fn$;
