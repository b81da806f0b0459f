#!/usr/bin/python3
"""test/hostile/hostile.py: hostile inputs against a live execguard server.

Every call runs in its own transaction (committed when it returns a result,
rolled back when it raises) and must either return a result or raise a clean
ERROR whose SQLSTATE is in ALLOWED[function] below. Many cases also pin the
exact outcome (must succeed, or must fail with one particular SQLSTATE).
Afterwards: the server log has no backend crash, the postmaster did not
restart, and the tables hold exactly what the successful calls wrote.

Claims of keys that no submitted job has are made under both values of
execguard.claims_require_submitted_job: with its default (on, checked at
the start) they must return 'unknown', counted in claims_unknown, and write
nothing; with it off for the call (SET LOCAL, which needs a superuser) they
create the key running, as up to 0.5.0. cancel_job of a job id never
submitted leaves a tombstone row in execguard.jobs (no spec), whose keys
are refused even with the setting off. The final check of the tables
counts exactly the rows submit_job and the create-on-claim calls reported,
and exactly those jobs and tombstones.

Usage: test/hostile/run.sh (PG* environment variables name the cluster,
as a superuser; EXECGUARD_CLUSTER_DIR or --server-log names its log file).
"""
import argparse
import json
import os
import random
import re
import sys
import time
from collections import Counter

import psycopg2
import psycopg2.extras

# Clean errors each function may raise for hostile input. Documented in
# docs/reliability.md; anything else (XX000 internal error, 53200 out of
# memory, 57014 timeout, a lost connection) is a failure.
TYPE_INPUT = {
    "22P02",  # invalid_text_representation: a literal that is not valid jsonb/int/...
    "22P05",  # untranslatable_character: \u0000 in jsonb
    "22021",  # character_not_in_repertoire: NUL byte in text
    "42883",  # undefined_function: wrong argument types, no such signature
    "54001",  # statement_too_complex: nesting beyond max_stack_depth (jsonb input)
}
INTERVAL_INPUT = {"22008", "22015", "22007"}  # interval literal overflow / bad format
NUMERIC_INPUT = {"22003"}  # numeric_value_out_of_range (int/bigint literals)
ALLOWED = {
    "normalize_models": TYPE_INPUT | {"22023", "22004", "54000"},
    "submit_job": TYPE_INPUT | {"22023", "54000", "23505"},
    "claim_execution": TYPE_INPUT | INTERVAL_INPUT | {"22023", "22004"},
    "claim_next": TYPE_INPUT | INTERVAL_INPUT | NUMERIC_INPUT | {"22023", "22004", "54000"},
    "heartbeat": TYPE_INPUT | INTERVAL_INPUT | NUMERIC_INPUT | {"22023", "22004"},
    "complete_execution": TYPE_INPUT | NUMERIC_INPUT | {"22004"},
    "complete_executions": TYPE_INPUT | NUMERIC_INPUT | {"22023", "22004", "2202E", "54000"},
    "fail_execution": TYPE_INPUT | INTERVAL_INPUT | NUMERIC_INPUT | {"22023", "22004"},
    "release_execution": TYPE_INPUT | NUMERIC_INPUT | {"22004"},
    "cancel_job": TYPE_INPUT | {"22023", "22004"},
    "retry_job": TYPE_INPUT | {"22023", "22004"},
    # 22008: now() - older_than past the range of timestamptz.
    "purge_jobs": TYPE_INPUT | INTERVAL_INPUT | NUMERIC_INPUT | {"22023", "22004", "22008"},
    "stats_extra": set(),
}
CRASH_PATTERNS = re.compile(r"terminated by signal|server process .* was terminated|PANIC|"
                            r"terminating any other active server processes|database system was interrupted")
MB10 = 10 * 1024 * 1024


class Suite:
    def __init__(self, prefix):
        self.prefix = prefix
        self.conn = self.connect()
        self.cases = 0
        self.results = 0
        self.errors = Counter()
        self.violations = []
        self.crashes = 0
        self.submitted = {}  # canonical job_id -> executions created (sum over calls)
        self.claim_created = set()  # execution_ids created by claims of unsubmitted keys (setting off)
        self.unknown_claims = 0  # claims that returned 'unknown' (each must be counted in claims_unknown)
        self.tombstones = set()  # job ids cancel_job was given that no submit_job created
        self.grants = []  # (execution_id, fencing_token) from successful grants

    @staticmethod
    def connect():
        conn = psycopg2.connect(connect_timeout=10)
        conn.autocommit = False
        with conn.cursor() as cur:
            cur.execute("SET statement_timeout = '30s'")
        conn.commit()
        return conn

    def jid(self, suffix):
        return f"{self.prefix}{suffix}"

    def call(self, function, sql, params=(), expect="any", name=None, check=None, setup=None,
             client_encoding=None):
        """One hostile input. expect: 'ok', 'any', or a SQLSTATE that must be raised."""
        self.cases += 1
        label = name or f"{function}#{self.cases}"
        rows = None
        state = None
        message = None
        try:
            with self.conn.cursor() as cur:
                if client_encoding:
                    cur.execute("SET LOCAL client_encoding = %s", (client_encoding,))
                if setup:
                    cur.execute(setup)
                cur.execute(sql, params)
                rows = cur.fetchall() if cur.description else []
            self.conn.commit()
        except psycopg2.Error as e:
            state = e.pgcode
            message = e.pgerror or ""
            if state is None:  # no SQLSTATE: the connection broke
                self.crashes += 1
                self.violations.append(f"{label}: connection lost: {e}")
                self.conn = self.connect()
                return None
            self.conn.rollback()
        if state is None:
            self.results += 1
            if expect not in ("ok", "any"):
                self.violations.append(f"{label}: expected SQLSTATE {expect}, got a result {str(rows)[:200]}")
            elif check is not None:
                problem = check(rows)
                if problem:
                    self.violations.append(f"{label}: {problem}")
            return rows
        self.errors[state] += 1
        if state not in ALLOWED[function]:
            self.violations.append(f"{label}: SQLSTATE {state} not allowed for {function}: {message[:300]}")
        elif expect == "ok":
            self.violations.append(f"{label}: expected a result, got {state}: {message[:300]}")
        elif expect != "any" and expect != state:
            self.violations.append(f"{label}: expected {expect}, got {state}: {message[:300]}")
        if "\ufffd" in message and "\ufffd" not in str(params)[:MB10]:
            self.violations.append(f"{label}: error message is not valid UTF-8: {message[:300]}")
        return None

    # -- submit_job bookkeeping ---------------------------------------------
    def submit(self, spec, expect="any", name=None, created=None, spec_text=None):
        text = spec_text if spec_text is not None else json.dumps(spec, ensure_ascii=False)

        def check(rows):
            if len(rows) != 1:
                return f"submit_job returned {len(rows)} rows"
            job_id, n_created, n_existing, _ = rows[0]
            if created is not None and n_created != created:
                return f"executions_created {n_created}, expected {created}"
            return None

        rows = self.call("submit_job", "SELECT * FROM execguard.submit_job(%s::jsonb)", (text,), expect,
                         name, check)
        if rows:
            self.submitted[rows[0][0]] = self.submitted.get(rows[0][0], 0) + rows[0][1]
        return rows

    def claim(self, args, expect="any", name=None, sql_args=None, outcome=None, create_on_claim=None):
        """A claim_execution call. outcome: the outcome it must return.
        create_on_claim: None keeps the session's execguard.claims_require_submitted_job
        (on: the default); True/False set it off/on for this call only."""
        sql = "SELECT (c).* FROM (SELECT execguard.claim_execution(%s) AS c) s" % (sql_args or ", ".join(["%s"] * len(args)))
        setup = None
        if create_on_claim is not None:
            setup = "SET LOCAL execguard.claims_require_submitted_job = %s" % ("off" if create_on_claim else "on")

        def check(rows):
            if outcome is not None and rows[0][0] != outcome:
                return f"outcome {rows[0][0]}, expected {outcome}"
            if rows[0][0] == "unknown" and any(v is not None for v in rows[0][1:]):
                return f"'unknown' with a row: {rows[0]}"
            return None

        rows = self.call("claim_execution", sql, tuple(args), expect, name, check, setup)
        if rows and rows[0][0] in ("claimed", "reclaimed"):
            self.grants.append((rows[0][1], rows[0][2]))
        if rows and rows[0][0] == "unknown":
            self.unknown_claims += 1
        if rows and create_on_claim and rows[0][0] == "claimed" and outcome == "claimed":
            # Only callers that know the key did not exist say outcome="claimed" here.
            self.claim_created.add(rows[0][1])
        return rows


