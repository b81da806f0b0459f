--
-- submit_job: spec shapes, fan-out, idempotence, conflicts, regions table,
-- question dedup, payloads and errors. Job ids start with 'sj-'.
--
-- Keys are claimed here without submitting their jobs first (the seed's
-- create-on-claim), which execguard.claims_require_submitted_job refuses
-- by default: claim_strict tests that.
SET execguard.claims_require_submitted_job = off;
TRUNCATE execguard.queue, execguard.executions, execguard.jobs, execguard.regions RESTART IDENTITY;

-- The rows of one job, in key order.
CREATE FUNCTION pg_temp.units(job text)
RETURNS TABLE (model_id text, region text, question_id text, status text, attempt int, max_attempts int)
LANGUAGE sql AS $$
    SELECT model_id, region, question_id, status, attempt, max_attempts
      FROM execguard.executions WHERE job_id = job
     ORDER BY model_id, region, question_id
$$;

-- The seed-style spec (metadata.models + constraints.regions +
-- benchmark.input.data.prompt) with the reference incident: 2 executions.
SELECT * FROM execguard.submit_job('{
    "id": "sj-seed",
    "metadata": {"models": ["llama3.2-1b", "qwen2.5-1.5b", "llama3.2-1b", "qwen2.5-1.5b"]},
    "constraints": {"regions": ["us-east"]},
    "benchmark": {"input": {"data": {"prompt": "Summarise the incident report."}}}
}');
SELECT * FROM pg_temp.units('sj-seed');
-- The payload has everything a runner needs; question id '' for the single prompt.
SELECT model_id, payload FROM execguard.executions WHERE job_id = 'sj-seed' ORDER BY model_id;
-- The job row keeps the normalised spec.
SELECT job_id, spec, max_attempts, cancelled_at IS NULL AS not_cancelled FROM execguard.jobs WHERE job_id = 'sj-seed';

-- Idempotent: the same job again creates nothing.
SELECT * FROM execguard.submit_job('{
    "id": "sj-seed",
    "metadata": {"models": ["llama3.2-1b", "qwen2.5-1.5b", "llama3.2-1b", "qwen2.5-1.5b"]},
    "constraints": {"regions": ["us-east"]},
    "benchmark": {"input": {"data": {"prompt": "Summarise the incident report."}}}
}');
-- A spelling that normalises to the same spec is the same job too (the
-- id, models, regions and prompt are trimmed; region case is folded).
SELECT * FROM execguard.submit_job('{
    "id": " sj-seed ",
    "models": [" llama3.2-1b ", "qwen2.5-1.5b"],
    "regions": ["US-EAST"],
    "benchmark": {"input": {"data": {"prompt": "  Summarise the incident report.  "}}}
}');
SELECT count(*) AS rows FROM execguard.executions WHERE job_id = 'sj-seed';

-- Conflicting resubmission: an error naming the job, nothing changed.
SELECT * FROM execguard.submit_job('{
    "id": "sj-seed",
    "metadata": {"models": ["llama3.2-1b", "qwen2.5-1.5b"]},
    "constraints": {"regions": ["us-east"]},
    "benchmark": {"input": {"data": {"prompt": "A different prompt."}}}
}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.submit_job('{
    "id": "sj-seed",
    "metadata": {"models": ["llama3.2-1b", "qwen2.5-1.5b", "mistral-7b"]},
    "constraints": {"regions": ["us-east"]},
    "benchmark": {"input": {"data": {"prompt": "Summarise the incident report."}}}
}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS rows, count(*) FILTER (WHERE model_id = 'mistral-7b') AS mistral
  FROM execguard.executions WHERE job_id = 'sj-seed';

-- Top-level models and metadata.models are merged and deduplicated
-- together (2 duplicates removed); the object entry's provider is kept.
SELECT * FROM execguard.submit_job('{
    "id": "sj-merge",
    "models": ["gpt-4o-mini", {"id": "Claude-3-Haiku", "provider": "anthropic"}],
    "metadata": {"models": ["GPT-4o-mini", "claude-3-haiku", "mistral-7b"]},
    "regions": ["eu-west"],
    "benchmark": {"input": {"data": {"prompt": "Hello"}}}
}');
SELECT model_id, region, payload ->> 'model_name' AS model_name, payload ->> 'provider' AS provider
  FROM execguard.executions WHERE job_id = 'sj-merge' ORDER BY execution_id;

