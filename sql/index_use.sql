--
-- index_use: the writes a holder makes on one execution (heartbeat,
-- complete, complete_executions, fail, release) find it through the primary
-- key. None may scan the partial indexes on running or pending rows: with
-- many executions running, or many dead entries left by completed ones,
-- such a scan reads all of them on every call. The generic plans behind
-- these functions once did exactly that on executions_running_lease.
--
-- The same holds for their writes of execguard.queue: one probe of its
-- primary key, never a scan of the queue (the tables are listed with the
-- indexes: for a table, the count is of sequential scans).
--
-- pg_temp.index_scans_of runs one call and reports the index scans it made:
-- this backend's statistics are not flushed within a statement, so the
-- difference of pg_stat_get_xact_numscans before and after the call is what
-- the call itself did, which should be one probe of the primary key and
-- nothing else. Job ids start with 'iu-'.
--
TRUNCATE execguard.queue, execguard.executions, execguard.jobs, execguard.regions RESTART IDENTITY;

CREATE FUNCTION pg_temp.index_scans_of(call text)
RETURNS TABLE (result text, index_name text, scans bigint)
LANGUAGE plpgsql AS $$
DECLARE
    indexes oid[];
    before bigint[];
BEGIN
    SELECT array_agg(relid ORDER BY relid) INTO indexes
      FROM (SELECT indexrelid FROM pg_index
             WHERE indrelid IN ('execguard.executions'::regclass, 'execguard.queue'::regclass)
            UNION ALL VALUES ('execguard.executions'::regclass), ('execguard.queue'::regclass)) AS r(relid);
    SELECT array_agg(pg_stat_get_xact_numscans(i) ORDER BY n) INTO before
      FROM unnest(indexes) WITH ORDINALITY AS u(i, n);
    EXECUTE call INTO result;
    RETURN QUERY
        SELECT index_scans_of.result, u.i::regclass::text, pg_stat_get_xact_numscans(u.i) - before[u.n]
          FROM unnest(indexes) WITH ORDINALITY AS u(i, n)
         WHERE pg_stat_get_xact_numscans(u.i) <> before[u.n]
         ORDER BY 2;
END
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

SELECT * FROM pg_temp.index_scans_of(format('SELECT execguard.heartbeat(%s, %s)', :h1, :t1));
SELECT * FROM pg_temp.index_scans_of(format($$SELECT execguard.complete_execution(%s, %s, '{"answer": 1}')$$, :h1, :t1));
SELECT * FROM pg_temp.index_scans_of(format($$SELECT accepted FROM execguard.complete_executions(ARRAY[%s], ARRAY[%s], ARRAY['{}'::jsonb])$$, :h2, :t2));
SELECT * FROM pg_temp.index_scans_of(format($$SELECT execguard.fail_execution(%s, %s, 'transient', retry_after => '1 hour')$$, :h3, :t3));
SELECT * FROM pg_temp.index_scans_of(format('SELECT execguard.release_execution(%s, %s)', :h4, :t4));
-- A stale token reads the same one row, and is refused; the refusal reads
-- it once more, to count it as stale or as a write after a cancel.
SELECT * FROM pg_temp.index_scans_of(format($$SELECT execguard.complete_execution(%s, %s, '{}')$$, :h5, :t5 + 1));

-- The same writes as SQL statements (execguard.direct_writes off), each
-- on another held execution.
SELECT execution_id AS h6, fencing_token AS t6 FROM held ORDER BY execution_id LIMIT 1 OFFSET 5 \gset
SELECT execution_id AS h7, fencing_token AS t7 FROM held ORDER BY execution_id LIMIT 1 OFFSET 6 \gset
SELECT execution_id AS h8, fencing_token AS t8 FROM held ORDER BY execution_id LIMIT 1 OFFSET 7 \gset
-- The SQL path probes both keys with one = ANY(array) condition: up to 16
-- btree counts that as one scan per array element, from 17 on as one scan
-- (expected/index_use_1.out).
SET execguard.direct_writes = off;
SELECT * FROM pg_temp.index_scans_of(format('SELECT execguard.heartbeat(%s, %s)', :h6, :t6));
SELECT * FROM pg_temp.index_scans_of(format($$SELECT execguard.complete_execution(%s, %s, '{"answer": 1}')$$, :h6, :t6));
SELECT * FROM pg_temp.index_scans_of(format($$SELECT accepted FROM execguard.complete_executions(ARRAY[%s, %s], ARRAY[%s, %s], ARRAY['{}'::jsonb, '{}'])$$, :h7, :h8, :t7, :t8));
RESET execguard.direct_writes;

SELECT status, count(*) FROM execguard.executions GROUP BY status ORDER BY status;

\i sql/include/queue_in_step.sql
