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
--
--   execguard.queue carries region and model_id
--       claim_next's filters found their rows by walking the queue's index
--       of all pending rows, oldest first, and reading each one's execution
--       to compare its region and model: a worker serving one region
--       walked every pending row of the others. With 300,000 pending rows
--       in a region nobody served, a filtered call with no work took 1.4 s
--       of server CPU, and filtered claims ran at 1.4 a second. Queue rows
--       now hold their execution's region and model_id (which never
--       change), and three more partial indexes of pending rows lead with
--       them: claim_next with a filter of regions, of models, or of both
--       scans one index range per region, model, or (region, model) pair,
--       each oldest first, and merges them by execution_id.
--
--       The new indexes cost submit_job an index entry each per unit;
--       claims, heartbeats and completions are unchanged, because a
--       running queue row is in none of them (docs/benchmarks.md).

\echo Use "ALTER EXTENSION execguard UPDATE TO '0.5.0'" to load this file. \quit

-- The schema must be a superuser's. CREATE EXTENSION installs into a schema
-- called execguard that already exists, and a role with CREATE on the
-- database could have made it first: as its owner she could then rename it
-- and put tables of her own, with triggers, under the names the SECURITY
-- DEFINER functions use, and have them run her code as the extension's
-- owner. So the install (this is its last step) and every update refuse a
-- schema owned by anyone but a superuser, and nothing is left behind.
DO $$
DECLARE
    owner_name name;
BEGIN
    SELECT r.rolname INTO owner_name
      FROM pg_catalog.pg_namespace AS n JOIN pg_catalog.pg_roles AS r ON r.oid = n.nspowner
     WHERE n.nspname = 'execguard' AND NOT r.rolsuper;
    IF FOUND THEN
        RAISE EXCEPTION 'schema "execguard" is owned by role "%", which is not a superuser', owner_name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Its owner could replace the tables the extension''s SECURITY DEFINER functions use.',
                  HINT = 'Drop or rename that schema and create the extension again (it creates its own), '
                         'or give it to a superuser (ALTER SCHEMA execguard OWNER TO ...).';
    END IF;
END
$$;

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

ALTER TABLE execguard.queue
    ADD COLUMN region text COLLATE "C",
    ADD COLUMN model_id text COLLATE "C";
UPDATE execguard.queue AS q
   SET region = e.region, model_id = e.model_id
  FROM execguard.executions AS e
 WHERE e.execution_id = q.execution_id;
ALTER TABLE execguard.queue
    ALTER COLUMN region SET NOT NULL,
    ALTER COLUMN model_id SET NOT NULL;

-- claim_next with filters: pending rows by region, by model, and by both,
-- each oldest first.
CREATE INDEX queue_pending_region ON execguard.queue (region, execution_id)
    WHERE lease_expires_at IS NULL;
CREATE INDEX queue_pending_model ON execguard.queue (model_id, execution_id)
    WHERE lease_expires_at IS NULL;
CREATE INDEX queue_pending_region_model ON execguard.queue (region, model_id, execution_id)
    WHERE lease_expires_at IS NULL;

COMMENT ON TABLE execguard.queue IS
    'The executions still to finish, pending (lease NULL) or running, with their region and model: claim_next''s index, kept by execguard''s functions';