-- A model's own regions replace the default regions for that model.
SELECT * FROM execguard.submit_job('{
    "id": "sj-own-regions",
    "models": [{"id": "a", "regions": ["eu-west", "ap-south"]}, "b"],
    "constraints": {"regions": ["us-east"]},
    "benchmark": {"input": {"data": {"prompt": "Hello"}}}
}');
SELECT * FROM pg_temp.units('sj-own-regions');
-- regions and constraints.regions together must agree (as sets).
SELECT * FROM execguard.submit_job('{
    "id": "sj-both-regions",
    "models": ["a"], "regions": ["us-east", "eu-west"], "constraints": {"regions": ["EU-WEST", "us-east"]},
    "benchmark": {"input": {"data": {"prompt": "Hello"}}}
}');
SELECT * FROM execguard.submit_job('{
    "id": "sj-regions-disagree",
    "models": ["a"], "regions": ["us-east"], "constraints": {"regions": ["eu-west"]},
    "benchmark": {"input": {"data": {"prompt": "Hello"}}}
}');
\echo :LAST_ERROR_SQLSTATE

-- Questions fan-out: 2 models x 3 regions x 2 questions = 12 rows.
SELECT * FROM execguard.submit_job('{
    "id": "sj-fanout",
    "models": ["llama3.2-1b", "qwen2.5-1.5b"],
    "regions": ["us-east", "eu-west", "ap-south"],
    "questions": [{"id": "q1", "prompt": "What is 2+2?"}, {"id": "q2", "prompt": "Name a prime."}]
}');
SELECT * FROM pg_temp.units('sj-fanout');
SELECT count(*) AS rows, count(DISTINCT model_id) AS models, count(DISTINCT region) AS regions,
       count(DISTINCT question_id) AS questions
  FROM execguard.executions WHERE job_id = 'sj-fanout';
-- Each row's payload carries its own prompt.
SELECT DISTINCT question_id, payload ->> 'prompt' AS prompt
  FROM execguard.executions WHERE job_id = 'sj-fanout' ORDER BY question_id;
-- Questions win over benchmark.input.data.prompt.
SELECT * FROM execguard.submit_job('{
    "id": "sj-questions-and-prompt", "models": ["a"], "regions": ["r"],
    "questions": ["Only this."],
    "benchmark": {"input": {"data": {"prompt": "Not this."}}}
}');
SELECT question_id, payload ->> 'prompt' AS prompt FROM execguard.executions WHERE job_id = 'sj-questions-and-prompt';

-- Question dedup: plain strings by trimmed text (the text is also the id).
SELECT * FROM execguard.submit_job('{
    "id": "sj-qdedup-strings", "models": ["a"], "regions": ["r"],
    "questions": ["What is 2+2?", "  What is 2+2?  ", "Name a prime.", "what is 2+2?"]
}');
SELECT question_id, payload ->> 'prompt' AS prompt
  FROM execguard.executions WHERE job_id = 'sj-qdedup-strings' ORDER BY execution_id;
-- Objects by id (trimmed): the same id with the same prompt is a duplicate.
SELECT * FROM execguard.submit_job('{
    "id": "sj-qdedup-objects", "models": ["a", "A"], "regions": ["r"],
    "questions": [{"id": "q1", "prompt": "A?"}, {"id": " q1 ", "prompt": "A?"}, {"id": "q2", "prompt": "B?"},
                  {"id": "Q2", "prompt": "B?"}]
}');
SELECT question_id, payload ->> 'prompt' AS prompt
  FROM execguard.executions WHERE job_id = 'sj-qdedup-objects' ORDER BY execution_id;
-- The same id with a different prompt is an error, not a silent pick.
SELECT * FROM execguard.submit_job('{
    "id": "sj-qdedup-conflict", "models": ["a"], "regions": ["r"],
    "questions": [{"id": "q1", "prompt": "A?"}, {"id": "q2", "prompt": "B?"}, {"id": "q1", "prompt": "C?"}]
}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS rows FROM execguard.jobs WHERE job_id = 'sj-qdedup-conflict';

-- params are copied into every payload; max_attempts into every row.
SELECT * FROM execguard.submit_job('{
    "id": "sj-params", "models": ["a", "b"], "regions": ["r"],
    "params": {"temperature": 0.2, "max_tokens": 256, "stop": ["\n\n"]},
    "max_attempts": 5,
    "benchmark": {"input": {"data": {"prompt": "Hello"}}}
}');
SELECT model_id, payload -> 'params' AS params, max_attempts
  FROM execguard.executions WHERE job_id = 'sj-params' ORDER BY model_id;
SELECT max_attempts FROM execguard.jobs WHERE job_id = 'sj-params';
-- A different params value is a different spec.
SELECT * FROM execguard.submit_job('{
    "id": "sj-params", "models": ["a", "b"], "regions": ["r"],
    "params": {"temperature": 0.7, "max_tokens": 256, "stop": ["\n\n"]},
    "max_attempts": 5,
    "benchmark": {"input": {"data": {"prompt": "Hello"}}}
}');
\echo :LAST_ERROR_SQLSTATE