def spec(suite, suffix, **members):
    out = {"id": suite.jid(suffix), "models": ["m1"], "regions": ["r1"], "questions": ["q1"]}
    out.update(members)
    return {k: v for k, v in out.items() if v is not ...}


def deep_array(depth, leaf='"x"'):
    return "[" * depth + leaf + "]" * depth


UNICODE = {
    "combining": "mo\u0301de\u0308l",
    "rtl_override": "\u202emodel\u202c",
    "rtl_hebrew": "\u05de\u05d5\u05d3\u05dc",
    "emoji": "\U0001F600-model",
    "zwj_emoji": "\U0001F469\u200d\U0001F4BB",
    "bom": "\ufeffmodel",
    "noncharacter_fffe": "model\ufffe",
    "noncharacter_ffff": "model\uffff",
    "max_codepoint": "model\U0010FFFF",
    "nbsp_padding": "\u00a0model\u00a0",
    "ideographic_space": "\u3000model",
    "turkish_i": "\u0130STANBUL",
    "fullwidth": "\uff2d\uff2f\uff24\uff25\uff2c",
}
SQL_LOOKING = [
    "'; DROP TABLE execguard.executions; --",
    "\"; DELETE FROM execguard.jobs; --",
    "$$; SELECT pg_terminate_backend(pg_backend_pid()); $$",
    "x' OR '1'='1",
    "\\x00\\\\",
    "%s %n %x",
]


