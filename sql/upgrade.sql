--
-- upgrade: ALTER EXTENSION execguard UPDATE from 0.1.0 through every upgrade
-- script to the default version, on a database with executions in every
-- state, keeps every row as it was, leaves the schema (tables, indexes,
-- constraints, functions) a fresh install has, and the guarantees hold on
-- the upgraded rows. Runs last: it drops and recreates the extension. Job
-- ids start with 'up-'.
--
DROP EXTENSION execguard CASCADE;
CREATE EXTENSION execguard VERSION '0.1.0';

-- This library needs the schema of its own version: against 0.1.0 every
-- function says so, with the remedy, and writes nothing.
SELECT * FROM execguard.claim_execution('up-1', 'm', 'r', 'q1');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.submit_job('{"id": "up-1", "models": ["m"], "regions": ["r"], "questions": ["q1"]}');
SELECT execguard.complete_execution(1, 1, '{}');
SET execguard.direct_writes = off;
SELECT execguard.complete_execution(1, 1, '{}');
RESET execguard.direct_writes;
SELECT count(*) AS executions FROM execguard.executions;

-- So the rows are written as 0.1.0's functions left them. One job of five
-- questions: q1 completed, q2 running, q3 retry scheduled (pending with
-- not_before), q4 pending, q5 failed; and a cancelled job.
INSERT INTO execguard.jobs (job_id, spec, max_attempts, cancelled_at)
VALUES ('up-1', '{}', 3, NULL), ('up-cancelled', '{}', 3, now());
INSERT INTO execguard.executions
       (job_id, model_id, region, question_id, status, attempt, fencing_token, worker,
        lease_expires_at, not_before, result, error, started_at, finished_at)