-- The regions table: when it has rows, an unknown region is an error
-- naming it, never mapped to another region.
INSERT INTO execguard.regions (name) VALUES ('us-east'), ('eu-west');
SELECT * FROM execguard.submit_job('{
    "id": "sj-unknown-region", "models": ["a"], "regions": ["us-east", "ap-south"],
    "benchmark": {"input": {"data": {"prompt": "Hello"}}}
}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.submit_job('{
    "id": "sj-unknown-region", "models": [{"id": "a", "regions": ["eu-west"]}, {"id": "b", "regions": ["us-west"]}],
    "benchmark": {"input": {"data": {"prompt": "Hello"}}}
}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS rows FROM execguard.executions WHERE job_id = 'sj-unknown-region';
-- Listed regions are accepted, in any spelling.
SELECT * FROM execguard.submit_job('{
    "id": "sj-known-region", "models": ["a"], "regions": [" US-East ", "eu-west"],
    "benchmark": {"input": {"data": {"prompt": "Hello"}}}
}');
-- With the table empty, any region is accepted.
DELETE FROM execguard.regions;
SELECT * FROM execguard.submit_job('{
    "id": "sj-unknown-region", "models": ["a"], "regions": ["us-east", "ap-south"],
    "benchmark": {"input": {"data": {"prompt": "Hello"}}}
}');

-- A job with no model, no region or no prompt is an error.
SELECT * FROM execguard.submit_job('{"id": "sj-err", "regions": ["r"], "benchmark": {"input": {"data": {"prompt": "Hi"}}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.submit_job('{"id": "sj-err", "models": [], "metadata": {"models": []}, "regions": ["r"], "benchmark": {"input": {"data": {"prompt": "Hi"}}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.submit_job('{"id": "sj-err", "models": ["a"], "benchmark": {"input": {"data": {"prompt": "Hi"}}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.submit_job('{"id": "sj-err", "models": [{"id": "a", "regions": ["r"]}, "b"], "benchmark": {"input": {"data": {"prompt": "Hi"}}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.submit_job('{"id": "sj-err", "models": ["a"], "regions": ["r"]}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.submit_job('{"id": "sj-err", "models": ["a"], "regions": ["r"], "questions": []}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.submit_job('{"id": "sj-err", "models": ["a"], "regions": ["r"], "benchmark": {"input": {"data": {"prompt": "   "}}}}');
\echo :LAST_ERROR_SQLSTATE

-- Other spec errors name what is wrong.
SELECT * FROM execguard.submit_job('{"models": ["a"], "regions": ["r"], "benchmark": {"input": {"data": {"prompt": "Hi"}}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.submit_job('{"id": 7, "models": ["a"], "regions": ["r"], "benchmark": {"input": {"data": {"prompt": "Hi"}}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.submit_job('["a"]');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.submit_job('{"id": "sj-err", "metadata": ["a"], "regions": ["r"], "benchmark": {"input": {"data": {"prompt": "Hi"}}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.submit_job('{"id": "sj-err", "metadata": {"models": ["a", 3]}, "regions": ["r"], "benchmark": {"input": {"data": {"prompt": "Hi"}}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.submit_job('{"id": "sj-err", "models": ["a"], "constraints": {"regions": ["r", 1]}, "benchmark": {"input": {"data": {"prompt": "Hi"}}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.submit_job('{"id": "sj-err", "models": ["a"], "regions": ["r"], "questions": ["ok", 5]}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.submit_job('{"id": "sj-err", "models": ["a"], "regions": ["r"], "questions": [{"id": "q1"}]}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.submit_job('{"id": "sj-err", "models": ["a"], "regions": ["r"], "questions": [{"id": "q1", "prompt": "x", "text": "y"}]}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.submit_job('{"id": "sj-err", "models": ["a"], "regions": ["r"], "questions": ["x"], "params": [1]}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.submit_job('{"id": "sj-err", "models": ["a"], "regions": ["r"], "questions": ["x"], "max_attempts": 0}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM execguard.submit_job('{"id": "sj-err", "models": ["a"], "regions": ["r"], "benchmark": {"input": {"data": {"prompt": 42}}}}');
\echo :LAST_ERROR_SQLSTATE
-- None of the failed submissions left anything behind.
SELECT count(*) AS jobs FROM execguard.jobs WHERE job_id = 'sj-err';
SELECT count(*) AS rows FROM execguard.executions WHERE job_id = 'sj-err';

-- The whole submission is one transaction with the caller's.
BEGIN;
SELECT * FROM execguard.submit_job('{"id": "sj-rolled-back", "models": ["a"], "regions": ["r"], "questions": ["x"]}');
ROLLBACK;
SELECT count(*) AS rows FROM execguard.executions WHERE job_id = 'sj-rolled-back';

-- A unit that already exists (claimed before the job was submitted) is
-- counted as existing, not created twice.
SELECT outcome FROM execguard.claim_execution('sj-claimed-first', 'a', 'r', 'x');
SELECT * FROM execguard.submit_job('{"id": "sj-claimed-first", "models": ["a", "b"], "regions": ["r"], "questions": ["x"]}');
SELECT * FROM pg_temp.units('sj-claimed-first');

\i sql/include/queue_in_step.sql