def normalize_cases(s):
    n = "normalize_models"
    # Each result also says whether its binary image is the one PostgreSQL
    # builds for the same value (the adapter writes Jsonb's format itself).
    one = "SELECT r, ROW(r)::record *= ROW(r::text::jsonb)::record FROM execguard.normalize_models(%s::jsonb) AS r"
    two = "SELECT r, ROW(r)::record *= ROW(r::text::jsonb)::record FROM execguard.normalize_models(%s::jsonb, %s::text[]) AS r"

    def norm(sql, params, expect, name, check=None, **options):
        def image_and_check(rows):
            if rows[0][0] is not None and rows[0][1] is not True:
                return "binary image differs from PostgreSQL's jsonb of the same value"
            return check(rows) if check else None
        return s.call(n, sql, params, expect, name, image_and_check, **options)

    def models_count(k):
        return lambda rows: None if len(rows[0][0]) == k else f"expected {k} models, got {len(rows[0][0])}"

    norm(two, (json.dumps(["llama3.2-1b", "qwen2.5-1.5b", "llama3.2-1b", "qwen2.5-1.5b"]), ["us-east"]),
           "ok", "reference incident", models_count(2))
    norm(one, (None,), "ok", "NULL models (STRICT)", lambda r: None if r[0][0] is None else "not NULL")
    norm(two, ('["a"]', None), "ok", "NULL default_regions (STRICT)", lambda r: None if r[0][0] is None else "not NULL")
    norm(two, ('["a"]', ["r", None]), "22004", "NULL element in default_regions")
    norm(two, ('["a"]', [""]), "22023", "empty default region")
    norm(two, ('["a"]', ["x" * 201]), "22023", "long default region")
    norm(two, ('["a"]', ["r\x01"]), "22023", "control char in default region")
    norm(two, ('["a"]', ["R%d" % (i % 7) for i in range(10000)]), "ok", "10,000 default regions",
           lambda r: None if len(r[0][0][0]["regions"]) == 7 else "regions not deduplicated")
    s.call(n, "SELECT execguard.normalize_models('[\"a\"]', '{{a,b},{c,d}}')", (), "any", "2-D default_regions")
    for label, value in [("number", "1"), ("string", '"a"'), ("object", '{"models":["a"]}'), ("true", "true"),
                         ("null", "null"), ("float", "1e308"), ("huge number", "1" + "0" * 1000)]:
        norm(one, (value,), "22023", f"top-level {label}")
    for label, element in [("number", "1"), ("bool", "false"), ("null", "null"), ("array", '["a"]'),
                           ("empty object", "{}"), ("object no id", '{"name":"x"}'), ("empty string", '""'),
                           ("blank string", '"  \\t "'), ("control", '"a\\u0007"'), ("del", '"a\\u007f"'),
                           ("long id", json.dumps("x" * 201)), ("unknown key", '{"id":"a","region":"x"}')]:
        norm(one, ("[\"ok\", %s]" % element,), "22023", f"element {label}")
    for member, values in {"id": ["1", "[]", "{}", "true", "null", '""'],
                           "name": ["1", "[]", "{}", "true", json.dumps("x" * 201)],
                           "provider": ["1", "[]", "{}", "false"],
                           "regions": ['"us"', "{}", "1", "[1]", "[null]", "[[]]", '[""]', '["r\\nx"]']}.items():
        for v in values:
            entry = {"id": "a"}
            entry_text = json.dumps(entry)[:-1] + ', "%s": %s}' % (member, v) if member != "id" else '{"id": %s}' % v
            norm(one, ("[%s]" % entry_text,), "22023", f"{member} = {v[:20]}")
    norm(one, ('[{"id":"a","provider":"x"},{"id":"A","provider":"y"}]',), "22023", "provider conflict")
    # Nesting: jsonb itself refuses past max_stack_depth (54001); below it the core says 22023.
    for depth in (10, 100, 1000, 10000, 100000):
        norm(one, (deep_array(depth),), "any", f"nested arrays depth {depth}")
        norm(one, ('[{"id":"a","regions":%s}]' % deep_array(depth),), "any", f"nested regions depth {depth}")
    norm(one, (json.dumps(["m%d" % i for i in range(10000)]),), "ok", "10,000 entries", models_count(10000))
    norm(one, (json.dumps(["m"] * 10001),), "54000", "10,001 entries")
    norm(one, (json.dumps(["m%d" % i for i in range(200000)]),), "54000", "200,000 entries")
    norm(one, (json.dumps([{"id": "a", "regions": ["r%d" % i for i in range(20000)]}]),), "ok",
           "20,000 regions in one entry")
    norm(one, (json.dumps(["x" * MB10]),), "22023", "10 MB id")
    norm(one, (json.dumps([{"id": "a", "name": "x" * MB10}]),), "22023", "10 MB name")
    norm(one, (json.dumps([{"id": "a", "regions": ["r" * MB10]}]),), "22023", "10 MB region")
    norm(one, (json.dumps([{"id": "a", "junk" + "k" * MB10: 1}]),), "22023", "10 MB unknown key")
    for label, text in UNICODE.items():
        norm(two, (json.dumps([text, text.upper(), {"id": text, "name": text, "regions": [text]}], ensure_ascii=False),
                        [text]), "ok", f"unicode {label}")
    norm(one, ('["a\\u0000"]',), "22P05", "\\u0000 in jsonb")
    norm(one, ('["\\ud800"]',), "22P02", "lone surrogate escape")
    norm(one, ('["a",',), "22P02", "truncated JSON")
    norm(one, (json.dumps([{"id": "a", "x" * 63 + "\u00e9": 1}], ensure_ascii=False),), "22023",
           "multibyte char at the quoted-key cut")
    for enc in ("LATIN1", "SQL_ASCII", "EUC_JP"):
        norm(one, (json.dumps([{"id": "a", "x" * 63 + "\u00e9": 1}]),), "any",
               f"quoted-key cut, client_encoding {enc}", client_encoding=enc)
    for text in SQL_LOOKING:
        norm(one, (json.dumps([text]),), "ok", f"sql-looking {text[:12]}",
               lambda r, t=text: None if r[0][0][0]["id"] == t.strip().lower() else "id changed")
    s.call(n, "SELECT execguard.normalize_models(%s)", ('["a"]',), "ok", "untyped literal")
    s.call(n, "SELECT execguard.normalize_models(%s::json)", ('["a"]',), "42883", "json, not jsonb")
    s.call(n, "SELECT execguard.normalize_models(1)", (), "42883", "integer argument")
    s.call(n, "SELECT execguard.normalize_models('[]'::jsonb, ARRAY[1,2])", (), "42883", "int[] regions")
    s.call(n, "SELECT execguard.normalize_models('[]'::jsonb, 'r', 'x')", (), "42883", "three arguments")
    norm(one, ('[{"id":"a","id":"b"}]',), "ok", "duplicate object key (jsonb keeps the last)")
    # Valid inputs of every shape around the binary format's boundaries
    # (JB_OFFSET_STRIDE = 32 children, null and multibyte providers, empty
    # region lists), checked against PostgreSQL's own jsonb image above.
    rng = random.Random(20261128)
    words = ["a", "Llama3.2-1B", " qwen ", "\u00e9t\u00e9", "\u6a21\u578b", "x" * 200, "m-%d"]
    for case in range(120):
        entries = []
        for i in range(rng.choice([0, 1, 3, 31, 32, 33, 64, 65, 200])):
            word = rng.choice(words).replace("%d", str(rng.randrange(50)))
            if rng.random() < 0.5:
                entries.append(word)
                continue
            entry = {"id": word}
            if rng.random() < 0.5:
                entry["name"] = rng.choice(words)[:50]
            if rng.random() < 0.3:
                entry["provider"] = "p-" + word.strip().lower()[:20]
            if rng.random() < 0.6:
                entry["regions"] = ["r%d" % rng.randrange(70) for _ in range(rng.choice([0, 1, 31, 32, 33, 70]))]
            entries.append(entry)
        defaults = ["d%d" % k for k in range(rng.choice([0, 1, 40]))]
        norm(two, (json.dumps(entries, ensure_ascii=False), defaults), "any", f"random valid input {case}")


