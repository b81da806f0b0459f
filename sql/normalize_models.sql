--
-- normalize_models: canonical ids, first-seen order, name/provider/region
-- merge rules. Errors are in normalize_models_errors.
--

-- One row per normalised model, in output order.
CREATE FUNCTION pg_temp.show_models(models jsonb, default_regions text[] DEFAULT '{}')
RETURNS TABLE (pos bigint, id text, name text, provider text, regions jsonb)
LANGUAGE sql AS $$
    SELECT m.ordinality, m.value ->> 'id', m.value ->> 'name', m.value ->> 'provider', m.value -> 'regions'
      FROM jsonb_array_elements(execguard.normalize_models(models, default_regions)) WITH ORDINALITY AS m
$$;

-- The reference incident: 4 entries in, 2 models out.
SELECT execguard.normalize_models(
    '["llama3.2-1b","qwen2.5-1.5b","llama3.2-1b","qwen2.5-1.5b"]', '{us-east}');
SELECT jsonb_array_length(execguard.normalize_models(
    '["llama3.2-1b","qwen2.5-1.5b","llama3.2-1b","qwen2.5-1.5b"]', '{us-east}')) AS models;

-- Every output object has exactly the keys id, name, provider, regions.
SELECT DISTINCT array(SELECT jsonb_object_keys(m) ORDER BY 1) AS keys
  FROM jsonb_array_elements(execguard.normalize_models('["a", {"id": "b", "name": "B", "provider": "p", "regions": ["r"]}]')) AS m;

-- Case and surrounding whitespace variants are one model; the name is the
-- first spelling, trimmed, with its case kept.
SELECT * FROM pg_temp.show_models(
    '[" Llama3.2-1B ", "llama3.2-1b", "LLAMA3.2-1B\t", "\nllama3.2-1b"]', '{" US-East "}');
-- Inner whitespace and punctuation are part of the id.
SELECT * FROM pg_temp.show_models('["llama 3.2", "llama3.2", "llama-3.2", "llama_3.2"]', '{us-east}');
-- Only ASCII letters are lower-cased: no Unicode case folding.
SELECT * FROM pg_temp.show_models('["ÉCLAIR-7B", "Éclair-7b", "éclair-7b"]', '{us-east}');

-- String and object entries mixed: the object's name and provider are kept.
SELECT * FROM pg_temp.show_models(
    '["gpt-4o", {"id": "GPT-4o", "name": "GPT 4o", "provider": "openai"}, "qwen2.5-1.5b", {"id": "Qwen2.5-1.5B"}]',
    '{eu-west}');

-- Region union in first-seen order: entries with their own regions use
-- them; an entry without regions adds the default regions.
SELECT * FROM pg_temp.show_models(
    '[{"id": "m", "regions": ["eu-west", "us-east"]},
      {"id": "M", "regions": ["US-EAST", "ap-south", "eu-west"]},
      "m"]',
    '{us-west, eu-west}');
-- Duplicated regions inside one entry collapse too.
SELECT * FROM pg_temp.show_models('[{"id": "m", "regions": ["us-east", " US-East ", "us-east"]}]');

-- Default regions: canonicalised and deduplicated, used only by entries
-- that give no regions (absent, null or empty array).
SELECT * FROM pg_temp.show_models(
    '["a", {"id": "b", "regions": ["x"]}, {"id": "c", "regions": null}, {"id": "d", "regions": []}]',
    '{R1, " r2 ", r1}');
-- No default regions and none given: an empty region list (submit_job is
-- the one that refuses a model without regions).
SELECT * FROM pg_temp.show_models('["a"]');
SELECT * FROM pg_temp.show_models('["a"]', '{}');

-- Name: the first non-empty name given, else the first spelling of the id.
SELECT * FROM pg_temp.show_models(
    '[{"id": "m", "name": ""}, {"id": "M", "name": "  "}, {"id": "m", "name": "Second"}, {"id": "m", "name": "Third"}]',
    '{r}');
