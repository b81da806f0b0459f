-- bench/callgrind/loop_new.sql: a claim that creates a key never seen (one statement per line)
SELECT outcome FROM execguard.claim_execution('bench-new', 'llama3.2-1b', 'us-east', 'q' || nextval('public.bench_new_key')::text);
