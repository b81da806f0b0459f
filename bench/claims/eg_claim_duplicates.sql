-- bench/claims/eg_claim_duplicates.sql: claim_execution where 9 calls in 10
-- name a key that is already completed (the duplicate an auto-stop check
-- exists to refuse) and 1 in 10 a key never seen (created running: run.sh
-- turns execguard.claims_require_submitted_job off for these runs, else
-- since 0.6.0 such a claim is refused as 'unknown' and creates nothing).
-- Owner-tracked (track_owner => true), as the runner claims.
-- setup: :keys completed rows with job 'bench-dup', question_id 'q1'..'q<keys>'.
-- Keys are text, as a client sends them: '||' with an integer operand
-- would be textanycat, a SQL function that the planner inlines by parsing
-- its body again on every simple-protocol call (6% of all CPU time on
-- the 2-core machine, by perf), which measures the script, not the call.
\set r random(1, 10)
\set q random(1, :keys)
\set n random(1, 2000000000)
\if :r = 1
SELECT outcome FROM execguard.claim_execution('bench-dup', 'llama3.2-1b', 'us-east', 'new-' || :client_id::text || '-' || :n::text, track_owner => true);
\else
SELECT outcome FROM execguard.claim_execution('bench-dup', 'llama3.2-1b', 'us-east', 'q' || :q::text, track_owner => true);
\endif
