-- bench/callgrind/setup_new.sql: @ROWS@ completed keys beside the new ones, and the sequence that names them (one statement per line)
INSERT INTO execguard.executions (job_id, model_id, region, question_id, status, attempt, fencing_token, started_at, finished_at) SELECT 'bench-dup', 'llama3.2-1b', 'us-east', 'q' || g, 'completed', 1, 1, now(), now() FROM generate_series(1, @ROWS@) AS g;
DROP SEQUENCE IF EXISTS public.bench_new_key;
CREATE SEQUENCE public.bench_new_key;
VACUUM ANALYZE execguard.executions;
