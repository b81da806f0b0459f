-- extension/execguard--0.5.0--0.6.0.sql
--
-- Upgrade from 0.5.0, and the last step of every fresh install (see
-- execguard--0.1.0--0.2.0.sql). CHANGELOG.md says what each version changed
-- for users; this header says what the schema step does and why.
--
--   retention: execguard.purge_jobs and execguard.purge
--       The executions table only grew. purge_jobs deletes the executions of
--       finished jobs (nothing pending or running, the last one finished
--       longer ago than a given age) in batches of a bounded number of rows,
--       one transaction each, so that a purge never holds locks or a
--       snapshot for long; the procedure purge repeats it, committing
--       between batches (for pg_cron). A purged job keeps its row in
--       execguard.jobs as a tombstone (purged_at): a claim of one of its
--       keys is refused and a resubmission of its id is an error, so work
--       that was done is never silently done again (a late redelivery of an
--       old message is exactly the duplicate execguard exists to stop).
--
--   claims of keys that no job submitted are refused
--       claim_execution created a running row for any key it was given, so
--       the runner role could create work nobody submitted. With the
--       setting execguard.claims_require_submitted_job (on by default; only
--       a superuser changes it, per database or role) a key with no row is
--       refused with the outcome 'unknown'. cancel_job of a job id that was
--       never submitted now leaves a tombstone row in execguard.jobs (with
--       the setting off, later claims of its keys are refused, and a
--       submit_job of that id is an error).
--
--   owner tracking is opt-in
--       claim_execution and claim_next tied a claim to the caller's
--       backend by default, and rescued it the moment that backend was
--       gone. Clients whose connections are short-lived (a connection per
--       request, pools that close idle connections) lost claims they were
--       still working on to other workers, and a unit ran twice. The
--       default of track_owner is now false: the lease alone decides. The
--       runner passes true on its own long-lived session.
--
--   pg_dump dumps the rows
--       The tables are members of the extension, and pg_dump leaves out the
--       rows of member tables unless the extension marks them as
--       configuration tables: a pg_dump of a database with execguard
--       restored every job and execution as gone, and the runners would
--       have run every unit again. All four are marked now, with the
--       identity sequence of executions, so a dump carries them and a
--       restore continues the ids (docs/operations.md, "Backups").
--
--   counters claims_unknown and executions_purged
--       stats_raw gains two OUT columns (before stats_reset), so it and the
--       view over it are dropped and created again.

\echo Use "ALTER EXTENSION execguard UPDATE TO '0.6.0'" to load this file. \quit

-- Tombstones ---------------------------------------------------------------

ALTER TABLE execguard.jobs
    -- Set when purge_jobs takes the job: from then on its keys are refused.
    ADD COLUMN purged_at timestamptz,
    -- Set when the last of its executions has been deleted.
    ADD COLUMN purge_finished_at timestamptz,
    -- A row cancel_job made for an id no one had submitted: spec is NULL.
    ALTER COLUMN spec DROP NOT NULL,
    ADD CONSTRAINT jobs_spec_or_tombstone CHECK (spec IS NOT NULL OR cancelled_at IS NOT NULL);

COMMENT ON COLUMN execguard.jobs.purged_at IS
    'When purge_jobs began deleting the job''s executions; its keys are refused from then on';
COMMENT ON COLUMN execguard.jobs.purge_finished_at IS
    'When the last execution of the purged job was deleted';

-- purge_jobs: jobs not yet purged, oldest first, and the purges under way.
CREATE INDEX jobs_unpurged ON execguard.jobs (submitted_at) WHERE purged_at IS NULL;
CREATE INDEX jobs_purging ON execguard.jobs (purged_at) WHERE purged_at IS NOT NULL AND purge_finished_at IS NULL;

-- pg_dump dumps the rows ------------------------------------------------------

SELECT pg_catalog.pg_extension_config_dump('execguard.regions', '');
SELECT pg_catalog.pg_extension_config_dump('execguard.jobs', '');
SELECT pg_catalog.pg_extension_config_dump('execguard.executions', '');
SELECT pg_catalog.pg_extension_config_dump('execguard.queue', '');
SELECT pg_catalog.pg_extension_config_dump(
    pg_catalog.pg_get_serial_sequence('execguard.executions', 'execution_id'), '');

-- Owner tracking is opt-in ---------------------------------------------------

-- The same functions with another default (CREATE OR REPLACE keeps their
-- grants and dependants).
CREATE OR REPLACE FUNCTION execguard.claim_execution(
    job_id      text,
    model_id    text,
    region      text,
    question_id text DEFAULT '',
    worker      text DEFAULT NULL,
    lease       interval DEFAULT '60 seconds',
    track_owner boolean DEFAULT false)
RETURNS execguard.claim
AS 'MODULE_PATHNAME', 'execguard_claim_execution'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION execguard.claim_execution(text, text, text, text, text, interval, boolean) IS
    'Atomic auto-stop check: execute only when the outcome is claimed or reclaimed';

CREATE OR REPLACE FUNCTION execguard.claim_next(
    worker      text,
    max_claims  int DEFAULT 1,
    lease       interval DEFAULT '60 seconds',
    regions     text[] DEFAULT NULL,
    models      text[] DEFAULT NULL,
    track_owner boolean DEFAULT false)
