--
-- roles: everything is revoked from PUBLIC; a DBA grants a runner role the
-- claim/heartbeat/complete/fail/release functions and a submitter role
-- submit/cancel/retry and read access. Job ids start with 'ro-'.
--
TRUNCATE execguard.queue, execguard.executions, execguard.jobs, execguard.regions RESTART IDENTITY;

-- Leftovers of an interrupted earlier run.
DO $$
DECLARE
    role_name text;
BEGIN
    FOR role_name IN SELECT rolname FROM pg_roles WHERE rolname LIKE 'regress\_execguard\_%' LOOP
        EXECUTE format('DROP OWNED BY %I', role_name);
        EXECUTE format('DROP ROLE %I', role_name);
    END LOOP;
END
$$;

-- Nothing in the schema is granted to PUBLIC, but execguard.stats_extra():
-- two counters, which whoever reads execguard.stats must be able to call
-- (0.6.0 added them to the view). PUBLIC has no USAGE on the schema.
SELECT p.oid::regprocedure AS function_granted_to_public
  FROM pg_proc AS p
 WHERE p.pronamespace = 'execguard'::regnamespace
   AND EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a
                WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE');
SELECT c.relname AS relation_granted_to_public
  FROM pg_class AS c
 WHERE c.relnamespace = 'execguard'::regnamespace AND c.relkind IN ('r', 'v', 'S')
   AND EXISTS (SELECT 1 FROM aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) AS a WHERE a.grantee = 0);
SELECT t.typname AS type_granted_to_public
  FROM pg_type AS t
 WHERE t.typnamespace = 'execguard'::regnamespace AND t.typtype IN ('c', 'd')
   AND NOT EXISTS (SELECT 1 FROM pg_class AS c WHERE c.oid = t.typrelid AND c.relkind <> 'c')
   AND EXISTS (SELECT 1 FROM aclexplode(coalesce(t.typacl, acldefault('T', t.typowner))) AS a WHERE a.grantee = 0);
SELECT has_schema_privilege('public', 'execguard', 'USAGE') AS public_usage;

-- The functions that read or write the tables are SECURITY DEFINER with a
-- fixed search_path.
SELECT p.proname, p.prosecdef, p.proconfig
  FROM pg_proc AS p
 WHERE p.pronamespace = 'execguard'::regnamespace
   AND p.proname IN ('claim_execution', 'claim_next', 'heartbeat', 'complete_execution', 'complete_executions',
                     'fail_execution', 'release_execution', 'execution_state', 'submit_job', 'cancel_job',
                     'retry_job')
 ORDER BY p.proname;

CREATE ROLE regress_execguard_runner;
CREATE ROLE regress_execguard_submitter;
CREATE ROLE regress_execguard_nobody;

-- The grants docs/security.md tells a DBA to make.
GRANT USAGE ON SCHEMA execguard TO regress_execguard_runner;
GRANT EXECUTE ON FUNCTION
    execguard.claim_execution(text, text, text, text, text, interval, boolean),
    execguard.claim_next(text, int, interval, text[], text[], boolean),
    execguard.heartbeat(bigint, bigint, interval),
    execguard.complete_execution(bigint, bigint, jsonb),
    execguard.complete_executions(bigint[], bigint[], jsonb[]),
    execguard.fail_execution(bigint, bigint, text, boolean, interval),
    execguard.release_execution(bigint, bigint),
    execguard.execution_state(bigint, bigint)
    TO regress_execguard_runner;
GRANT USAGE ON SCHEMA execguard TO regress_execguard_submitter;
GRANT EXECUTE ON FUNCTION
    execguard.submit_job(jsonb),
    execguard.cancel_job(text),
    execguard.retry_job(text),
    execguard.normalize_models(jsonb, text[])
    TO regress_execguard_submitter;
GRANT SELECT ON execguard.executions, execguard.jobs TO regress_execguard_submitter;

-- The submitter submits and reads...
SET ROLE regress_execguard_submitter;
SELECT * FROM execguard.submit_job('{"id": "ro-job", "models": ["m"], "regions": ["r1", "r2", "r3", "r4"], "questions": ["q"]}');
SELECT jsonb_array_length(execguard.normalize_models('["a", "A"]')) AS models;
SELECT region, status, attempt FROM execguard.executions WHERE job_id = 'ro-job' ORDER BY region;
SELECT job_id FROM execguard.jobs WHERE job_id = 'ro-job';
-- ...but cannot claim, complete, or write the tables.
SELECT * FROM execguard.claim_execution('ro-job', 'm', 'r1', 'q');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_next('submitter');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.complete_execution(1, 1, '{}');
\echo :LAST_ERROR_SQLSTATE
UPDATE execguard.executions SET status = 'completed' WHERE job_id = 'ro-job';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM execguard.executions WHERE job_id = 'ro-job';
\echo :LAST_ERROR_SQLSTATE
INSERT INTO execguard.executions (job_id, model_id, region) VALUES ('ro-job', 'm', 'r9');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.stats_reset();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- The runner claims and completes with its token...
SET ROLE regress_execguard_runner;
SELECT outcome, execution_id AS r1_id, fencing_token AS r1_token
  FROM execguard.claim_execution('ro-job', 'm', 'r1', 'q', 'runner-1') \gset
