-- bench/backlog/ceiling.sql: the two-commit ceiling of (a) to (d). Two
-- transactions (autocommit), each one WAL-logged single-row INSERT into a
-- table without indexes (bench_backlog.ceiling) and a synchronous commit:
-- what a cycle of claim + completion costs when the claim and the
-- completion themselves cost nothing. No queue doing two durable commits
-- per cycle (execguard's or the baseline's) can run faster on the same
-- server, clients and moment, so ceiling / baseline bounds the ratio any
-- build can reach.
INSERT INTO bench_backlog.ceiling VALUES (:client_id);
INSERT INTO bench_backlog.ceiling VALUES (:client_id);
