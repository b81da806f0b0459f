-- bench/normalize/cpp_1000.sql: every 1000-entry input through execguard.normalize_models, once per row.
SELECT count(execguard.normalize_models(models, '{us-east}')) FROM bench_normalize.inputs_1000;
