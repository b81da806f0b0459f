-- bench/claims/base_key_lookup.sql: the floor for (c), not a competitor:
-- a plain SELECT of one completed key's status by its unique index, the
-- least a client can send to ask "has this unit run?". Reads what
-- eg_claim_duplicates.sql's duplicates read, spelled the same way (the key
-- as text); writes nothing.
\set q random(1, :keys)
SELECT status FROM execguard.executions
 WHERE job_id = 'bench-dup' AND model_id = 'llama3.2-1b' AND region = 'us-east' AND question_id = 'q' || :q::text;
