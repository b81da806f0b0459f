-- bench/normalize/sql_4.sql: every 4-entry input through bench_baseline.normalize_models, once per row.
SELECT count(bench_baseline.normalize_models(models, '{us-east}')) FROM bench_normalize.inputs_4;
