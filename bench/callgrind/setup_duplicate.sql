-- bench/callgrind/setup_duplicate.sql: @ROWS@ completed keys for claim_execution to refuse (one statement per line)
INSERT INTO execguard.executions (job_id, model_id, region, question_id, status, attempt, fencing_token, started_at, finished_at) SELECT 'bench-dup', 'llama3.2-1b', 'us-east', 'q' || g, 'completed', 1, 1, now(), now() FROM generate_series(1, @ROWS@) AS g;
VACUUM ANALYZE execguard.executions;
