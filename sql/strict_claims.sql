--
-- strict_claims: with execguard.claims_require_submitted_job on (the
-- default) claim_execution creates nothing: a key that no submitted job
-- has is refused with the outcome 'unknown', counted; only a superuser can
-- turn it off. cancel_job of a job id never submitted leaves a tombstone
-- that later claims and a late submit_job respect. Job ids start with 'sc-'.
--
TRUNCATE execguard.queue, execguard.executions, execguard.jobs, execguard.regions RESTART IDENTITY;
SHOW execguard.claims_require_submitted_job;
SELECT claims_unknown AS unknown_before FROM execguard.stats \gset
SELECT executions_created FROM execguard.submit_job(
    '{"id": "sc-1", "models": ["m"], "regions": ["r"], "questions": ["q1"]}');

-- The submitted key is claimed; keys outside the job's spec (another
-- question, region or model), of a job never submitted, are refused.
SELECT outcome, fencing_token FROM execguard.claim_execution('sc-1', 'm', 'r', 'q1');
SELECT outcome, execution_id, fencing_token, attempt FROM execguard.claim_execution('sc-1', 'm', 'r', 'q2');
SELECT outcome FROM execguard.claim_execution('sc-1', 'm', 'elsewhere', 'q1');
SELECT outcome FROM execguard.claim_execution('sc-1', 'other', 'r', 'q1');
SELECT outcome FROM execguard.claim_execution('sc-never', 'm', 'r');
-- Nothing was written, and every refusal was counted.
SELECT job_id, model_id, region, question_id, status FROM execguard.executions ORDER BY execution_id;
SELECT job_id FROM execguard.jobs ORDER BY job_id;
SELECT claims_unknown - :unknown_before AS unknown_counted FROM execguard.stats;

-- Only a superuser changes the setting: the roles it restrains cannot.
CREATE ROLE regress_sc_runner;
SET ROLE regress_sc_runner;
SET execguard.claims_require_submitted_job = off;
RESET ROLE;
DROP ROLE regress_sc_runner;

-- cancel_job of a job id never submitted (its cancel message overtook its
-- submit message) leaves a tombstone: a row with no spec.
SELECT execguard.cancel_job('sc-early') AS cancelled;
SELECT job_id, spec, cancelled_at IS NOT NULL AS cancelled FROM execguard.jobs WHERE job_id = 'sc-early';
-- Its keys are refused as cancelled (not unknown), with the setting on...
SELECT outcome, fencing_token FROM execguard.claim_execution('sc-early', 'm', 'r');
-- ...and with create-on-claim allowed, while a key of a job with no row at
-- all is created then (the behaviour of 0.5.0).
SET execguard.claims_require_submitted_job = off;
SELECT outcome, fencing_token FROM execguard.claim_execution('sc-early', 'm', 'r');
SET execguard.direct_writes = off;
SELECT outcome, fencing_token FROM execguard.claim_execution('sc-early', 'm', 'r', 'sql path');
RESET execguard.direct_writes;
SELECT outcome, fencing_token FROM execguard.claim_execution('sc-free', 'm', 'r');
RESET execguard.claims_require_submitted_job;
SELECT count(*) AS early_rows FROM execguard.executions WHERE job_id = 'sc-early';
-- The submit that arrives late is refused, and writes nothing.
\set VERBOSITY terse
SELECT * FROM execguard.submit_job('{"id": "sc-early", "models": ["m"], "regions": ["r"], "questions": ["q1"]}');
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS early_rows FROM execguard.executions WHERE job_id = 'sc-early';
-- Cancelling a submitted job keeps its spec.
SELECT execguard.cancel_job('sc-1') AS cancelled;
SELECT job_id, spec IS NOT NULL AS has_spec, cancelled_at IS NOT NULL AS cancelled FROM execguard.jobs ORDER BY job_id;
