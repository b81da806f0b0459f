-- extension/execguard--0.1.0.sql
--
-- Install script for execguard 0.1.0. Frozen: it is what 0.1.0 installed,
-- and every later version is this script plus the upgrade scripts
-- (execguard--0.1.0--0.2.0.sql, ...), which is also how CREATE EXTENSION
-- installs the current version. Change the schema in a new upgrade script.
--
-- Glossary
--   job            one submitted spec: models x regions x questions
--   execution      one unit of work: (job_id, model_id, region, question_id),
--                  unique by index, so it can exist, and be granted, only once
--   grant          a claim outcome that lets the caller execute (claimed or
--                  reclaimed); every grant increments fencing_token
--   fencing token  proof of ownership; heartbeat/complete/fail/release are
--                  refused (and counted) unless the caller presents the
--                  row's current token
--   lease          how long a grant lasts without a heartbeat
--
-- Security: every object is revoked from PUBLIC. The functions that change
-- executions are SECURITY DEFINER with a fixed search_path and reference
-- every relation schema-qualified, so a DBA grants EXECUTE on exactly the
-- functions a role needs (docs/security.md).

\echo Use "CREATE EXTENSION execguard" to load this file. \quit

-- Regions that submit_job accepts. Empty table: any region is accepted.
CREATE TABLE execguard.regions (
    name        text PRIMARY KEY
                CHECK (name <> '' AND name = lower(btrim(name))),
    description text
);
COMMENT ON TABLE execguard.regions IS
    'Known region names. When it has rows, submit_job refuses any other region.';

CREATE TABLE execguard.jobs (
    job_id       text PRIMARY KEY,
    -- The normalised spec: resubmitting the same job id is accepted only
    -- when this is equal, so a job is never silently merged or reset.
    spec         jsonb NOT NULL,
    max_attempts int NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
    submitted_at timestamptz NOT NULL DEFAULT now(),
    -- Set by cancel_job: later claims of the job's keys are refused.
    cancelled_at timestamptz
);

CREATE TABLE execguard.executions (
    execution_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id              text NOT NULL,
    model_id            text NOT NULL,
    region              text NOT NULL,
    question_id         text NOT NULL DEFAULT '',
    status              text NOT NULL DEFAULT 'pending'
                        CONSTRAINT executions_status_check
                        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    -- Number of grants so far (a release gives its attempt back).
    attempt             int NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts        int NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    -- Strictly increases on every grant of this row.
    fencing_token       bigint NOT NULL DEFAULT 0,
    worker              text,
    -- The granted session's backend, so a claim whose session died can be
    -- rescued at once instead of waiting for the lease. NULL when the
    -- claimer opted out (a transaction-mode pooler hides the real session).
    owner_pid           int,
    owner_backend_start timestamptz,
    lease_expires_at    timestamptz,
    -- Retry backoff: a pending row is not due before this.
    not_before          timestamptz,
    payload             jsonb NOT NULL DEFAULT '{}',
    result              jsonb,
    error               text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    CONSTRAINT executions_running_has_lease
        CHECK (status <> 'running' OR lease_expires_at IS NOT NULL)
)
-- A queue table: every claim and completion leaves a dead row version and
-- dead entries in the partial indexes on pending and running rows, which
-- claim_next walks. Vacuum after ~1% churn instead of the default 20%, so a
-- table of millions of finished executions does not make every claim wade
-- through hundreds of thousands of dead entries.
WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
      autovacuum_vacuum_cost_delay = 0, autovacuum_analyze_scale_factor = 0.02);

-- The guarantee: one row per unit of work, ever.
CREATE UNIQUE INDEX executions_key
    ON execguard.executions (job_id, model_id, region, question_id);
-- claim_next: due pending rows, oldest first. Partial, so it stays as small
-- as the queue however many rows have completed.
CREATE INDEX executions_pending
    ON execguard.executions (execution_id) WHERE status = 'pending';
-- claim_next rescue: running rows by lease expiry. "lease_expires_at IS NOT
-- NULL" adds nothing (running rows have a lease) but keeps the planner off
-- this index for lookups by execution_id on running rows (complete,
-- heartbeat, fail, release): "status = 'running'" alone would match its
-- predicate, and a generic plan then prefers a whole scan of this small
-- index to the primary key, reading every running row and every dead
-- entry of a completed one on each call.
CREATE INDEX executions_running_lease
    ON execguard.executions (lease_expires_at)
    WHERE status = 'running' AND lease_expires_at IS NOT NULL;