SELECT * FROM pg_temp.show_models('[" Mixed-Case ", "mixed-case", {"id": "MIXED-CASE", "name": null}]', '{r}');
-- A name given later replaces the spelling that stood in for it.
SELECT * FROM pg_temp.show_models('["Mixed-Case", {"id": "mixed-case", "name": "Mixed Case"}]', '{r}');
-- Names are trimmed but otherwise kept as given.
SELECT * FROM pg_temp.show_models('[{"id": "m", "name": "  Llama 3.2 (1B)  "}]', '{r}');

-- Provider: JSON null when none given; kept when one duplicate gives it;
-- the same provider repeated is fine.
SELECT * FROM pg_temp.show_models('["a"]', '{r}');
SELECT * FROM pg_temp.show_models(
    '[{"id": "m"}, {"id": "M", "provider": "meta"}, {"id": "m", "provider": "meta"}, {"id": "m", "provider": null}]',
    '{r}');
SELECT execguard.normalize_models('["a"]', '{r}') -> 0 -> 'provider' AS provider_json;
-- Two duplicates naming different providers: never silently pick one.
SELECT execguard.normalize_models(
    '[{"id": "m", "provider": "meta"}, "x", {"id": " M ", "provider": "groq"}]', '{r}');
\echo :LAST_ERROR_SQLSTATE
-- Providers are compared as given (trimmed), not case-folded.
SELECT execguard.normalize_models(
    '[{"id": "m", "provider": "Meta"}, {"id": "m", "provider": "meta"}]', '{r}');
\echo :LAST_ERROR_SQLSTATE

-- Empty input, empty output.
SELECT execguard.normalize_models('[]');
SELECT execguard.normalize_models('[]', '{us-east}');

-- Limits that are still accepted: an id of exactly 200 bytes, 10,000 entries.
SELECT length(execguard.normalize_models(jsonb_build_array(repeat('a', 200))) -> 0 ->> 'id') AS id_length;
SELECT jsonb_array_length(execguard.normalize_models(
           (SELECT jsonb_agg('m' || (i % 7)) FROM generate_series(1, 10000) AS i), '{r}')) AS models;

-- STRICT: a NULL argument gives NULL.
SELECT execguard.normalize_models(NULL) IS NULL AS null_models;
SELECT execguard.normalize_models('["a"]', NULL) IS NULL AS null_regions;

-- IMMUTABLE and STRICT as declared.
SELECT provolatile, proisstrict, proparallel
  FROM pg_proc WHERE oid = 'execguard.normalize_models(jsonb, text[])'::regprocedure;

-- The result is written in Jsonb's binary format by execguard itself: its
-- image must be byte for byte the one PostgreSQL builds for the same value
-- (*= compares records by image), around the format's boundaries: every 32nd child
-- stores an offset, not a length; null and multibyte providers; no regions.
SELECT count(*) AS inputs,
       count(*) FILTER (WHERE NOT ROW(r)::record *= ROW(r::text::jsonb)::record) AS images_differing
  FROM (SELECT execguard.normalize_models(
                   (SELECT jsonb_agg(CASE WHEN i % 3 = 0 THEN to_jsonb('M' || i % (n / 2 + 1))
                                          ELSE jsonb_strip_nulls(jsonb_build_object(
                                                   'id', ' m' || i % (n / 2 + 1),
                                                   'name', CASE WHEN i % 4 = 0 THEN 'Nämé ' || i END,
                                                   'provider', CASE WHEN i % 5 = 0 THEN 'prövider-' || i % (n / 2 + 1) END,
                                                   'regions', (SELECT coalesce(jsonb_agg('r' || k), '[]')
                                                                 FROM generate_series(1, (i * 7) % (k_max + 1)) AS k)))
                                     END)
                      FROM generate_series(1, n) AS i),
                   CASE WHEN n % 2 = 0 THEN '{d1,d2}'::text[] ELSE '{}' END) AS r
          FROM generate_series(0, 70) AS n, (VALUES (0), (1), (31), (32), (33), (65)) AS m(k_max)
         WHERE n > 0) AS results;
SELECT ROW(r)::record *= ROW(r::text::jsonb)::record AS empty_image_equal
  FROM execguard.normalize_models('[]') AS r;