def submit_cases(s):
    fan = spec(s, "fanout", models=["a", {"id": "B", "regions": ["r1", "r2", "r3"]}], regions=["r1", "r2", "r3"],
               questions=[{"id": "q1", "prompt": "one"}, "two"], params={"temperature": 0.2})
    s.submit(fan, "ok", "fan-out 2x3x2", created=12)
    s.submit(fan, "ok", "idempotent resubmission", created=0)
    s.submit(dict(fan, params={"temperature": 0.3}), "23505", "conflicting resubmission")
    s.submit({"id": s.jid("seed"), "benchmark": {"input": {"type": "prompt", "data": {"prompt": "What is 2+2?"}}},
              "constraints": {"regions": ["us-east"]}, "metadata": {"models": ["qwen2.5-1.5b", "llama3.2-1b"]},
              "questions": ["What is 2+2?"]}, "ok", "seed-style spec", created=2)
    s.submit(spec(s, "incident", models=["llama3.2-1b", "qwen2.5-1.5b", "llama3.2-1b", "qwen2.5-1.5b"],
                  regions=["us-east"], questions=..., benchmark={"input": {"data": {"prompt": "hi"}}}),
             "ok", "reference incident", created=2)
    s.call("submit_job", "SELECT * FROM execguard.submit_job(NULL)", (), "ok", "NULL spec (STRICT)",
           lambda r: None if r == [] else "rows for NULL")
    bad = {
        "id": [1, None, [], {}, True, "", "   ", "x" * 201, "a\u0001", "x" * MB10],
        "models": ["m", {"id": "m"}, 1, True, [], [1], [None], [{"id": 1}]],
        "metadata": ["m", [], 1],
        "regions": ["r", {"a": 1}, [1], [None], [""], ["x" * 201], []],
        "constraints": ["c", [1], {"regions": "r"}, {"regions": [2]}],
        "questions": ["q", {"id": "q"}, 1, [1], [None], [{}], [{"id": 1, "prompt": "p"}], [{"id": "a"}],
                      [{"id": "a", "prompt": 2}], [{"id": "a", "prompt": "p", "extra": 1}], [""], ["\u0007"],
                      ["q" * 1001], [{"id": "q", "prompt": "p" * (2 * 1024 * 1024)}],
                      [{"id": "q", "prompt": "a"}, {"id": "q", "prompt": "b"}]],
        "params": [[1], "p", 1, True],
        "max_attempts": [0, -1, 101, 1.5, "3", 1e100, -1e100, 2 ** 63, 2 ** 64, -(2 ** 63) - 1, [], {}],
    }
    for member, values in bad.items():
        for i, v in enumerate(values):
            sp = spec(s, f"bad-{member}-{i}")
            sp[member] = v
            s.submit(sp, "22023", f"{member} = {str(v)[:24]}")
    s.submit(spec(s, "nomodels", models=...), "22023", "no models")
    s.submit(spec(s, "noregions", regions=...), "22023", "no regions")
    s.submit(spec(s, "noprompt", questions=...), "22023", "no questions, no prompt")
    s.submit(spec(s, "regions-disagree", constraints={"regions": ["other"]}), "22023", "regions disagree")
    s.submit(spec(s, "bench-bad", questions=..., benchmark={"input": "x"}), "22023", "benchmark.input not object")
    s.submit(spec(s, "bench-num", questions=..., benchmark={"input": {"data": {"prompt": 5}}}), "22023", "prompt number")
    s.submit(spec(s, "bench-10mb", questions=..., benchmark={"input": {"data": {"prompt": "p" * MB10}}}), "22023",
             "10 MB prompt")
    for top in ("[]", '"job"', "1", "null", "true"):
        s.submit(None, "22023", f"spec {top}", spec_text=top)
    s.submit(None, "22P02", "spec not JSON", spec_text="{id:")
    s.submit(None, "22P05", "\\u0000 in spec", spec_text='{"id":"a\\u0000"}')
    # The limits of 0.6.0: 1,000,000 questions, 10,000,000 units and
    # 1,000,000 (model, region) pairs per job; each is refused before a row
    # is written.
    s.submit(spec(s, "too-many-q", questions=["q%d" % i for i in range(1000001)]), "54000", "1,000,001 questions")
    s.submit(spec(s, "too-many-units", models=["m%d" % i for i in range(1000)], questions=["q%d" % i for i in range(10001)]),
             "54000", "10,001,000 units")
    s.submit(spec(s, "too-many-pairs", models=["m%d" % i for i in range(10000)], regions=["r%d" % i for i in range(101)]),
             "54000", "1,010,000 (model, region) pairs")
    s.submit(spec(s, "many-models", models=["m%d" % i for i in range(10000)]), "ok", "10,000 models", created=10000)
    s.submit(spec(s, "many-q", questions=["q%d" % i for i in range(10000)]), "ok", "10,000 questions", created=10000)
    s.submit(spec(s, "dup-q", questions=["q"] * 5000 + [" q "] * 5000), "ok", "10,000 duplicate questions", created=1)
    s.submit(spec(s, "params-10mb", params={"blob": "b" * MB10}), "ok", "10 MB params value", created=1)
    for depth in (100, 1000, 10000, 100000):
        s.submit(None, "any", f"params nesting {depth}",
                 spec_text=json.dumps(spec(s, f"deep-{depth}"))[:-1] + ', "params": {"x": %s}}' % deep_array(depth))
    s.submit(None, "any", "deep unknown member",
             spec_text=json.dumps(spec(s, "deep-ignored"))[:-1] + ', "junk": %s}' % deep_array(5000))
    for label, text in UNICODE.items():
        s.submit(spec(s, f"u-{label}-{text}", models=[text], regions=[text], questions=[text]), "ok", f"unicode {label}",
                 created=1)
    for i, text in enumerate(SQL_LOOKING):
        s.submit(spec(s, f"sql-{i}-{text}", models=[text], regions=[text], questions=[text]), "ok",
                 f"sql-looking {text[:12]}", created=1)
    s.call("submit_job", "SELECT * FROM execguard.submit_job(%s::jsonb)",
           (json.dumps(spec(s, "unknown-region", regions=["mars"])),), "22023", "region not in execguard.regions",
           setup="INSERT INTO execguard.regions VALUES ('us-east')")
    s.submit(spec(s, "utf8-cut", questions=[{"id": "q", "prompt": "p", "x" * 63 + "\u00e9": 1}]), "22023",
             "multibyte char at the quoted-key cut (questions)")
    s.call("submit_job", "SELECT * FROM execguard.submit_job(%s::json)", ('{}',), "42883", "json argument")
    s.call("submit_job", "SELECT * FROM execguard.submit_job(%s::text)", ('{}',), "42883", "text argument")