\echo :outcome :r1_token
SELECT outcome FROM execguard.claim_execution('ro-job', 'm', 'r1', 'q');
SELECT execguard.heartbeat(:r1_id, :r1_token) AS heartbeat;
-- ...cannot complete without the right token...
SELECT execguard.complete_execution(:r1_id, :r1_token + 1, '{"forged": true}') AS forged;
SELECT execguard.complete_execution(:r1_id, 0, '{"forged": true}') AS forged;
SELECT execguard.complete_execution(:r1_id, :r1_token, '{"answer": 42}') AS completed;
-- ...uses the rest of its functions...
SELECT execution_id AS r2_id, fencing_token AS r2_token, region FROM execguard.claim_next('runner-1', 1) \gset
\echo :region
SELECT execguard.release_execution(:r2_id, :r2_token) AS released;
SELECT execution_id AS r2_id, fencing_token AS r2_token FROM execguard.claim_next('runner-1', 1) \gset
SELECT execguard.fail_execution(:r2_id, :r2_token, 'HTTP 500', retryable => false) AS failed;
SELECT execution_id AS r3_id, fencing_token AS r3_token FROM execguard.claim_next('runner-1', 1) \gset
SELECT accepted FROM execguard.complete_executions(ARRAY[:r3_id]::bigint[], ARRAY[:r3_token]::bigint[], ARRAY['{}']::jsonb[]);
SELECT execguard.execution_state(:r1_id, :r1_token) AS r1_state, execguard.execution_state(:r3_id, :r3_token) AS r3_state;
-- ...but cannot read or write the tables directly, nor submit or cancel.
SELECT count(*) FROM execguard.executions;
\echo :LAST_ERROR_SQLSTATE
SELECT fencing_token FROM execguard.executions WHERE execution_id = :r1_id;
\echo :LAST_ERROR_SQLSTATE
UPDATE execguard.executions SET status = 'pending' WHERE job_id = 'ro-job';
\echo :LAST_ERROR_SQLSTATE
UPDATE execguard.executions SET result = '{"forged": true}' WHERE execution_id = :r1_id;
\echo :LAST_ERROR_SQLSTATE
DELETE FROM execguard.executions WHERE job_id = 'ro-job';
\echo :LAST_ERROR_SQLSTATE
TRUNCATE execguard.executions, execguard.queue;
\echo :LAST_ERROR_SQLSTATE
-- Nor the queue that claim_next reads, which only the functions write.
DELETE FROM execguard.queue;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO execguard.queue (execution_id) VALUES (:r1_id);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM execguard.jobs;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.submit_job('{"id": "ro-runner-job", "models": ["m"], "regions": ["r"], "questions": ["q"]}');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.cancel_job('ro-job');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.retry_job('ro-job');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.stats;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- What the runner did, as the submitter sees it.
SET ROLE regress_execguard_submitter;
SELECT region, status, attempt, fencing_token, worker, result, error
  FROM execguard.executions WHERE job_id = 'ro-job' ORDER BY region;
-- The submitter may cancel and retry its jobs.
SELECT execguard.retry_job('ro-job') AS retried;
SELECT execguard.cancel_job('ro-job') AS cancelled;
RESET ROLE;

-- A role with no grants (PUBLIC only) can call nothing and read nothing.
SET ROLE regress_execguard_nobody;
SELECT execguard.normalize_models('["a"]');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_execution('ro-job', 'm', 'r1', 'q');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.submit_job('{"id": "ro-nobody", "models": ["m"], "regions": ["r"], "questions": ["q"]}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM execguard.executions;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.stats;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- Even with USAGE on the schema, nothing is executable or readable by PUBLIC
-- (but stats_extra, two counters).
GRANT USAGE ON SCHEMA execguard TO regress_execguard_nobody;
SET ROLE regress_execguard_nobody;
SELECT execguard.normalize_models('["a"]');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.claim_execution('ro-job', 'm', 'r1', 'q');
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.heartbeat(1, 1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.queue_summary();
\echo :LAST_ERROR_SQLSTATE
SELECT execguard.stats_reset();
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM execguard.regions;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) AS executable_by_nobody
  FROM pg_proc AS p
 WHERE p.pronamespace = 'execguard'::regnamespace
   AND has_function_privilege('regress_execguard_nobody', p.oid, 'EXECUTE');

-- Clean up.
DROP OWNED BY regress_execguard_runner, regress_execguard_submitter, regress_execguard_nobody;
DROP ROLE regress_execguard_runner, regress_execguard_submitter, regress_execguard_nobody;
