-- bench/backlog/baseline.sql
--
-- What bench/backlog/run.sh measures execguard against, and its helpers.
--
-- (a) to (d): a plain-SQL SKIP LOCKED queue, bench_backlog.executions, the
-- same table as execguard.executions (LIKE ... INCLUDING ALL: columns,
-- domains, collations, defaults, constraints, the primary and unique keys
-- with their options, plus the table's autovacuum settings) with the
-- indexes such a queue has on its own table, equivalent to those of
-- execguard.queue: pending rows by id, pending rows by (region, id) for
-- workers that serve one region, running rows by lease. Not execguard's
-- fillfactor: with status in the indexes' predicates no claim here can be
-- HOT (as in bench/claims/baseline.sql). Its statements are in
-- base_claim.sql, base_claim_region.sql and base_drain.sql; what it does not
-- do, and execguard does: lease rescue, owner tracking, counters,
-- canonicalised keys, argument checks.
--
-- (e): copies of execguard.jobs, execguard.executions and execguard.queue
-- (same columns, same indexes, same reloptions, the queue's foreign key to
-- the executions) that bench_backlog.insert_job fills with one plain
-- INSERT ... SELECT of the units of a spec, which is what submit_job writes
-- without normalising, validating or deduplicating anything.
--
-- bench_backlog.units(spec) is the plain-SQL expansion of a spec of string
-- models, regions and string questions into the rows submit_job creates
-- (run.sh checks that the two agree row for row, payload included). It
-- fills both sides of (a) to (d): execguard through submit_job, the
-- baseline through an INSERT ... SELECT of the same units.
DROP SCHEMA IF EXISTS bench_backlog CASCADE;
CREATE SCHEMA bench_backlog;

-- The SKIP LOCKED queue of (a) to (d).
CREATE TABLE bench_backlog.executions (LIKE execguard.executions INCLUDING ALL);
DO $$
BEGIN
    EXECUTE format('ALTER TABLE bench_backlog.executions SET (%s)',
                   (SELECT string_agg(o, ', ')
                      FROM pg_catalog.pg_class, unnest(reloptions) AS o
                     WHERE oid = 'execguard.executions'::regclass AND o NOT LIKE 'fillfactor=%'));
END
$$;
CREATE INDEX executions_pending
    ON bench_backlog.executions (execution_id) WHERE status = 'pending';
CREATE INDEX executions_pending_region
    ON bench_backlog.executions (region, execution_id) WHERE status = 'pending';
CREATE INDEX executions_running_lease
    ON bench_backlog.executions (lease_expires_at)
    WHERE status = 'running' AND lease_expires_at IS NOT NULL;

-- ceiling.sql's table: no indexes, no constraints, one int per row.
CREATE TABLE bench_backlog.ceiling (client int);

-- The drain of (d), batches of 50, shaped like bench/claims' batch
-- baseline: a function call is the statement boundary between the claim
-- and the completion, as claim_next and complete_executions are on the
-- execguard side; PL/pgSQL keeps its plan for the session.
CREATE FUNCTION bench_backlog.claim_batch(worker text)
RETURNS TABLE (execution_id bigint, fencing_token bigint)
LANGUAGE plpgsql VOLATILE
AS $fn$
BEGIN
    RETURN QUERY
    UPDATE bench_backlog.executions AS e
       SET status = 'running', attempt = e.attempt + 1, fencing_token = e.fencing_token + 1,
           worker = claim_batch.worker, lease_expires_at = now() + interval '60 seconds',
           not_before = NULL, started_at = now(), finished_at = NULL
     WHERE e.execution_id IN (SELECT q.execution_id FROM bench_backlog.executions AS q
                               WHERE q.status = 'pending'
                                 AND (q.not_before IS NULL OR q.not_before <= now())
                               ORDER BY q.execution_id
                               LIMIT 50
                                 FOR UPDATE SKIP LOCKED)
    RETURNING e.execution_id, e.fencing_token;
END
$fn$;

CREATE FUNCTION bench_backlog.complete_batch(execution_ids bigint[], fencing_tokens bigint[])
RETURNS int
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    accepted int;
BEGIN
    UPDATE bench_backlog.executions AS e
       SET status = 'completed', result = '{"answer": "Paris"}', finished_at = now(),
           owner_pid = NULL, owner_backend_start = NULL
      FROM unnest(execution_ids, fencing_tokens) AS i(execution_id, fencing_token)
     WHERE e.execution_id = i.execution_id AND e.fencing_token = i.fencing_token
       AND e.status = 'running';
    GET DIAGNOSTICS accepted = ROW_COUNT;
    RETURN accepted;
END
$fn$;

-- A job spec: string models and regions, questions_count string questions
-- (each its own id) from question number first_question on.
CREATE FUNCTION bench_backlog.spec(job_id text, models text[], regions text[],
                                   first_question int, questions_count int)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $fn$
    SELECT jsonb_build_object(
        'id', job_id,
        'models', to_jsonb(models),
        'regions', to_jsonb(regions),
        'questions', (SELECT jsonb_agg(format('Question %s: what is the capital of country number %s?', i, i)
                                       ORDER BY i)
                        FROM generate_series(first_question, first_question + questions_count - 1) AS i),
        'params', '{"temperature": 0, "max_tokens": 64}'::jsonb)
$fn$;

-- The units of such a spec, as submit_job writes them (model_name is the
-- model's spelling, provider null, the question its own id and prompt).
CREATE FUNCTION bench_backlog.units(spec jsonb)
RETURNS TABLE (job_id text, model_id text, region text, question_id text, max_attempts int, payload jsonb)
LANGUAGE sql STABLE
AS $fn$
    SELECT spec ->> 'id', m, r, q, 3,
           jsonb_build_object('job_id', spec ->> 'id', 'model_id', m, 'model_name', m, 'provider', NULL,
                              'region', r, 'question_id', q, 'prompt', q, 'params', spec -> 'params')
      FROM jsonb_array_elements_text(spec -> 'models') WITH ORDINALITY AS mm(m, mo),
           jsonb_array_elements_text(spec -> 'regions') WITH ORDINALITY AS rr(r, ro),
           jsonb_array_elements_text(spec -> 'questions') WITH ORDINALITY AS qq(q, qo)
     ORDER BY mo, ro, qo
$fn$;

-- One job of (a) to (d) on one side ('execguard' or 'baseline'); returns the
-- executions created.
CREATE FUNCTION bench_backlog.fill_job(side text, job_id text, models text[], regions text[],
                                       first_question int, questions_count int)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    s jsonb := bench_backlog.spec(job_id, models, regions, first_question, questions_count);
    created bigint;
BEGIN
    IF side = 'execguard' THEN
        SELECT j.executions_created INTO created FROM execguard.submit_job(s) AS j;
    ELSE
        INSERT INTO bench_backlog.executions (job_id, model_id, region, question_id, max_attempts, payload)
        SELECT u.job_id, u.model_id, u.region, u.question_id, u.max_attempts, u.payload
          FROM bench_backlog.units(s) AS u;
        GET DIAGNOSTICS created = ROW_COUNT;
    END IF;
    RETURN created;
END
$fn$;

-- (e): the copies, and the specs both sides submit.
CREATE TABLE bench_backlog.e_jobs (LIKE execguard.jobs INCLUDING ALL);
CREATE TABLE bench_backlog.e_executions (LIKE execguard.executions INCLUDING ALL);
CREATE TABLE bench_backlog.e_queue (LIKE execguard.queue INCLUDING ALL);
ALTER TABLE bench_backlog.e_queue
    ADD FOREIGN KEY (execution_id) REFERENCES bench_backlog.e_executions (execution_id) ON DELETE CASCADE;
DO $$
DECLARE
    t text;
    opts text;
BEGIN
    FOREACH t IN ARRAY ARRAY['jobs', 'executions', 'queue'] LOOP
        SELECT string_agg(o, ', ') INTO opts
          FROM pg_catalog.pg_class, unnest(reloptions) AS o
         WHERE oid = format('execguard.%I', t)::regclass;
        IF opts IS NOT NULL THEN
            EXECUTE format('ALTER TABLE bench_backlog.%I SET (%s)', 'e_' || t, opts);
        END IF;
    END LOOP;
END
$$;
CREATE TABLE bench_backlog.e_specs (k int PRIMARY KEY, spec jsonb NOT NULL);

-- The baseline of (e): the job row, then one INSERT ... SELECT of every unit
-- into the executions and, from what it returns, into the queue. The
-- queue's columns are those of execguard.queue that executions also has
-- (execution_id, lease_expires_at, and region and model_id where the queue
-- carries them), so the statement follows the queue's shape.
DO $do$
DECLARE
    cols text;
BEGIN
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
      FROM pg_catalog.pg_attribute AS a
     WHERE a.attrelid = 'execguard.queue'::regclass AND a.attnum > 0 AND NOT a.attisdropped
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute AS b
                    WHERE b.attrelid = 'execguard.executions'::regclass AND b.attname = a.attname
                      AND NOT b.attisdropped);
    EXECUTE format($f$
        CREATE FUNCTION bench_backlog.insert_job(spec jsonb)
        RETURNS bigint
        LANGUAGE sql VOLATILE
        AS $body$
            INSERT INTO bench_backlog.e_jobs (job_id, spec, max_attempts) VALUES (spec ->> 'id', spec, 3);
            WITH created AS (
                INSERT INTO bench_backlog.e_executions (job_id, model_id, region, question_id, max_attempts, payload)
                SELECT u.job_id, u.model_id, u.region, u.question_id, u.max_attempts, u.payload
                  FROM bench_backlog.units(spec) AS u
                RETURNING %1$s),
            queued AS (INSERT INTO bench_backlog.e_queue (%1$s) SELECT %1$s FROM created)
            SELECT count(*) FROM created;
        $body$ $f$, cols);
END
$do$;
