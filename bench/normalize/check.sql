-- bench/normalize/check.sql
--
-- The baseline is only a fair comparison if it computes the same thing:
-- both implementations must give identical jsonb on every benchmark input
-- and on a few edge cases. Prints the number of mismatches (0 expected).
WITH cases(models, default_regions) AS (
    SELECT models, '{us-east}'::text[] FROM bench_normalize.inputs_4
    UNION ALL
    SELECT models, '{us-east, EU-West , us-east}'::text[] FROM bench_normalize.inputs_1000
    UNION ALL
    SELECT models::jsonb, default_regions::text[]
      FROM (VALUES
        ('[]', '{}'),
        ('["llama3.2-1b","qwen2.5-1.5b","llama3.2-1b","qwen2.5-1.5b"]', '{us-east}'),
        ('[" Llama ", {"id": "LLAMA", "name": "  ", "provider": null, "regions": []}]', '{Eu}'),
        ('[{"id": "a", "regions": ["X", "y"]}, {"id": " A", "name": "First", "regions": ["Y", "z"]}, {"id": "a", "name": "Second", "provider": "p"}]', '{d1, D1, d2}'),
        ('[{"id": "a", "regions": null, "provider": " p "}, {"id": "a", "provider": "p"}]', '{}'),
        ('["Ünïcode-A", "ünïcode-a", "ÜNÏCODE-A"]', '{}')
      ) AS v(models, default_regions)
)
SELECT count(*) FILTER (WHERE execguard.normalize_models(models, default_regions)
                         IS DISTINCT FROM bench_baseline.normalize_models(models, default_regions)) AS mismatches,
       count(*) AS cases
  FROM cases;