RETURNS SETOF execguard.claimed_execution
AS 'MODULE_PATHNAME', 'execguard_claim_next'
LANGUAGE C VOLATILE SECURITY DEFINER ROWS 10
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION execguard.claim_next(text, int, interval, text[], text[], boolean) IS
    'Claims up to max_claims due executions (pending, or running with an expired lease or a dead owner)';

-- Retention ----------------------------------------------------------------

CREATE FUNCTION execguard.purge_jobs(
    older_than         interval,
    max_executions     int DEFAULT 10000,
    OUT jobs_purged         int,
    OUT executions_deleted  bigint)
AS 'MODULE_PATHNAME', 'execguard_purge_jobs'
LANGUAGE C VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION execguard.purge_jobs(interval, int) IS
    'Deletes up to max_executions executions of jobs finished longer ago than older_than; the jobs stay as tombstones';

-- A procedure, so that it can commit between batches. A procedure that
-- commits can be neither SECURITY DEFINER nor have a SET clause, so it runs
-- as its caller (who needs EXECUTE on purge_jobs too) with the caller's
-- search_path: it names every object schema-qualified. Called inside a
-- transaction block it cannot commit, and says so.
--
-- Between batches it rests for pause, by default as long as the batch took:
-- a purge then takes at most half of one core and of the disk's time, and
-- the claims beside it keep their pace (bench/retention). Retention is
-- never urgent; pause => '0' purges flat out.
CREATE PROCEDURE execguard.purge(
    older_than     interval,
    max_executions int DEFAULT 10000,
    pause          interval DEFAULT NULL)
LANGUAGE plpgsql
AS $$
/* execguard internal */
DECLARE
    batch   record;
    started timestamptz;
BEGIN
    LOOP
        started := pg_catalog.clock_timestamp();
        SELECT * INTO batch FROM execguard.purge_jobs(older_than, max_executions);
        COMMIT;
        EXIT WHEN batch.jobs_purged OPERATOR(pg_catalog.=) 0
              AND batch.executions_deleted OPERATOR(pg_catalog.=) 0;
        PERFORM pg_catalog.pg_sleep_for(
            coalesce(pause, pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) started));
    END LOOP;
END
$$;
COMMENT ON PROCEDURE execguard.purge(interval, int, interval) IS
    'Runs purge_jobs until nothing is left to purge, committing after each batch and resting between batches';

-- Counters -----------------------------------------------------------------

-- A DBA's grants on the two (docs/security.md grants both to the runner
-- role) must survive their replacement: they are kept for the length of
-- this transaction and given again below.
DO $$
BEGIN
    PERFORM pg_catalog.set_config('execguard_upgrade.stats_acl',
        coalesce((SELECT relacl::text FROM pg_catalog.pg_class
                   WHERE oid = 'execguard.stats'::pg_catalog.regclass), '{}'), true);
    PERFORM pg_catalog.set_config('execguard_upgrade.stats_raw_acl',
        coalesce((SELECT proacl::text FROM pg_catalog.pg_proc
                   WHERE oid = 'execguard.stats_raw()'::pg_catalog.regprocedure), '{}'), true);
END
$$;

DROP VIEW execguard.stats;
DROP FUNCTION execguard.stats_raw();

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
    OUT claims_unknown                  bigint,
    OUT executions_purged               bigint,
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
           claims_unknown,
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
           executions_purged,
           jobs_submitted,
           stats_reset
      FROM execguard.stats_raw();
COMMENT ON VIEW execguard.stats IS
    'Cumulative counters since server start or stats_reset(); needs shared_preload_libraries = execguard';

-- Privileges ---------------------------------------------------------------

-- As for every object of the schema (execguard--0.1.0.sql): nothing for
-- PUBLIC; a DBA grants what each role needs (docs/security.md).
REVOKE ALL ON FUNCTION execguard.purge_jobs(interval, int) FROM PUBLIC;
REVOKE ALL ON PROCEDURE execguard.purge(interval, int, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION execguard.stats_raw() FROM PUBLIC;
REVOKE ALL ON execguard.stats FROM PUBLIC;

-- The grants the old stats_raw and stats had, other than their owner's.
DO $$
DECLARE
    grant_row record;
BEGIN
    FOR grant_row IN
        SELECT 'ON execguard.stats' AS target, a.*
          FROM pg_catalog.aclexplode(pg_catalog.current_setting('execguard_upgrade.stats_acl')::pg_catalog.aclitem[]) AS a
        UNION ALL
        SELECT 'ON FUNCTION execguard.stats_raw()', a.*
          FROM pg_catalog.aclexplode(pg_catalog.current_setting('execguard_upgrade.stats_raw_acl')::pg_catalog.aclitem[]) AS a
    LOOP
        CONTINUE WHEN grant_row.grantee = grant_row.grantor;
        EXECUTE pg_catalog.format('GRANT %s %s TO %s%s',
            grant_row.privilege_type, grant_row.target,
            CASE WHEN grant_row.grantee = 0 THEN 'PUBLIC'
                 ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(grant_row.grantee)) END,
            CASE WHEN grant_row.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
END
$$;