-- claim_next rescue of claims whose owner backend is gone.
CREATE INDEX executions_running_owner
    ON execguard.executions (owner_pid, owner_backend_start)
    WHERE status = 'running' AND owner_pid IS NOT NULL;

COMMENT ON TABLE execguard.executions IS
    'One row per (job_id, model_id, region, question_id): the unit of work that runs at most once at a time and completes once.';

CREATE TYPE execguard.claim AS (
    outcome       text,
    execution_id  bigint,
    fencing_token bigint,
    attempt       int
);

CREATE TYPE execguard.claimed_execution AS (
    execution_id  bigint,
    fencing_token bigint,
    attempt       int,
    job_id        text,
    model_id      text,
    region        text,
    question_id   text,
    payload       jsonb
);

-- Normalisation ------------------------------------------------------------

CREATE FUNCTION execguard.normalize_models(models jsonb, default_regions text[] DEFAULT '{}')
RETURNS jsonb
AS 'MODULE_PATHNAME', 'execguard_normalize_models'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION execguard.normalize_models(jsonb, text[]) IS
    'Canonical, deduplicated model list: [{id, name, provider, regions}] in first-seen order';

CREATE FUNCTION execguard.submit_job(spec jsonb)
RETURNS TABLE (job_id text, executions_created int, executions_existing int, duplicates_removed int)
AS 'MODULE_PATHNAME', 'execguard_submit_job'
LANGUAGE C VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION execguard.submit_job(jsonb) IS
    'Creates one pending execution per (model, region, question); idempotent per job id';

-- Claims -------------------------------------------------------------------

CREATE FUNCTION execguard.claim_execution(
    job_id      text,
    model_id    text,
    region      text,
    question_id text DEFAULT '',
    worker      text DEFAULT NULL,
    lease       interval DEFAULT '60 seconds',
    track_owner boolean DEFAULT true)
RETURNS execguard.claim
AS 'MODULE_PATHNAME', 'execguard_claim_execution'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION execguard.claim_execution(text, text, text, text, text, interval, boolean) IS
    'Atomic auto-stop check: execute only when the outcome is claimed or reclaimed';

CREATE FUNCTION execguard.claim_next(
    worker      text,
    max_claims  int DEFAULT 1,
    lease       interval DEFAULT '60 seconds',
    regions     text[] DEFAULT NULL,
    models      text[] DEFAULT NULL,
    track_owner boolean DEFAULT true)
RETURNS SETOF execguard.claimed_execution
AS 'MODULE_PATHNAME', 'execguard_claim_next'
LANGUAGE C VOLATILE SECURITY DEFINER ROWS 10
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION execguard.claim_next(text, int, interval, text[], text[], boolean) IS
    'Claims up to max_claims due executions (pending, or running with an expired lease or a dead owner)';

CREATE FUNCTION execguard.heartbeat(
    execution_id  bigint,
    fencing_token bigint,
    lease         interval DEFAULT '60 seconds')
RETURNS boolean
AS 'MODULE_PATHNAME', 'execguard_heartbeat'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION execguard.heartbeat(bigint, bigint, interval) IS
    'Extends the lease; false means stop now (token stale, or the execution was cancelled)';

CREATE FUNCTION execguard.complete_execution(
    execution_id  bigint,
    fencing_token bigint,
    result        jsonb)
RETURNS boolean
AS 'MODULE_PATHNAME', 'execguard_complete_execution'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION execguard.complete_execution(bigint, bigint, jsonb) IS
    'Stores the result only if the row is running with exactly this token; a refusal is counted as a stale write';

CREATE FUNCTION execguard.complete_executions(
    execution_ids  bigint[],
    fencing_tokens bigint[],
    results        jsonb[])
RETURNS TABLE (execution_id bigint, accepted boolean)
AS 'MODULE_PATHNAME', 'execguard_complete_executions'
LANGUAGE C VOLATILE SECURITY DEFINER ROWS 50
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION execguard.complete_executions(bigint[], bigint[], jsonb[]) IS
    'Batch complete_execution: one row per input position saying whether it was accepted';

