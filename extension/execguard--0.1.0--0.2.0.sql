-- extension/execguard--0.1.0--0.2.0.sql
--
-- Upgrade from 0.1.0, and the second half of every fresh install: 0.2.0 has
-- no install script of its own, so CREATE EXTENSION runs the 0.1.0 script and
-- then this one, and the upgrade path is the install path (pg_cron does the
-- same).
--
-- What changes, and why:
--
--   key columns COLLATE "C"
--       job_id, model_id, region, question_id (and jobs.job_id,
--       regions.name) are identifiers compared byte for byte, which is what
--       canonicalisation already assumes. Under the database's collation the
--       unique key was ordered by the C library's locale tables: slower to
--       compare (every claim and completion descends this index), and a
--       glibc or ICU upgrade that changes the order corrupts the very index
--       that makes an execution unique. "C" order never changes.
--
--   status, attempt and max_attempts are domains
--       Their CHECK constraints move from the table to the domains
--       execguard.execution_status, execguard.attempt_count and
--       execguard.attempt_limit. PostgreSQL compiles a table CHECK
--       constraint afresh (read from its text, then planned) in every
--       statement that writes the table, and a domain's constraint once per
--       session: with four table constraints that was about a quarter of the
--       instructions of a claim + complete cycle (callgrind,
--       docs/benchmarks.md). The one constraint that spans two columns,
--       executions_running_has_lease, stays on the table.
--
--   no index on running rows by owner
--       executions_running_owner was added to with every owner-tracked
--       claim, to serve a sweep that reads every running row anyway (and
--       now reads them through executions_running_lease).
--
--   no deduplication in the two unique indexes
--       Every claim and completion adds a version of an unchanged key to
--       the primary key and to executions_key. Deduplication merged those
--       versions into posting lists, re-comparing every column of a full
--       leaf page each time; bottom-up deletion, which removes them instead,
--       does the job alone. Claim + complete batches: 27% fewer
--       instructions.
--
-- The column type changes rewrite execguard.executions once, under an ACCESS
-- EXCLUSIVE lock: on a table of tens of millions of executions, schedule the
-- update for a quiet moment.

\echo Use "ALTER EXTENSION execguard UPDATE TO '0.2.0'" to load this file. \quit

CREATE DOMAIN execguard.execution_status AS text
    CONSTRAINT execution_status_check
    CHECK (VALUE IN ('pending', 'running', 'completed', 'failed', 'cancelled'));
COMMENT ON DOMAIN execguard.execution_status IS
    'State of an execution: pending, running, completed, failed or cancelled';

-- Grants so far (a release gives its attempt back).
CREATE DOMAIN execguard.attempt_count AS int
    CONSTRAINT attempt_count_check CHECK (VALUE >= 0);
COMMENT ON DOMAIN execguard.attempt_count IS 'Number of grants of an execution so far';

CREATE DOMAIN execguard.attempt_limit AS int
    CONSTRAINT attempt_limit_check CHECK (VALUE >= 1);
COMMENT ON DOMAIN execguard.attempt_limit IS 'Grants an execution may have before it fails';

-- Dropped before the rewrite, so that it rebuilds only what stays. The
-- running-lease index is recreated rather than kept: builds of 0.1.0 from
-- before its predicate gained "lease_expires_at IS NOT NULL" let the
-- planner scan it whole for writes by execution_id.
DROP INDEX execguard.executions_running_owner;
DROP INDEX execguard.executions_running_lease;
-- Set before the rewrite, which rebuilds every index with its options.
ALTER INDEX execguard.executions_pkey SET (deduplicate_items = off);
ALTER INDEX execguard.executions_key SET (deduplicate_items = off);

ALTER TABLE execguard.executions
    DROP CONSTRAINT executions_status_check,
    DROP CONSTRAINT executions_attempt_check,
    DROP CONSTRAINT executions_max_attempts_check,
    ALTER COLUMN job_id TYPE text COLLATE "C",
    ALTER COLUMN model_id TYPE text COLLATE "C",
    ALTER COLUMN region TYPE text COLLATE "C",
    ALTER COLUMN question_id TYPE text COLLATE "C",
    ALTER COLUMN status TYPE execguard.execution_status,
    ALTER COLUMN attempt TYPE execguard.attempt_count,
    ALTER COLUMN max_attempts TYPE execguard.attempt_limit;

-- See executions_running_lease in the 0.1.0 script for the predicate.
CREATE INDEX executions_running_lease
    ON execguard.executions (lease_expires_at)
    WHERE status = 'running' AND lease_expires_at IS NOT NULL;

ALTER TABLE execguard.jobs ALTER COLUMN job_id TYPE text COLLATE "C";

-- lower() under "C" folds ASCII letters only, as canonicalisation does: the
-- database's collation would also reject the canonical form of a region
-- spelt with a capital non-ASCII letter.
ALTER TABLE execguard.regions
    DROP CONSTRAINT regions_name_check,
    ALTER COLUMN name TYPE text COLLATE "C",
    ADD CONSTRAINT regions_name_check CHECK (name <> '' AND name = lower(btrim(name)));

-- 0.1.0 left its two composite types usable by PUBLIC. Calling a function
-- needs no privilege on its result type, so nothing granted changes.
REVOKE ALL ON TYPE execguard.claim, execguard.claimed_execution, execguard.execution_status,
    execguard.attempt_count, execguard.attempt_limit FROM PUBLIC;
