-- extension/execguard--0.4.0--0.5.0.sql
--
-- Upgrade from 0.4.0, and the last step of every fresh install (see
-- execguard--0.1.0--0.2.0.sql).
--
-- What changes, and why:
--
--   no JIT for execguard's own statements
--       The planner decides to JIT-compile a statement by its estimated
--       cost, and the estimates of execguard's statements grow with the
--       tables. On a stock server (jit = on) a statement of claim_next's
--       rescue pass crossed jit_above_cost with 300,000 pending rows and was
--       compiled on every execution (about 380 ms), and claims fell from
--       thousands per second to five. The library's planner hook now takes
--       the JIT decision back for every statement whose text starts with
--       the marker /* execguard internal */ (extension/pg/no_jit.h); its SPI
--       statements carry it, and the SQL-language functions below now start
--       their bodies with it. Nothing else about them changes.

\echo Use "ALTER EXTENSION execguard UPDATE TO '0.5.0'" to load this file. \quit

CREATE OR REPLACE FUNCTION execguard.execution_state(execution_id bigint, fencing_token bigint)
RETURNS text
LANGUAGE sql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    /* execguard internal */
    SELECT CASE WHEN e.fencing_token = $2 THEN e.status::text ELSE 'stale' END
      FROM execguard.executions AS e
     WHERE e.execution_id = $1
$$;

CREATE OR REPLACE FUNCTION execguard.queue_summary(
    OUT status text,
    OUT executions bigint,
    OUT oldest_age_seconds double precision)
RETURNS SETOF record
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    /* execguard internal */
    SELECT s.status,
           count(e.execution_id),
           coalesce(extract(epoch FROM now() - min(e.created_at))::double precision, 0)
      FROM unnest(ARRAY['pending', 'running', 'completed', 'failed', 'cancelled']) AS s(status)
      LEFT JOIN execguard.executions e ON e.status = s.status
     GROUP BY s.status
$$;
