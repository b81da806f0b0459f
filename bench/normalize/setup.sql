-- bench/normalize/setup.sql
--
-- Input arrays for the benchmark, one table per size: distinct arrays per
-- row (the function sees a different argument on every call, so nothing
-- can be folded or cached), each mixing strings and objects, case and
-- whitespace variants of the same id, explicit regions and none.
--   psql -v rows_small=200 -v rows_large=20 -f setup.sql
DROP SCHEMA IF EXISTS bench_normalize CASCADE;
CREATE SCHEMA bench_normalize;

SELECT setseed(0.42) AS seeded \gset

-- The reference incident's shape, with per-row ids: 4 entries, 2 models.
CREATE TABLE bench_normalize.inputs_4 AS
SELECT row_number AS input_id,
       jsonb_build_array(
           'llama3.2-1b-' || row_number,
           jsonb_build_object('id', 'Qwen2.5-1.5b-' || row_number, 'name', 'Qwen 2.5', 'provider', 'alibaba'),
           jsonb_build_object('id', ' LLAMA3.2-1b-' || row_number || ' ', 'regions', jsonb_build_array('EU-West', 'us-east')),
           'qwen2.5-1.5B-' || row_number) AS models
  FROM generate_series(1, :rows_small) AS row_number;

-- 1,000 entries over 400 distinct ids (60% duplicates): 70% strings,
-- 30% objects with a name, a provider and 0 to 3 regions out of 6.
CREATE TABLE bench_normalize.inputs_1000 AS
SELECT row_number AS input_id,
       jsonb_agg(CASE WHEN random() < 0.7
                      THEN to_jsonb(spelling)
                      ELSE jsonb_strip_nulls(jsonb_build_object(
                               'id', spelling,
                               'name', CASE WHEN random() < 0.5 THEN 'Model ' || model END,
                               'provider', 'provider-' || (model % 7),
                               'regions', (SELECT jsonb_agg(r)
                                             FROM (SELECT (ARRAY['us-east', 'US-West', ' eu-west ', 'eu-central',
                                                                 'ap-south', 'AP-NORTHEAST'])[1 + floor(random() * 6)::int] AS r
                                                     FROM generate_series(1, floor(random() * 4)::int)
                                                    WHERE entry > 0) AS regions)))
                 END ORDER BY entry) AS models
  FROM generate_series(1, :rows_large) AS row_number
 CROSS JOIN LATERAL (
       SELECT entry, model,
              CASE floor(random() * 3)::int
                   WHEN 0 THEN 'model-' || row_number || '-' || model
                   WHEN 1 THEN 'MODEL-' || row_number || '-' || model
                   ELSE '  Model-' || row_number || '-' || model || ' ' END AS spelling
         FROM (SELECT entry, 1 + floor(random() * 400)::int AS model
                 FROM generate_series(1, 1000) AS entry) AS e) AS entries
 GROUP BY row_number;

ANALYZE bench_normalize.inputs_4;
ANALYZE bench_normalize.inputs_1000;
