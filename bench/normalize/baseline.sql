-- bench/normalize/baseline.sql
--
-- The plain-SQL baseline for execguard.normalize_models: what a competent
-- engineer would write without an extension. Same result for valid input
-- (the C++ version also validates and reports errors by position; this one
-- does not, which only makes it cheaper):
--   canonical id = ASCII whitespace trimmed, ASCII letters lower-cased
--   (lower() under COLLATE "C" touches ASCII only, like the C++ core);
--   one object per canonical id in first-seen order; name = first non-empty
--   trimmed name, else the first trimmed spelling; provider = first
--   non-empty trimmed provider (the C++ side errors on a conflict);
--   regions = union in first-seen order of each entry's regions, the
--   default regions standing in for an entry that gives none.
--
-- One set-based statement, so PostgreSQL can plan it once per calling
-- statement (a LANGUAGE sql function with a multi-statement body is not
-- inlined, but its plan is kept for every row of the calling query).
CREATE SCHEMA IF NOT EXISTS bench_baseline;

CREATE OR REPLACE FUNCTION bench_baseline.normalize_models(models jsonb, default_regions text[] DEFAULT '{}')
RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $fn$
WITH entries AS (
    SELECT e.position,
           btrim(CASE WHEN jsonb_typeof(e.element) = 'string' THEN e.element #>> '{}'
                      ELSE e.element ->> 'id' END, E' \t\n\r\f\v') AS spelling,
           nullif(btrim(e.element ->> 'name', E' \t\n\r\f\v'), '') AS name,
           nullif(btrim(e.element ->> 'provider', E' \t\n\r\f\v'), '') AS provider,
           CASE WHEN jsonb_typeof(e.element -> 'regions') = 'array'
                 AND jsonb_array_length(e.element -> 'regions') > 0
                THEN e.element -> 'regions' END AS regions
      FROM jsonb_array_elements(models) WITH ORDINALITY AS e(element, position)
),
keyed AS (
    SELECT position, lower(spelling COLLATE "C") AS id, spelling, name, provider, regions
      FROM entries
),
merged AS (
    SELECT id,
           min(position) AS first_position,
           (array_agg(spelling ORDER BY position))[1] AS spelling,
           (array_agg(name ORDER BY position) FILTER (WHERE name IS NOT NULL))[1] AS name,
           (array_agg(provider ORDER BY position) FILTER (WHERE provider IS NOT NULL))[1] AS provider
      FROM keyed
     GROUP BY id
),
region_uses AS (
    -- Every (model, region) use with its position: entry, then region.
    SELECT k.id, lower(btrim(r.region, E' \t\n\r\f\v') COLLATE "C") AS region,
           k.position, r.region_position
      FROM keyed AS k
      CROSS JOIN LATERAL jsonb_array_elements_text(k.regions) WITH ORDINALITY AS r(region, region_position)
     WHERE k.regions IS NOT NULL
    UNION ALL
    SELECT k.id, lower(btrim(d.region, E' \t\n\r\f\v') COLLATE "C"), k.position, d.region_position
      FROM keyed AS k
      CROSS JOIN unnest(default_regions) WITH ORDINALITY AS d(region, region_position)
     WHERE k.regions IS NULL
),
first_uses AS (
    SELECT DISTINCT ON (id, region) id, region, position, region_position
      FROM region_uses
     ORDER BY id, region, position, region_position
),
region_lists AS (
    SELECT id, jsonb_agg(region ORDER BY position, region_position) AS regions
      FROM first_uses
     GROUP BY id
)
SELECT coalesce(jsonb_agg(jsonb_build_object('id', m.id,
                                             'name', coalesce(m.name, m.spelling),
                                             'provider', m.provider,
                                             'regions', coalesce(r.regions, '[]'::jsonb))
                          ORDER BY m.first_position),
                '[]'::jsonb)
  FROM merged AS m
  LEFT JOIN region_lists AS r USING (id)
$fn$;
