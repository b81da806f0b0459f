-- bench/callgrind/loop_single.sql: one claim of one row and its completion (one statement per line)
SELECT execguard.complete_execution(c.execution_id, c.fencing_token, '{"answer": "Paris"}') FROM execguard.claim_next('bench-w', 1, track_owner => true) AS c;
