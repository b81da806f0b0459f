--
-- index_use: the writes a holder makes on one execution (heartbeat,
-- complete, complete_executions, fail, release) find it through the primary
-- key. None may scan the partial indexes on running or pending rows: with
-- many executions running, or many dead entries left by completed ones,
-- such a scan reads all of them on every call. The generic plans behind
-- these functions once did exactly that on executions_running_lease.
--
-- Each call runs inside a transaction block, where this backend's index
-- statistics are not flushed, so the difference of
-- pg_stat_get_xact_numscans before and after the call is what the call
-- itself did: one scan of the primary key and nothing else. Job ids start with 'iu-'.
--
TRUNCATE execguard.executions, execguard.jobs, execguard.regions RESTART IDENTITY;

CREATE FUNCTION pg_temp.index_reads()
RETURNS TABLE (index_name text, scans bigint)
LANGUAGE sql AS $$
    SELECT c.relname::text, pg_stat_get_xact_numscans(c.oid)
      FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid
     WHERE i.indrelid = 'execguard.executions'::regclass
$$;

CREATE TEMP TABLE before AS SELECT * FROM pg_temp.index_reads() WITH NO DATA;

-- The differences since pg_temp.index_reads() was saved in pg_temp.before.
CREATE FUNCTION pg_temp.index_reads_since()
RETURNS TABLE (index_name text, scans bigint)
LANGUAGE sql AS $$
    SELECT a.index_name, a.scans - b.scans
      FROM pg_temp.index_reads() AS a JOIN pg_temp.before AS b USING (index_name)
     WHERE a.scans <> b.scans
     ORDER BY a.index_name
$$;

-- 300 completed executions (whose rows left dead entries in the index on
-- running rows) and 600 pending; statistics as autovacuum would gather
-- them, when nothing was running; then 300 claimed and held. That is the
-- shape that misled the planner: the index on running rows looks nearly
-- empty and is cheaper to scan whole than the primary key to probe.
SELECT executions_created FROM execguard.submit_job(
    jsonb_build_object('id', 'iu-done', 'models', '["m"]'::jsonb, 'regions', '["r"]'::jsonb,
                       'questions', (SELECT jsonb_agg(jsonb_build_object('id', 'q' || g, 'prompt', 'p'))
                                       FROM generate_series(1, 300) AS g)));
SELECT count(*) FILTER (WHERE execguard.complete_execution(execution_id, fencing_token, '{}')) AS completed
  FROM execguard.claim_next('iu-w', 300);
SELECT executions_created FROM execguard.submit_job(
    jsonb_build_object('id', 'iu-run', 'models', '["m"]'::jsonb, 'regions', '["r"]'::jsonb,
                       'questions', (SELECT jsonb_agg(jsonb_build_object('id', 'q' || g, 'prompt', 'p'))
                                       FROM generate_series(1, 600) AS g)));
ANALYZE execguard.executions;
CREATE TEMP TABLE held AS SELECT execution_id, fencing_token FROM execguard.claim_next('iu-w', 300);
SELECT count(*) AS held FROM held;

-- The calls, each on its own held execution.
SELECT execution_id AS h1, fencing_token AS t1 FROM held ORDER BY execution_id LIMIT 1 OFFSET 0 \gset
SELECT execution_id AS h2, fencing_token AS t2 FROM held ORDER BY execution_id LIMIT 1 OFFSET 1 \gset
SELECT execution_id AS h3, fencing_token AS t3 FROM held ORDER BY execution_id LIMIT 1 OFFSET 2 \gset
SELECT execution_id AS h4, fencing_token AS t4 FROM held ORDER BY execution_id LIMIT 1 OFFSET 3 \gset
SELECT execution_id AS h5, fencing_token AS t5 FROM held ORDER BY execution_id LIMIT 1 OFFSET 4 \gset

BEGIN;
TRUNCATE before;
INSERT INTO before SELECT * FROM pg_temp.index_reads();
SELECT execguard.heartbeat(:h1, :t1) AS heartbeat;
SELECT * FROM pg_temp.index_reads_since();
COMMIT;

BEGIN;
TRUNCATE before;
INSERT INTO before SELECT * FROM pg_temp.index_reads();
SELECT execguard.complete_execution(:h1, :t1, '{"answer": 1}') AS complete;
SELECT * FROM pg_temp.index_reads_since();
COMMIT;

BEGIN;
TRUNCATE before;
INSERT INTO before SELECT * FROM pg_temp.index_reads();
SELECT accepted FROM execguard.complete_executions(ARRAY[:h2]::bigint[], ARRAY[:t2]::bigint[], ARRAY['{}']::jsonb[]);
SELECT * FROM pg_temp.index_reads_since();
COMMIT;

BEGIN;
TRUNCATE before;
INSERT INTO before SELECT * FROM pg_temp.index_reads();
SELECT execguard.fail_execution(:h3, :t3, 'transient', retry_after => '1 hour') AS fail;
SELECT * FROM pg_temp.index_reads_since();
COMMIT;

BEGIN;
TRUNCATE before;
INSERT INTO before SELECT * FROM pg_temp.index_reads();
SELECT execguard.release_execution(:h4, :t4) AS release;
SELECT * FROM pg_temp.index_reads_since();
COMMIT;

-- A stale token reads the same one row, and is refused.
BEGIN;
TRUNCATE before;
INSERT INTO before SELECT * FROM pg_temp.index_reads();
SELECT execguard.complete_execution(:h5, :t5 + 1, '{}') AS complete_stale;
SELECT * FROM pg_temp.index_reads_since();
COMMIT;

SELECT status, count(*) FROM execguard.executions GROUP BY status ORDER BY status;
