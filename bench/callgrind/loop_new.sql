-- bench/callgrind/loop_new.sql: a claim that creates a key never seen (one statement per line;
-- execguard.claims_require_submitted_job is off for it: session_new.sql)
SELECT outcome FROM execguard.claim_execution('bench-new', 'llama3.2-1b', 'us-east', 'q' || nextval('public.bench_new_key')::text, track_owner => true);