def claim_cases(s):
    c = "claim_execution"
    job = s.jid("fanout")
    full = [job, "a", "r1", "q1", "hostile-worker", "60 seconds", True]
    rows = s.claim(full, "ok", "claim a submitted key")
    if not rows or rows[0][0] != "claimed":
        s.violations.append(f"claim a submitted key: expected claimed, got {rows}")
    s.claim(full, "ok", "claim the same key again (duplicate)")
    for i, arg in enumerate(["job_id", "model_id", "region", "question_id", "worker", "lease", "track_owner"]):
        args = list(full)
        args[i] = None
        s.claim(args, "ok" if arg == "worker" else "22004", f"NULL {arg}")
    for label, v in [("empty", ""), ("blank", "   "), ("long", "x" * 201), ("10 MB", "x" * MB10), ("control", "a\x01b")]:
        for i, part in enumerate(["job_id", "model_id", "region"]):
            args = list(full)
            args[i] = v
            s.claim(args, "22023", f"{label} {part}")
    s.claim([job, "a", "r1", "q" * 1001, None, "60 s", True], "22023", "question_id over 1000 bytes")
    s.claim([job, "a", "r1", "", "w" * 201, "60 s", True], "22023", "worker over 200 bytes")
    for lease in ["0", "-1 second", "8 days", "1000 years", "178000000 years", "-178000000 years", "1 microsecond",
                  "7 days", "1 month -40 days", "P1Y", "2147483647 days", "forever", "99999999999999999 years"]:
        s.claim([job, "a", "r2", "q1", None, lease, True], "any", f"lease {lease}")
    # Keys no submitted job has: refused with the default setting (on),
    # created running with it off; a key that exists is claimed as usual
    # whatever the setting.
    ghost = [s.jid("never-submitted"), "ghost", "r", "", None, "60 s", True]
    s.claim(ghost, "ok", "claim a never-submitted key", outcome="unknown")
    s.claim(ghost, "ok", "claim a never-submitted key, setting on", outcome="unknown", create_on_claim=False)
    s.claim(ghost, "ok", "claim a never-submitted key, setting off", outcome="claimed", create_on_claim=True)
    s.claim(ghost, "ok", "the key created by a claim, setting on again", outcome="running")
    outside = [job, "not-in-the-spec", "r1", "q1", None, "60 s", False]
    s.claim(outside, "ok", "a model outside a submitted job's spec", outcome="unknown")
    s.claim([job, "a", "r1", "not-in-the-spec"], "ok", "a question outside a submitted job's spec", outcome="unknown")
    s.claim(outside, "ok", "a model outside a submitted job's spec, setting off", outcome="claimed",
            create_on_claim=True)
    for label, text in list(UNICODE.items())[:6]:
        key = [s.jid("claim-u-" + text), text, text, text, text, "60 s", False]
        s.claim(key, "ok", f"unicode key {label}", outcome="unknown")
        s.claim(key, "ok", f"unicode key {label}, setting off", outcome="claimed", create_on_claim=True)
    for i, text in enumerate(SQL_LOOKING[:3]):
        key = [s.jid(text), text, text, text, text, "60 s", True]
        s.claim(key, "ok", f"sql-looking key {i}", outcome="unknown")
        s.claim(key, "ok", f"sql-looking key {i}, setting off", outcome="claimed", create_on_claim=True)
    s.claim([], "42883", "claim_execution(1,2,3)", sql_args="1, 2, 3")
    s.claim(["a", "b", "c"], "22007", "lease 'soon'", sql_args="%s, %s, %s, '', NULL, 'soon'")
    s.claim(["a", "b", "c"], "22P02", "track_owner 'maybe'", sql_args="%s, %s, %s, '', NULL, '1s', 'maybe'")
    s.claim(["a", "b", "c"], "42883", "lease as int", sql_args="%s, %s, %s, '', NULL, 5")
    s.claim(["b", "c"], "22021", "NUL byte in job_id", sql_args="convert_from('\\x610062', 'UTF8'), %s, %s")

    n = "claim_next"
    cn = "SELECT * FROM execguard.claim_next(%s, %s, %s::interval, %s::text[], %s::text[], %s)"
    # The claims below that must get rows take them from a well-formed job in
    # a region of this run only: claim_next takes the oldest due rows of any
    # job, and other rows (hostile payloads, earlier runs) are not for them.
    own_region = "claims-" + s.prefix.lower().strip("-")
    s.submit(spec(s, "claimable", regions=[own_region], questions=["q%d" % i for i in range(10)]), "ok",
             "a job to claim from", created=10)
    base = ["hostile", 1, "60 s", None, None, True]
    for i in (0, 1, 2, 5):
        args = list(base)
        args[i] = None
        s.call(n, cn, tuple(args), "22004", f"claim_next NULL arg {i}")
    for mc in (0, -1, 10001, -2147483648):
        s.call(n, cn, ("hostile", mc, "60 s", None, None, True), "22023", f"max_claims {mc}")
    s.call(n, "SELECT * FROM execguard.claim_next('w', 2147483648)", (), "42883", "max_claims bigint")
    s.call(n, "SELECT * FROM execguard.claim_next('w', '99999999999')", (), "22003", "max_claims out of int range")
    s.call(n, cn, ("w" * 201, 1, "60 s", None, None, True), "22023", "long worker")
    for label, arr in [("NULL element", ["r1", None]), ("empty", [""]), ("long", ["x" * 201]), ("control", ["\x02"])]:
        s.call(n, cn, ("hostile", 1, "60 s", arr, None, True), "22004" if None in arr else "22023", f"regions {label}")
        s.call(n, cn, ("hostile", 1, "60 s", None, arr, True), "22004" if None in arr else "22023", f"models {label}")
    s.call(n, cn, ("hostile", 1, "60 s", ["nowhere%d" % i for i in range(1000)], None, True), "ok",
           "1,000 region filters", lambda r: None if r == [] else "claimed outside the filter")
    s.call(n, cn, ("hostile", 1, "60 s", ["nowhere%d" % i for i in range(20000)], None, True), "54000",
           "20,000 region filters")
    s.call(n, cn, ("hostile", 1, "60 s", [], [], True), "ok", "empty filters",
           lambda r: None if r == [] else "claimed with an empty filter")
    s.call(n, cn, ("hostile", 1, "60 s", ["R1 "], ["  B"], True), "ok", "filters are canonicalised",
           lambda r: None if len(r) == 1 and r[0][4] == "b" and r[0][5] == "r1" else f"got {r}")
    for lease in ["0", "-5 minutes", "8 days", "1 year"]:
        s.call(n, cn, ("hostile", 1, lease, None, None, True), "22023", f"claim_next lease {lease}")
    rows = s.call(n, cn, ("hostile", 10000, "60 s", None, [s.jid("x")], True), "ok", "max_claims 10000, no match")
    rows = s.call(n, cn, ("hostile", 3, "60 s", [own_region], ["m1"], False), "ok", "claim_next three",
                  lambda r: None if len(r) == 3 else f"claimed {len(r)}")
    for r in rows or []:
        s.grants.append((r[0], r[1]))

    # Writes by a grant holder: heartbeat, complete, fail, release.
    eid, token = s.grants[0]
    for fn, sql, nargs in [
        ("heartbeat", "SELECT execguard.heartbeat(%s, %s, %s::interval)", 3),
        ("complete_execution", "SELECT execguard.complete_execution(%s, %s, %s::jsonb)", 3),
        ("fail_execution", "SELECT execguard.fail_execution(%s, %s, %s, %s, %s::interval)", 5),
        ("release_execution", "SELECT execguard.release_execution(%s, %s)", 2),
    ]:
        good = {"heartbeat": [eid, token, "60 s"], "complete_execution": [eid, token, '{"r":1}'],
                "fail_execution": [eid, token, "err", True, None], "release_execution": [eid, token]}[fn]
        for i in range(nargs):
            args = list(good)
            args[i] = None
            if fn == "fail_execution" and i in (2, 4):
                # error and retry_after may be NULL: with a stale token, so the grant survives.
                args[1] = -7
                s.call(fn, sql, tuple(args), "ok", f"{fn} NULL arg {i}",
                       lambda r: None if r[0][0] == "stale" else f"got {r}")
            else:
                s.call(fn, sql, tuple(args), "22004", f"{fn} NULL arg {i}")
        for bad_id in (-1, 0, 2 ** 63 - 1, -(2 ** 63)):
            args = list(good)
            args[0] = bad_id
            s.call(fn, sql, tuple(args), "ok", f"{fn} id {bad_id}", lambda r: None if r[0][0] in (False, "stale") else f"accepted {r}")
            args = list(good)
            args[1] = bad_id
            s.call(fn, sql, tuple(args), "ok", f"{fn} token {bad_id}", lambda r: None if r[0][0] in (False, "stale") else f"accepted {r}")
        s.call(fn, sql.replace("%s, %s", "%s::numeric, %s", 1), tuple([2 ** 64] + good[1:]), "any", f"{fn} id 2^64")
    s.call("heartbeat", "SELECT execguard.heartbeat(%s, %s, %s::interval)", (eid, token, "-1 s"), "22023", "heartbeat negative lease")
    s.call("heartbeat", "SELECT execguard.heartbeat(%s, %s, %s::interval)", (eid, token, "30 days"), "22023", "heartbeat 30-day lease")
    s.call("heartbeat", "SELECT execguard.heartbeat(%s, %s)", (eid, token), "ok", "heartbeat default lease",
           lambda r: None if r[0][0] is True else "live grant refused")
    for ra in ("-1 s", "31 days", "1000 years"):
        s.call("fail_execution", "SELECT execguard.fail_execution(%s, %s, 'e', true, %s::interval)", (eid, token, ra),
               "22023", f"retry_after {ra}")
    s.call("fail_execution", "SELECT execguard.fail_execution(%s, %s, %s)", (eid, -5, "e" * MB10), "ok",
           "10 MB error text, stale token", lambda r: None if r[0][0] == "stale" else f"got {r}")
    s.call("complete_execution", "SELECT execguard.complete_execution(%s, %s, %s::jsonb)",
           (eid, token, json.dumps({"text": "\u202e\U0001F600" * 1000, "blob": "x" * MB10})), "ok",
           "complete with a 10 MB unicode result", lambda r: None if r[0][0] is True else "live grant refused")
    s.call("complete_execution", "SELECT execguard.complete_execution(%s, %s, %s::jsonb)", (eid, token, '{"again":1}'),
           "ok", "second completion is refused", lambda r: None if r[0][0] is False else "result overwritten")
    s.call("complete_execution", "SELECT execguard.complete_execution(%s, %s, %s::jsonb)",
           (eid, token, '{"x":' + deep_array(100000) + "}"), "54001", "result nested 100,000 deep")
    s.call("release_execution", "SELECT execguard.release_execution(%s, %s)", (eid, token), "ok",
           "release after completion", lambda r: None if r[0][0] is False else "released a completed row")

    f = "complete_executions"
    ce = "SELECT * FROM execguard.complete_executions(%s::bigint[], %s::bigint[], %s::jsonb[])"
    s.call(f, ce, ([], [], []), "ok", "empty batch", lambda r: None if r == [] else "rows for empty batch")
    s.call(f, ce, (None, [], []), "22004", "NULL ids array")
    s.call(f, ce, ([], None, []), "22004", "NULL tokens array")
    s.call(f, ce, ([], [], None), "22004", "NULL results array")
    s.call(f, ce, ([1, None], [1, 2], ["{}", "{}"]), "22004", "NULL id element")
    s.call(f, ce, ([1, 2], [1, None], ["{}", "{}"]), "22004", "NULL token element")
    s.call(f, ce, ([1, 2], [1, 2], ["{}", None]), "22004", "NULL result element")
    s.call(f, ce, ([1, 2], [1], ["{}", "{}"]), "22023", "mismatched lengths (tokens)")
    s.call(f, ce, ([1], [1], ["{}", "{}"]), "22023", "mismatched lengths (results)")
    s.call(f, ce, ([5, 5], [1, 2], ["{}", "{}"]), "22023", "repeated id")
    s.call(f, "SELECT * FROM execguard.complete_executions('{{1,2},{3,4}}', '{{1,2},{3,4}}', '{{},{},{},{}}')", (),
           "any", "2-D arrays")
    s.call(f, "SELECT * FROM execguard.complete_executions('{{1,2},{3,4}}', '{1,2,3,4}', '{\"{}\",\"{}\",\"{}\",\"{}\"}')",
           (), "2202E", "2-D ids")
    s.call(f, "SELECT * FROM execguard.complete_executions('[5:6]={1,2}', '{1,2}', '{\"{}\",\"{}\"}')", (), "any",
           "non-1 lower bound")
    own_region = "claims-" + s.prefix.lower().strip("-")
    rows = s.call("claim_next", "SELECT * FROM execguard.claim_next('hostile-batch', 3, '60 s', ARRAY['%s'], ARRAY['m1'])"
                  % own_region,
                  (), "ok", "claim three for a batch completion")
    if rows:
        ids, tokens = [r[0] for r in rows], [r[1] for r in rows]
        s.call(f, ce, (ids + [-1], tokens + [1], ['{"ok":%d}' % i for i in range(len(ids))] + ["{}"]), "ok",
               "batch completion of live grants plus one stale entry",
               lambda r, n=len(ids): None if [x[1] for x in r] == [True] * n + [False] else f"got {r}")
    big = list(range(10 ** 9, 10 ** 9 + 100000))
    s.call(f, ce, (big, [1] * len(big), ["{}"] * len(big)), "ok", "100,000 stale entries",
           lambda r: None if len(r) == 100000 and not any(x[1] for x in r) else "accepted a stale entry")
    s.call(f, ce, (big[:10000], [1] * 9999, ["{}"] * 10000), "22023", "10,000 vs 9,999")
    s.call(f, ce, ([-(2 ** 63), 2 ** 63 - 1, 0], [0, 0, 0], ["null", "[]", '"x"']), "ok", "extreme ids")
    s.call(f, "SELECT * FROM execguard.complete_executions(ARRAY[1], ARRAY[1], ARRAY['{}'])", (), "any",
           "text[] results")
    s.call(f, "SELECT * FROM execguard.complete_executions(ARRAY[1.5], ARRAY[1], ARRAY['{}'::jsonb])", (), "42883",
           "numeric ids")

    for fn in ("cancel_job", "retry_job"):
        sql = f"SELECT execguard.{fn}(%s)"
        s.call(fn, sql, (None,), "22004", f"{fn} NULL")
        for label, v in [("empty", ""), ("blank", " \t"), ("long", "x" * 201), ("10 MB", "x" * MB10), ("control", "\x1b[31m")]:
            s.call(fn, sql, (v,), "22023", f"{fn} {label}")
        # cancel_job of an id never submitted leaves a tombstone (0.6.0);
        # retry_job of one writes nothing.
        for i, text in enumerate(SQL_LOOKING):
            if s.call(fn, sql, (text,), "ok", f"{fn} sql-looking {i}",
                      lambda r: None if r[0][0] == 0 else f"touched {r}") and fn == "cancel_job":
                s.tombstones.add(text)
        if s.call(fn, sql, (s.jid("no-such-job"),), "ok", f"{fn} unknown job",
                  lambda r: None if r[0][0] == 0 else f"{r}") and fn == "cancel_job":
            s.tombstones.add(s.jid("no-such-job"))
        s.call(fn, f"SELECT execguard.{fn}(42)", (), "42883", f"{fn} integer")
    # The tombstone's keys are refused with either setting, and its late
    # submit is an error: a cancel that overtook its submit wins.
    early = [s.jid("no-such-job"), "m1", "r1", "q1", None, "60 s", False]
    s.claim(early, "ok", "a key of a tombstone", outcome="cancelled")
    s.claim(early, "ok", "a key of a tombstone, setting off", outcome="cancelled", create_on_claim=True)
    s.submit(spec(s, "no-such-job"), "23505", "submit after a cancel of a job never submitted")
    # claim_next calls above take the oldest due m1 rows of any job, which in
    # a fresh cluster can be rows of this one: cancel must take exactly the
    # rows still pending or running, and they must be nearly all 10,000.
    with s.conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM execguard.executions WHERE job_id = %s AND status IN ('pending', 'running')",
                    (s.jid("many-q"),))
        live = cur.fetchone()[0]
    s.conn.commit()
    s.call("cancel_job", "SELECT execguard.cancel_job(%s)", (s.jid("many-q"),), "ok", "cancel a 10,000-unit job",
           lambda r, live=live: None if r[0][0] == live and live > 9900 else f"cancelled {r}, {live} live")
    s.call("retry_job", "SELECT execguard.retry_job(%s)", (s.jid("many-q"),), "ok", "retry a cancelled job",
           lambda r: None if r[0][0] == 0 else f"retried {r}")


