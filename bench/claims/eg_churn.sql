-- bench/claims/eg_churn.sql: drives executions through claim_next and
-- complete_execution (one statement per :batch) to churn the table before
-- phase (b); not itself measured. Owner-tracked, as the measured cycles.
SELECT count(*) FILTER (WHERE execguard.complete_execution(execution_id, fencing_token, '{"answer": "Paris"}'))
  FROM execguard.claim_next('churn-' || :client_id, :batch, track_owner => true);
