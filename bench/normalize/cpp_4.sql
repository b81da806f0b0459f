-- bench/normalize/cpp_4.sql: every 4-entry input through execguard.normalize_models, once per row.
SELECT count(execguard.normalize_models(models, '{us-east}')) FROM bench_normalize.inputs_4;
