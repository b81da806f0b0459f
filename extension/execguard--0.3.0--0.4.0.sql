-- extension/execguard--0.3.0--0.4.0.sql
--
-- Upgrade from 0.3.0, and the last step of every fresh install (see
-- execguard--0.1.0--0.2.0.sql).
--
-- What changes, and why:
--
--   execguard.queue: the indexes of the queue move off the executions table
--       claim_next found due pending rows through a partial index on
--       executions WHERE status = 'pending', and rescue found expired
--       leases through one on lease_expires_at WHERE status = 'running'.
--       Because status and lease_expires_at were indexed, no claim,
--       completion or heartbeat could be a HOT update: each wrote a new
--       version of the row with new entries in every index of the table,
--       the wide unique key included, and left a dead version that only
--       vacuum could remove. After 500,000 executions the table was 790 MB
--       for 977,000 rows, and each autovacuum pass over it cost claims up
--       to 42% of their throughput (docs/benchmarks.md).
--
--       Now a narrow side table holds one row per execution that is still
--       to finish: lease_expires_at NULL while it is pending, its lease
--       while it is running. Its two partial indexes do what the old ones
--       did. No index of execguard.executions covers a column that a claim,
--       completion, heartbeat, failure or release changes, so with room on
--       the page (fillfactor 60) those are HOT updates: no index entries,
--       and the old version is pruned in place without vacuum.
--
--       execguard.queue is part of the extension's state, not an interface:
--       every execguard function keeps it in step with executions in the
--       same statement. Its foreign key deletes a queue row with its
--       execution, and makes TRUNCATE of executions name the queue too
--       (TRUNCATE execguard.executions, execguard.queue), so that no queue
--       row outlives its execution, even across RESTART IDENTITY.
--
--   library and schema go together
--       The 0.4.0 library needs this table. Against a database whose
--       extension is older, its functions raise an error whose hint is to
--       run ALTER EXTENSION execguard UPDATE (as Citus does), rather than
--       half-work. Install the library, then update each database.
--
-- The upgrade reads executions once (to fill the queue with its pending and
-- running rows) and drops two indexes, under the locks those take; it does
-- not rewrite the table. fillfactor applies to pages written from now on.

\echo Use "ALTER EXTENSION execguard UPDATE TO '0.4.0'" to load this file. \quit

CREATE TABLE execguard.queue (
    execution_id     bigint PRIMARY KEY
                     REFERENCES execguard.executions (execution_id) ON DELETE CASCADE,
    -- NULL: pending. Otherwise running, with the lease of executions.
    lease_expires_at timestamptz
)
-- Every claim, heartbeat and finish leaves a dead version here, but the
-- table holds only the unfinished executions: vacuum it often, which is
-- cheap.
WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
      autovacuum_vacuum_cost_delay = 0, autovacuum_analyze_scale_factor = 0.02);

-- claim_next: pending rows, oldest first. execution_id is the key, rather
-- than the primary key itself, so that a scan never walks running rows.
CREATE INDEX queue_pending ON execguard.queue (execution_id) WHERE lease_expires_at IS NULL;
-- claim_next rescue: running rows by lease expiry.
CREATE INDEX queue_running ON execguard.queue (lease_expires_at) WHERE lease_expires_at IS NOT NULL;

COMMENT ON TABLE execguard.queue IS
    'The executions still to finish, pending (lease NULL) or running: claim_next''s index, kept by execguard''s functions';

INSERT INTO execguard.queue (execution_id, lease_expires_at)
SELECT execution_id, CASE WHEN status = 'running' THEN lease_expires_at END
  FROM execguard.executions
 WHERE status IN ('pending', 'running');

DROP INDEX execguard.executions_pending;
DROP INDEX execguard.executions_running_lease;

-- Room on each page for the versions a claim and a completion write, so
-- that both are HOT updates (a completed row grows by its result).
ALTER TABLE execguard.executions SET (fillfactor = 60);

REVOKE ALL ON TABLE execguard.queue FROM PUBLIC;
