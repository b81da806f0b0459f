-- bench/normalize/sql_1000.sql: every 1000-entry input through bench_baseline.normalize_models, once per row.
SELECT count(bench_baseline.normalize_models(models, '{us-east}')) FROM bench_normalize.inputs_1000;