CREATE FUNCTION execguard.fail_execution(
    execution_id  bigint,
    fencing_token bigint,
    error         text,
    retryable     boolean DEFAULT true,
    retry_after   interval DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'execguard_fail_execution'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION execguard.fail_execution(bigint, bigint, text, boolean, interval) IS
    'retry_scheduled, failed (not retryable or attempts exhausted) or stale';

CREATE FUNCTION execguard.release_execution(
    execution_id  bigint,
    fencing_token bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'execguard_release_execution'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION execguard.release_execution(bigint, bigint) IS
    'Back to pending without using up an attempt (graceful shutdown)';

CREATE FUNCTION execguard.cancel_job(job_id text)
RETURNS int
AS 'MODULE_PATHNAME', 'execguard_cancel_job'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION execguard.cancel_job(text) IS
    'Cancels pending and running executions of a job (never completed ones); NOTIFY execguard_cancel';

CREATE FUNCTION execguard.retry_job(job_id text)
RETURNS int
AS 'MODULE_PATHNAME', 'execguard_retry_job'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION execguard.retry_job(text) IS
    'Puts failed executions of a job back to pending with a fresh attempt budget; completed ones never re-run';

-- Counters -----------------------------------------------------------------

CREATE FUNCTION execguard.stats_raw(
    OUT claims_claimed                  bigint,
    OUT claims_reclaimed                bigint,
    OUT claims_running                  bigint,
    OUT claims_completed                bigint,
    OUT claims_cancelled                bigint,
    OUT claims_failed                   bigint,
    OUT claims_backoff                  bigint,
    OUT normalization_duplicates_removed bigint,
    OUT stale_writes_rejected           bigint,
    OUT leases_rescued_expired          bigint,
    OUT leases_rescued_owner_gone       bigint,
    OUT executions_cancelled            bigint,
    OUT retries_scheduled               bigint,
    OUT executions_completed            bigint,
    OUT executions_failed               bigint,
    OUT executions_released             bigint,
    OUT jobs_submitted                  bigint,
    OUT stats_reset                     timestamptz)
AS 'MODULE_PATHNAME', 'execguard_stats'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

CREATE VIEW execguard.stats AS
    SELECT claims_claimed,
           claims_reclaimed,
           claims_running,
           claims_completed,
           claims_cancelled,
           claims_failed,
           claims_backoff,
           -- The two layers at which a duplicate execution was stopped.
           claims_running + claims_completed AS duplicates_prevented_claim,
           normalization_duplicates_removed  AS duplicates_prevented_normalization,
           stale_writes_rejected,
           leases_rescued_expired,
           leases_rescued_owner_gone,
           executions_cancelled,
           retries_scheduled,
           executions_completed,
           executions_failed,
           executions_released,
           jobs_submitted,
           stats_reset
      FROM execguard.stats_raw();
COMMENT ON VIEW execguard.stats IS
    'Cumulative counters since server start or stats_reset(); needs shared_preload_libraries = execguard';

CREATE FUNCTION execguard.stats_reset()
RETURNS void
AS 'MODULE_PATHNAME', 'execguard_stats_reset'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

-- Queue summary for monitoring: cheap enough for a scrape (one pass over the
-- partial indexes for the live states, one count for the rest).
CREATE FUNCTION execguard.queue_summary(
    OUT status text,
    OUT executions bigint,
    OUT oldest_age_seconds double precision)
RETURNS SETOF record
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.status,
           count(e.execution_id),
           coalesce(extract(epoch FROM now() - min(e.created_at))::double precision, 0)
      FROM unnest(ARRAY['pending', 'running', 'completed', 'failed', 'cancelled']) AS s(status)
      LEFT JOIN execguard.executions e ON e.status = s.status
     GROUP BY s.status
$$;
COMMENT ON FUNCTION execguard.queue_summary() IS
    'Executions by status and the age of the oldest one in each status';

-- Privileges ---------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA execguard FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA execguard FROM PUBLIC;
REVOKE ALL ON SCHEMA execguard FROM PUBLIC;