VALUES ('up-1', 'm', 'r', 'q1', 'completed', 1, 1, 'w', NULL, NULL, '{"answer": 1}', NULL, now(), now()),
       ('up-1', 'm', 'r', 'q2', 'running', 1, 1, 'worker-2', now() + interval '1 hour', NULL, NULL, NULL, now(), NULL),
       ('up-1', 'm', 'r', 'q3', 'pending', 1, 1, 'w', NULL, now() + interval '1 hour', NULL, 'transient', now(), NULL),
       ('up-1', 'm', 'r', 'q4', 'pending', 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
       ('up-1', 'm', 'r', 'q5', 'failed', 1, 1, 'w', NULL, NULL, NULL, 'bad input', now(), now()),
       ('up-cancelled', 'm', 'r', 'p', 'cancelled', 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, now());

CREATE TEMP TABLE before AS
    SELECT execution_id, job_id, model_id, region, question_id, status::text, attempt::int,
           max_attempts::int, fencing_token, worker, lease_expires_at, not_before, payload, result, error
      FROM execguard.executions;

-- A DBA's grants on the counters survive the update (0.6.0 adds two to the view).
CREATE ROLE regress_up_monitor;
GRANT USAGE ON SCHEMA execguard TO regress_up_monitor;
GRANT SELECT ON execguard.stats TO regress_up_monitor;
GRANT EXECUTE ON FUNCTION execguard.stats_raw() TO regress_up_monitor WITH GRANT OPTION;

ALTER EXTENSION execguard UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'execguard';
SELECT has_table_privilege('regress_up_monitor', 'execguard.stats', 'SELECT') AS stats_select,
       has_function_privilege('regress_up_monitor', 'execguard.stats_raw()', 'EXECUTE WITH GRANT OPTION') AS raw_execute,
       has_table_privilege('public', 'execguard.stats', 'SELECT') AS public_select;
REVOKE ALL ON execguard.stats FROM regress_up_monitor;
REVOKE ALL ON FUNCTION execguard.stats_raw() FROM regress_up_monitor;
REVOKE ALL ON SCHEMA execguard FROM regress_up_monitor;
DROP ROLE regress_up_monitor;

-- Every row as it was (compared as jsonb: the key columns' collation
-- changed, and a row comparison needs the same collation on both sides).
SELECT count(*) AS rows_changed_or_lost
  FROM before AS b
  FULL JOIN (SELECT execution_id, job_id, model_id, region, question_id, status::text, attempt::int,
                    max_attempts::int, fencing_token, worker, lease_expires_at, not_before, payload, result, error
               FROM execguard.executions) AS a USING (execution_id)
 WHERE to_jsonb(b) IS DISTINCT FROM to_jsonb(a);
SELECT question_id, status, attempt, not_before IS NOT NULL AS backoff FROM execguard.executions
 WHERE job_id = 'up-1' ORDER BY question_id;
-- The queue holds the pending and running executions, the running one
-- with its lease.
SELECT e.question_id, q.lease_expires_at IS NULL AS pending, q.lease_expires_at = e.lease_expires_at AS lease_kept
  FROM execguard.queue AS q JOIN execguard.executions AS e USING (execution_id)
 ORDER BY e.question_id;

-- The schema: columns with types and collations, indexes, constraints
-- (the table's and the domains'), functions with their result types,
-- SECURITY DEFINER and settings. A pg_temp view, so that the fresh
-- install below can be compared with it; it finds the schema by name, as
-- the install recreates it with a new oid.
CREATE TEMP VIEW schema_of_execguard AS
    WITH eg AS (SELECT oid FROM pg_namespace WHERE nspname = 'execguard')
    SELECT 'column' AS kind, c.relname || '.' || a.attname AS name,
           format_type(a.atttypid, a.atttypmod) || coalesce(' COLLATE ' || quote_ident(co.collname), '')
           || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END AS definition
      FROM pg_attribute AS a
      JOIN pg_class AS c ON c.oid = a.attrelid
      LEFT JOIN pg_collation AS co ON co.oid = a.attcollation AND a.attcollation <> 100
     WHERE c.relnamespace = (SELECT oid FROM eg) AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT 'index', i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
      FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indrelid
     WHERE c.relnamespace = (SELECT oid FROM eg)
    UNION ALL
    SELECT 'constraint', coalesce(c.relname, t.typname) || '.' || k.conname, pg_get_constraintdef(k.oid)
      FROM pg_constraint AS k
      LEFT JOIN pg_class AS c ON c.oid = k.conrelid
      LEFT JOIN pg_type AS t ON t.oid = k.contypid
     WHERE k.connamespace = (SELECT oid FROM eg)
    UNION ALL
    SELECT 'storage option', c.relname, array_to_string(c.reloptions, ', ')
      FROM pg_class AS c WHERE c.relnamespace = (SELECT oid FROM eg) AND c.reloptions IS NOT NULL
    UNION ALL
    SELECT 'function', p.oid::regprocedure::text,
           coalesce(pg_get_function_result(p.oid), 'procedure') || ' LANGUAGE ' || l.lanname
           || CASE p.provolatile WHEN 'i' THEN ' IMMUTABLE' WHEN 's' THEN ' STABLE' ELSE ' VOLATILE' END
           || CASE WHEN p.proisstrict THEN ' STRICT' ELSE '' END
           || CASE WHEN p.prosecdef THEN ' SECURITY DEFINER' ELSE '' END
           || coalesce(' SET ' || array_to_string(p.proconfig, ', '), '')
      FROM pg_proc AS p JOIN pg_language AS l ON l.oid = p.prolang
     WHERE p.pronamespace = (SELECT oid FROM eg);
-- From 18 on, NOT NULL constraints are pg_constraint rows too, and are
-- listed (expected/upgrade_1.out).
SELECT kind, name, definition FROM schema_of_execguard ORDER BY kind, name;
CREATE TEMP TABLE upgraded_schema AS SELECT * FROM schema_of_execguard;

-- The guarantees on upgraded rows: a done key is not run again, a pending
-- one is claimed once, the running one stays held, the unique key holds,
-- and the domains refuse a status or attempt count that cannot be.
SELECT outcome FROM execguard.claim_execution('up-1', 'm', 'r', 'q1');
SELECT outcome FROM execguard.claim_execution('up-1', 'm', 'r', 'q2');
SELECT outcome FROM execguard.claim_execution('up-1', 'm', 'r', 'q3');
SELECT outcome FROM execguard.claim_execution('up-1', 'm', 'r', 'q5');
SELECT question_id FROM execguard.claim_next('w', 10);
SELECT outcome FROM execguard.claim_execution('up-1', 'M', ' r ', 'q4');
SELECT outcome FROM execguard.claim_execution('up-cancelled', 'm', 'r');
\set VERBOSITY terse
INSERT INTO execguard.executions (job_id, model_id, region, question_id) VALUES ('up-1', 'm', 'r', 'q1');
UPDATE execguard.executions SET status = 'done' WHERE job_id = 'up-1' AND question_id = 'q1';
UPDATE execguard.executions SET attempt = -1 WHERE job_id = 'up-1' AND question_id = 'q1';
UPDATE execguard.executions SET max_attempts = 0 WHERE job_id = 'up-1' AND question_id = 'q1';
UPDATE execguard.executions SET lease_expires_at = NULL WHERE job_id = 'up-1' AND question_id = 'q2';
\set VERBOSITY default

-- A fresh install of the default version has the same schema.
DROP EXTENSION execguard CASCADE;
CREATE EXTENSION execguard;
SELECT extversion FROM pg_extension WHERE extname = 'execguard';
(SELECT * FROM upgraded_schema EXCEPT SELECT * FROM schema_of_execguard)
UNION ALL
(SELECT * FROM schema_of_execguard EXCEPT SELECT * FROM upgraded_schema);
