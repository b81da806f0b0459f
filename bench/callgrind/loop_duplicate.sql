-- bench/callgrind/loop_duplicate.sql: the auto-stop check on a completed key (one statement per line)
SELECT outcome FROM execguard.claim_execution('bench-dup', 'llama3.2-1b', 'us-east', 'q777', track_owner => true);