def purge_cases(s):
    """Retention's arguments. Every age here is older than anything in the
    cluster (or refused), so no case deletes another suite's rows."""
    p = "purge_jobs"
    nothing = lambda r: None if list(r[0]) in ([0, 0], [None, None]) else f"purged {r[0]}"
    for age in ["1000 years", "178000000 years", "99999999999999999 years", "P1000Y", "forever", "infinity",
                "-infinity", "-178000000 years", "1000 years -1 microsecond"]:
        s.call(p, "SELECT * FROM execguard.purge_jobs(%s::interval, 10)", (age,), "any", f"purge older_than {age}",
               check=nothing)
    for negative in ["-1 second", "1 month -40 days", "1 day -25 hours"]:
        s.call(p, "SELECT * FROM execguard.purge_jobs(%s::interval, 10)", (negative,), "22023",
               f"purge older_than {negative} (negative)")
    for batch in ["0", "-1", "1000001", "2147483647", "-2147483648"]:
        s.call(p, f"SELECT * FROM execguard.purge_jobs('1000 years', {batch})", (), "22023",
               f"purge max_executions {batch}")
    s.call(p, "SELECT * FROM execguard.purge_jobs('1000 years', 2147483648)", (), "any", "purge max_executions 2^31")
    s.call(p, "SELECT * FROM execguard.purge_jobs('1000 years', 1000000)", (), "ok", "purge max_executions 1,000,000",
           check=nothing)
    s.call(p, "SELECT * FROM execguard.purge_jobs(NULL, 10)", (), "ok", "purge older_than NULL (strict)",
           check=nothing)
    s.call(p, "SELECT * FROM execguard.purge_jobs('1000 years', NULL)", (), "ok", "purge max_executions NULL (strict)",
           check=nothing)
    s.call(p, "SELECT * FROM execguard.purge_jobs('not an interval', 10)", (), "22007", "purge older_than garbage")
    s.call("stats_extra", "SELECT * FROM execguard.stats_extra()", (), "ok", "stats_extra",
           check=lambda r: None if len(r) == 1 and all(v >= 0 for v in r[0]) else f"stats_extra {r}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server-log", default=os.path.join(os.environ.get("EXECGUARD_CLUSTER_DIR", ""), "server.log"))
    args = parser.parse_args()
    started = time.time()
    log_offset = os.path.getsize(args.server_log) if os.path.isfile(args.server_log) else None

    s = Suite(prefix=f"hostile-{os.getpid()}-{int(started)}-")
    with s.conn.cursor() as cur:
        cur.execute("SELECT pg_postmaster_start_time(), "
                    "(SELECT count(*) FROM execguard.executions), "
                    "(SELECT coalesce(max(execution_id), 0) FROM execguard.executions), "
                    "current_setting('execguard.claims_require_submitted_job'), "
                    "(SELECT claims_unknown FROM execguard.stats)")
        postmaster_start, executions_before, max_id_before, strict_claims, unknown_before = cur.fetchone()
        cur.execute("SELECT job_id FROM execguard.jobs")
        jobs_before = {r[0] for r in cur.fetchall()}
    s.conn.commit()
    if strict_claims != "on":
        s.violations.append(f"execguard.claims_require_submitted_job is {strict_claims} in this session; "
                            "the default is on, which the claim cases expect")

    normalize_cases(s)
    submit_cases(s)
    claim_cases(s)
    purge_cases(s)

    with s.conn.cursor() as cur:
        cur.execute("SELECT pg_postmaster_start_time()")
        if cur.fetchone()[0] != postmaster_start:
            s.violations.append("the server restarted during the run (pg_postmaster_start_time changed)")
            s.crashes += 1
        # Jobs: those valid submit_job calls created, and the tombstones of
        # cancel_job calls of ids never submitted (some may be older than
        # this run: the SQL-looking ids carry no prefix).
        cur.execute("SELECT job_id, spec IS NULL AND cancelled_at IS NOT NULL FROM execguard.jobs")
        jobs_now = dict(cur.fetchall())
        new_jobs = set(jobs_now) - jobs_before
        expected_jobs = set(s.submitted) | (s.tombstones - jobs_before)
        if new_jobs != expected_jobs:
            s.violations.append(f"jobs table: {len(new_jobs)} new jobs, expected {len(expected_jobs)} "
                                f"({len(s.submitted)} submitted, {len(s.tombstones - jobs_before)} new tombstones); "
                                f"unexpected {sorted(new_jobs - expected_jobs)[:3]}, "
                                f"missing {sorted(expected_jobs - new_jobs)[:3]}")
        for job in s.tombstones - jobs_before:
            if job in jobs_now and not jobs_now[job]:
                s.violations.append(f"job {job[:60]}: cancelled before any submit, but not a tombstone (spec, no cancel)")
        # Executions: exactly the rows submit_job reported, per job, and the
        # rows the create-on-claim calls (setting off) were granted.
        cur.execute("SELECT execution_id, job_id FROM execguard.executions WHERE execution_id > %s",
                    (max_id_before,))
        new_rows = dict(cur.fetchall())
        cur.execute("SELECT count(*) FROM execguard.executions")
        executions_now = cur.fetchone()[0]
        missing = s.claim_created - set(new_rows)
        if missing:
            s.violations.append(f"executions created by claims are missing: {sorted(missing)[:5]}")
        per_job = Counter(job for eid, job in new_rows.items() if eid not in s.claim_created)
        expected_rows = sum(s.submitted.values()) + len(s.claim_created)
        if executions_now - executions_before != expected_rows:
            s.violations.append(f"executions: {executions_now - executions_before} new rows, expected {expected_rows} "
                                f"({sum(s.submitted.values())} submitted, {len(s.claim_created)} created by claims "
                                "with execguard.claims_require_submitted_job off)")
        for job, created in s.submitted.items():
            if per_job.get(job, 0) != created:
                s.violations.append(f"job {job[:60]}: {per_job.get(job, 0)} rows, submit_job reported {created}")
        for job in set(per_job) - set(s.submitted):
            s.violations.append(f"job {job[:60]}: {per_job[job]} rows that neither submit_job nor a claim "
                                "with the setting off reported")
        # Every 'unknown' was counted (at least: the counters are cluster-wide).
        cur.execute("SELECT claims_unknown FROM execguard.stats")
        unknown_counted = cur.fetchone()[0] - unknown_before
        if unknown_counted < s.unknown_claims:
            s.violations.append(f"claims_unknown grew by {unknown_counted}, {s.unknown_claims} claims returned 'unknown'")
        cur.execute("SELECT count(*) FROM execguard.regions")
        if cur.fetchone()[0] != 0:
            s.violations.append("execguard.regions kept a row from a rolled-back call")
    s.conn.commit()

    if log_offset is None:
        s.violations.append(f"server log {args.server_log} not found: cannot check for backend crashes")
    else:
        with open(args.server_log, "rb") as f:
            f.seek(log_offset)
            for line in f.read().decode("utf-8", "replace").splitlines():
                if CRASH_PATTERNS.search(line):
                    s.crashes += 1
                    s.violations.append(f"server log: {line[:300]}")

    errors = sum(s.errors.values())
    by_state = ", ".join(f"{k} {v}" for k, v in sorted(s.errors.items()))
    print(f"hostile: {s.cases} inputs, {errors} clean errors by SQLSTATE ({by_state}), {s.results} results; "
          f"{s.crashes} crashes ({time.time() - started:.0f} s)")
    print(f"hostile: claims of keys no job submitted: {s.unknown_claims} refused ('unknown'), "
          f"{len(s.claim_created)} created with execguard.claims_require_submitted_job off; "
          f"{len(s.tombstones)} tombstones of cancel_job")
    for v in s.violations:
        print("hostile: VIOLATION " + v)
    if s.cases < 200:
        print(f"hostile: VIOLATION only {s.cases} inputs (at least 200 required)")
        return 1
    return 1 if s.violations or s.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
