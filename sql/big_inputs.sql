--
-- big_inputs: inputs far bigger than usual are either done in time that
-- grows no faster than n log n, or refused by an explicit limit (54000),
-- and a long call stops at statement_timeout like any statement (57014).
-- No test here asserts a duration: the statement timeout test asserts the
-- error, and a quadratic step would show as a suite that times out.
-- Job ids start with 'big-'.
--
TRUNCATE execguard.queue, execguard.executions, execguard.jobs, execguard.regions RESTART IDENTITY;

-- 'SQLSTATE: message' of the statement run with $1 = arg, or 'ok'.
CREATE FUNCTION pg_temp.error_of(statement text, arg jsonb) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement USING arg;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

CREATE TEMP TABLE many_regions AS
SELECT jsonb_agg('Region-' || g ORDER BY g) AS forward,
       jsonb_agg('region-' || g ORDER BY g DESC) AS backward,
       array_agg('REGION-' || g ORDER BY g) AS as_array
  FROM generate_series(1, 120000) g;

-- 120,000 distinct default regions (15 s of quadratic dedupe before 0.6.0),
-- given twice in other spellings, and a model that names them all again.
SELECT jsonb_array_length(m -> 'regions') AS regions, m -> 'regions' -> 0 AS first, m -> 'regions' -> -1 AS last
  FROM many_regions,
       jsonb_array_elements(execguard.normalize_models(
           jsonb_build_array('m1', jsonb_build_object('id', 'm2', 'regions', backward)),
           as_array || as_array)) AS m;

-- regions and constraints.regions compared as sets (sorted, not each with each).
SELECT pg_temp.error_of('SELECT execguard.submit_job($1)',
           jsonb_build_object('id', 'big-sets', 'regions', forward, 'constraints', jsonb_build_object('regions', backward),
                              'questions', '["q"]'::jsonb))
  FROM many_regions;
SELECT pg_temp.error_of('SELECT execguard.submit_job($1)',
           jsonb_build_object('id', 'big-sets', 'regions', forward,
                              'constraints', jsonb_build_object('regions', backward - 0 || '["elsewhere"]'),
                              'models', '["m"]'::jsonb, 'questions', '["q"]'::jsonb))
  FROM many_regions;

-- The job itself: one model, one question, 120,000 regions.
SELECT s.* FROM many_regions,
       execguard.submit_job(jsonb_build_object('id', 'big-regions', 'models', '["m"]'::jsonb, 'regions', forward,
                                              'constraints', jsonb_build_object('regions', backward),
                                              'questions', '["q"]'::jsonb)) AS s;
SELECT count(*) AS units, count(DISTINCT region) AS regions, min(execution_id) = 1 AS first_id,
       bool_and(payload ->> 'region' = region) AS payload_matches
  FROM execguard.executions WHERE job_id = 'big-regions';
SELECT count(*) AS queued FROM execguard.queue q JOIN execguard.executions e USING (execution_id)
 WHERE e.job_id = 'big-regions';

-- Units in first-seen order: model, then its regions, then the questions.
SELECT region FROM execguard.executions WHERE job_id = 'big-regions' AND execution_id IN (1, 2, 120000)
 ORDER BY execution_id;

-- jobs.spec is written as Jsonb by submit_job itself, not parsed from
-- text: its image must be byte for byte the one PostgreSQL builds for the
-- same value (*= compares records by image), around the format's
-- boundaries: every 32nd child stores an offset, not a length; params an
-- object (nested, with numbers) or null; null and multibyte providers and
-- names; the single prompt's question id ''; 120,000 regions.
SELECT s.job_id, s.executions_created
  FROM (VALUES
        (jsonb_build_object('id', 'big-spec-params', 'max_attempts', 7,
             'models', '[{"id": "M1", "provider": "pröv", "name": "Nâme"}, "m2", {"id": "m3", "regions": ["z"]}]'::jsonb,
             'regions', '["a", "b"]'::jsonb,
             'params', '{"temperature": 0.5, "stop": ["\n"], "nested": {"x": [1, 2.50, {"y": null}], "b": true}}'::jsonb,
             'questions', (SELECT jsonb_agg(CASE WHEN g % 3 = 0 THEN to_jsonb('question ' || repeat('é', g))
                                                 ELSE jsonb_build_object('id', 'q' || g, 'prompt', repeat('p', g)) END
                                            ORDER BY g)
                             FROM generate_series(1, 70) g))),
        ('{"id": "big-spec-single", "models": ["m"], "regions": ["r"],
           "benchmark": {"input": {"data": {"prompt": "one prompt"}}}}'::jsonb)) AS v(spec),
       execguard.submit_job(v.spec) AS s;
SELECT job_id, ROW(spec)::record *= ROW(spec::text::jsonb)::record AS image_equal,
       spec -> 'questions' -> 0 AS first_question, spec -> 'params' AS params, spec -> 'max_attempts' AS max_attempts
  FROM execguard.jobs ORDER BY job_id;

-- Limits: more (model, region) pairs than 1,000,000, and more units than
-- 10,000,000, are refused before anything is written.
SELECT pg_temp.error_of(format('SELECT execguard.normalize_models($1, %L)', as_array),
           '["a", "b", "c", "d", "e", "f", "g", "h", "i"]')
  FROM many_regions;
CREATE TEMP TABLE hundred_thousand AS
SELECT jsonb_agg('question ' || g ORDER BY g) AS questions FROM generate_series(1, 100000) g;
SELECT pg_temp.error_of('SELECT execguard.submit_job($1)',
           jsonb_build_object('id', 'big-too-many-units', 'models', '["m"]'::jsonb,
                              'regions', (SELECT jsonb_agg('r' || g) FROM generate_series(1, 101) g),
                              'questions', questions))
  FROM hundred_thousand;
SELECT count(*) AS rows_written FROM execguard.jobs WHERE job_id = 'big-too-many-units';

-- A job of 1,000,000 questions in 10 regions (10,000,000 units) is
-- accepted, and stops at a 2 s statement_timeout with the usual error,
-- wherever it is: parsing, planning in the core, or inserting chunks.
CREATE TEMP TABLE million AS
SELECT jsonb_build_object('id', 'big-million', 'models', '["m"]'::jsonb,
                          'regions', '["r1","r2","r3","r4","r5","r6","r7","r8","r9","r10"]'::jsonb,
                          'questions', jsonb_agg('question number ' || g)) AS spec
  FROM generate_series(1, 1000000) g;
SET statement_timeout = '2s';
SELECT * FROM execguard.submit_job((SELECT spec FROM million));
RESET statement_timeout;
SELECT count(*) AS rows_left FROM execguard.executions WHERE job_id = 'big-million';

-- One more question than 1,000,000 is refused.
SELECT pg_temp.error_of('SELECT execguard.submit_job($1)',
           jsonb_set(spec, '{questions}', spec -> 'questions' || '["one more"]'))
  FROM million;
