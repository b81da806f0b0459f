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
--       never submitted now leaves a tombstone row in execguard.jobs (no
--       spec): later claims of its keys are refused ('cancelled', whatever
--       the setting), and a submit_job of that id is an error.
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
--   queue_summary reads the queue, not every execution
--       (see the statement below).
--
--   counters claims_unknown, executions_purged and writes_after_cancel
--       from a new function, stats_extra, as the last columns of the view
--       execguard.stats; stats_raw and the grants on both stay as they were.
--       A heartbeat or write refused because cancel_job cancelled the
--       execution under the caller's grant is counted as writes_after_cancel,
--       no longer as a stale write: every cancel of work in flight fired the
--       stale-write alert.

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
-- Between batches it rests for pause, by default three times as long as
-- the batch took: a purge then takes at most a quarter of one core and of
-- the disk's time, and the claims beside it keep their pace (on the 2-core
-- test machine 0.81x with the rest as long as the batch, so three times:
-- bench/retention). Retention is never urgent; pause => '0' purges flat
-- out.
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
            coalesce(pause, (pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) started) OPERATOR(pg_catalog.*) 3));
    END LOOP;
END
$$;
COMMENT ON PROCEDURE execguard.purge(interval, int, interval) IS
    'Runs purge_jobs until nothing is left to purge, committing after each batch and resting between batches';

-- Counters -----------------------------------------------------------------

-- stats_raw() keeps its columns: a DBA's grants on it and on the view stay
-- as they are (dropping and creating it again would lose them, and grants
-- given again by this script would become the extension's own initial
-- privileges, which pg_dump leaves out). The new counters come from a
-- function of their own, and the view gains them as its last columns.
CREATE FUNCTION execguard.stats_extra(
    OUT claims_unknown      bigint,
    OUT executions_purged   bigint,
    OUT writes_after_cancel bigint)
AS 'MODULE_PATHNAME', 'execguard_stats_extra'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

CREATE OR REPLACE VIEW execguard.stats AS
    SELECT r.claims_claimed,
           r.claims_reclaimed,
           r.claims_running,
           r.claims_completed,
           r.claims_cancelled,
           r.claims_failed,
           r.claims_backoff,
           -- The two layers at which a duplicate execution was stopped.
           r.claims_running + r.claims_completed AS duplicates_prevented_claim,
           r.normalization_duplicates_removed  AS duplicates_prevented_normalization,
           r.stale_writes_rejected,
           r.leases_rescued_expired,
           r.leases_rescued_owner_gone,
           r.executions_cancelled,
           r.retries_scheduled,
           r.executions_completed,
           r.executions_failed,
           r.executions_released,
           r.jobs_submitted,
           r.stats_reset,
           x.claims_unknown,
           x.executions_purged,
           -- Heartbeats and writes refused because cancel_job cancelled the
           -- execution under the caller's grant (not stale: told to stop).
           x.writes_after_cancel
      FROM execguard.stats_raw() AS r, execguard.stats_extra() AS x;

-- queue_summary without reading every execution ---------------------------

-- It counted every execution by status, a whole read of the table on every
-- scrape of every runner: about 1.5 s per million rows, past the runner's
-- 5 s statement_timeout at a few million. Now pending and running come,
-- exact, from execguard.queue (an index-only count of the backlog; the
-- oldest pending one is the one with the lowest id), and the finished
-- statuses, with no age, are counted while the table holds fewer than
-- 100,000 rows by its statistics (pg_class.reltuples; -1 before the first
-- ANALYZE) and estimated above: the row count times the status's
-- frequency in its statistics (pg_stats, which autoanalyze refreshes after
-- 2% of the rows change). Same signature, so grants stay.
CREATE OR REPLACE FUNCTION execguard.queue_summary(
    OUT status text,
    OUT executions bigint,
    OUT oldest_age_seconds double precision)
RETURNS SETOF record
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    /* execguard internal */
    SELECT 'pending',
           (SELECT count(*) FROM execguard.queue WHERE lease_expires_at IS NULL),
           coalesce((SELECT extract(epoch FROM now() - e.created_at)::double precision
                       FROM execguard.queue AS q
                       JOIN execguard.executions AS e ON e.execution_id = q.execution_id
                      WHERE q.lease_expires_at IS NULL
                      ORDER BY q.execution_id LIMIT 1), 0)
    UNION ALL
    SELECT 'running', count(*),
           coalesce(extract(epoch FROM now() - min(e.created_at))::double precision, 0)
      FROM execguard.queue AS q
      JOIN execguard.executions AS e ON e.execution_id = q.execution_id
     WHERE q.lease_expires_at IS NOT NULL
    UNION ALL
    SELECT f.status,
           CASE WHEN c.reltuples < 100000
                THEN (SELECT count(*) FROM execguard.executions AS e WHERE e.status = f.status)
                ELSE round(c.reltuples * coalesce(
                         (SELECT m.freq
                            FROM pg_stats AS s,
                                 unnest(s.most_common_vals::text::text[], s.most_common_freqs) AS m(val, freq)
                           WHERE s.schemaname = 'execguard' AND s.tablename = 'executions'
                             AND s.attname = 'status' AND m.val = f.status), 0))::bigint
           END,
           NULL::double precision
      FROM unnest(ARRAY['completed', 'failed', 'cancelled']) AS f(status),
           pg_class AS c
     WHERE c.oid = 'execguard.executions'::regclass
$$;
COMMENT ON FUNCTION execguard.queue_summary() IS
    'Executions by status: pending and running exact, with the age of the oldest; completed, failed and cancelled exact below 100,000 executions, estimated from the table''s statistics above';

-- Privileges ---------------------------------------------------------------

-- As for every object of the schema (execguard--0.1.0.sql): nothing for
-- PUBLIC; a DBA grants what each role needs (docs/security.md). Except
-- stats_extra: whoever may read the view must be able to call it, and the
-- roles that read the view today were granted stats_raw and the view, not
-- it; PUBLIC still needs USAGE on the schema, which only the DBA grants.
REVOKE ALL ON FUNCTION execguard.purge_jobs(interval, int) FROM PUBLIC;
REVOKE ALL ON PROCEDURE execguard.purge(interval, int, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION execguard.stats_extra() TO PUBLIC;
