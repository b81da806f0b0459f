-- bench/callgrind/setup_pending.sql: @ROWS@ pending executions shaped like the claims benchmark's (one statement per line: single-user backend)
WITH created AS (INSERT INTO execguard.executions (job_id, model_id, region, question_id, payload) SELECT 'bench-' || (g / 1000), 'llama3.2-1b', 'us-east', g::text, jsonb_build_object('model_id', 'llama3.2-1b', 'model_name', 'Llama 3.2 1B', 'region', 'us-east', 'question_id', g::text, 'prompt', 'What is the capital of France? (' || g || ')', 'params', '{"temperature": 0, "max_tokens": 64}'::jsonb) FROM generate_series(1, @ROWS@) AS g RETURNING execution_id) INSERT INTO execguard.queue (execution_id) SELECT execution_id FROM created;
VACUUM ANALYZE execguard.executions;
VACUUM ANALYZE execguard.queue;
