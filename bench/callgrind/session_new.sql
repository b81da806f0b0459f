-- bench/callgrind/session_new.sql: settings for loop_new.sql, once before it (one statement per line).
-- Since 0.6.0 a claim of a key no job submitted is refused ('unknown') unless
-- a superuser turns this off (the single-user backend runs as one): the loop
-- measures create-on-claim, the path it measured before 0.6.0.
SET execguard.claims_require_submitted_job = off;
