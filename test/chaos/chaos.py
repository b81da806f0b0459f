#!/usr/bin/python3
"""test/chaos/chaos.py: the chaos harness (issue 5, part 3). Run it through run.sh.

For --duration seconds, with --runners runner processes and the chaos fake
inference server (random latency, 429s with and without Retry-After, 500s,
200-with-error bodies, hangs, dropped connections), it submits jobs
continuously and, at random times drawn from --seed, SIGKILLs runners (and
restarts them), SIGSTOPs one past its lease (then SIGCONT), terminates runner
backends, cancels jobs and restarts PostgreSQL. Then it turns the faults off,
lets the runners drain (bounded), stops them with SIGTERM and checks:

  terminal      every execution of every non-cancelled job is completed or
                failed, and failed only with its attempts exhausted;
                cancelled jobs keep no pending/running row
  no_overwrite  keys unique (UNIQUE index, no duplicate rows); every completed
                result equals the first one seen by a 0.5 s poller during the
                run; at most one accepted completion per execution in the
                runner logs; every result comes from a call of its own execution
  stale_counted execguard.stats stale_writes_rejected (summed over server
                restarts) >= the stale outcomes the runners logged
  calls         fake-server calls <= sum(attempt); per execution, calls <=
                attempt, no (execution, fencing token) called twice, no token
                above the row's
  memory        VmRSS of every runner that lived through the run, at the end,
                <= warm-up RSS + max(50 %, 16 MiB)
  server_log    no "terminated by signal" / PANIC in the server log

Everything it starts (fake server, runners) is killed at the end, even on
failure; the children also die with the harness (PR_SET_PDEATHSIG). All
traffic goes to 127.0.0.1 and the PostgreSQL given by PG* variables.
Exit status: 0 pass, 1 an invariant failed, 2 the harness itself failed.
"""
import argparse
import collections
import ctypes
import datetime
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request

import psycopg2
import psycopg2.extras

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PYTHON = "/usr/bin/python3"
FAKE = os.path.join(REPO, "test", "chaos", "chaos_fake_server.py")
PGCLUSTER = os.path.join(REPO, "scripts", "pgcluster.sh")

LEASE_S = 3.0
RSS_BOUND_FRACTION = 0.5
RSS_BOUND_MIB = 16.0
# Moderate fault rates: about one request in four fails, so work still completes.
FAULT_RATES = {"429": 0.04, "429_retry_after": 0.04, "500": 0.05,
               "error_body": 0.04, "hang": 0.03, "close": 0.04}
LATENCY = [0.02, 0.8]
MODELS = ["qwen2.5-1.5b", "llama3.2-1b", "mistral-7b", "phi-3-mini"]
QUESTIONS = ["What is 2+2?", "Capital of France?", "Name a prime above 100.",
             "Translate 'hello' to Spanish.", "What colour is the sky?",
             "Who wrote Hamlet?", "Boiling point of water in C?", "Largest planet?",
             "Square root of 144?", "Speed of light in km/s?"]

T0 = time.monotonic()
libc = ctypes.CDLL("libc.so.6", use_errno=True)


def say(msg):
    print("chaos: [%6.1fs] %s" % (time.monotonic() - T0, msg), flush=True)


def die_with_parent():
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Interrupted(Exception):
    pass


def on_signal(signo, _frame):
    raise Interrupted("signal %d" % signo)


# --- database ------------------------------------------------------------------------

class Db:
    """Autocommit connection; query() reconnects and retries within a time bound."""

    def __init__(self, name):
        self.name = name
        self.conn = None

    def connect(self):
        self.close()
        self.conn = psycopg2.connect("", connect_timeout=3, application_name=self.name,
                                     options="-c statement_timeout=15000")
        self.conn.autocommit = True

    def query(self, sql, params=None, retry_for=20.0):
        deadline = time.monotonic() + retry_for
        while True:
            try:
                if self.conn is None or self.conn.closed:
                    self.connect()
                with self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                    cur.execute(sql, params)
                    return cur.fetchall() if cur.description else []
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                self.close()
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.3)

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = None


STAT_COLS = ("stale_writes_rejected", "claims_claimed", "claims_reclaimed", "leases_rescued_expired",
             "leases_rescued_owner_gone", "executions_completed", "executions_failed",
             "retries_scheduled", "executions_cancelled", "duplicates_prevented_claim",
             "duplicates_prevented_normalization")


def read_stats(db, retry_for=20.0):
    row = db.query("SELECT * FROM execguard.stats", retry_for=retry_for)[0]
    return {c: int(row[c]) for c in STAT_COLS}


# --- fake server, runners ----------------------------------------------------------------

def http(url, body=None, timeout=5.0):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.read().decode()


class Fake:
    def __init__(self, seed, logdir):
        self.err = open(os.path.join(logdir, "fake_server.log"), "w")
        self.proc = subprocess.Popen([PYTHON, FAKE, "--port", "0", "--seed", str(seed)],
                                     stdout=subprocess.PIPE, stderr=self.err, text=True,
                                     preexec_fn=die_with_parent)
        line = self.proc.stdout.readline().strip()
        if not line.isdigit():
            raise RuntimeError("fake server did not start (see %s)" % self.err.name)
        self.base = "http://127.0.0.1:%s" % line

    def chaos(self, **cfg):
        http(self.base + "/_chaos", cfg)

    def requests(self):
        return json.loads(http(self.base + "/_requests", timeout=60)[1])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.err.close()


class Runner:
    def __init__(self, index, generation, binary, regions, fake_base, logdir):
        self.index = index
        self.worker_id = "chaos-r%d-g%d" % (index, generation)
        self.log_path = os.path.join(logdir, "%s.log" % self.worker_id)
        self.log_file = open(self.log_path, "w")
        args = [binary, "--worker-id", self.worker_id, "--metrics-listen", "127.0.0.1:0",
                "--log-format", "json", "--concurrency", "8",
                "--lease", "%gs" % LEASE_S, "--heartbeat-interval", "1s",
                "--request-timeout", "2s", "--connect-timeout", "2s", "--poll-interval", "0.3s",
                "--retry-backoff-base", "0.3s", "--retry-backoff-max", "2s",
                "--breaker-threshold", "4", "--breaker-cooldown", "1s", "--breaker-cooldown-max", "4s",
                "--reconnect-backoff-base", "0.1s", "--reconnect-backoff-max", "1s",
                "--grace-period", "5s"]
        for r in regions:
            args += ["--region", "%s=%s/%s" % (r, fake_base, r)]
        self.proc = subprocess.Popen(args, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     preexec_fn=die_with_parent)
        self.pid = self.proc.pid
        self.stopped = False
        self.metrics_port = None
        deadline = time.monotonic() + 15
        while self.metrics_port is None:
            if self.proc.poll() is not None:
                raise RuntimeError("runner %s exited with %s:\n%s" % (self.worker_id, self.proc.returncode,
                                                                     self.read_log()[-2000:]))
            m = re.search(r'"event":"metrics_listening".*?"port":(\d+)', self.read_log())
            if m:
                self.metrics_port = int(m.group(1))
            elif time.monotonic() > deadline:
                raise RuntimeError("runner %s did not report its metrics port" % self.worker_id)
            else:
                time.sleep(0.05)

    def alive(self):
        return self.proc.poll() is None

    def read_log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def rss_kib(self):
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return None

    def stale_metric(self):
        _, text = http("http://127.0.0.1:%d/metrics" % self.metrics_port, timeout=3)
        total = 0.0
        for line in text.splitlines():
            if line.startswith("execguard_runner_executions_finished_total") and 'result="stale"' in line:
                total += float(line.split()[-1])
        return int(total)

    def kill(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.log_file.close()


def parse_runner_log(path):
    """Events of one runner log: list of (unix time, dict)."""
    events = []
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                ev = json.loads(line)
                ts = datetime.datetime.strptime(ev["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
            except (ValueError, KeyError):
                continue
            events.append((ts.replace(tzinfo=datetime.timezone.utc).timestamp(), ev))
    return events


def is_stale_event(ev):
    e = ev.get("event")
    return (e == "completion_refused"
            or (e == "execution_failed" and ev.get("outcome") == "stale")
            or (e == "execution_released" and ev.get("accepted") is False)
            or (e == "auto_stopped" and ev.get("reason") == "lease_lost"))


# --- jobs --------------------------------------------------------------------------------

def make_job(rng, job_id, regions):
    """A spec in the field's shape, with duplicate entries; returns (spec, expected unit keys)."""
    models = rng.sample(MODELS, rng.randint(2, 3))
    default_regions = rng.sample(regions, rng.randint(1, min(3, len(regions))))
    entries = list(models)
    if rng.random() < 0.6:  # a duplicate spelled differently
        entries.append("  %s " % rng.choice(models).upper())
    if rng.random() < 0.3:  # an object entry adding a region to a model
        entries.append({"id": rng.choice(models), "regions": [rng.choice(regions)]})
    rng.shuffle(entries)
    split = rng.randint(0, len(entries))
    questions = rng.sample(QUESTIONS, rng.randint(2, 4))
    qentries = list(questions)
    if rng.random() < 0.5:
        qentries.append(rng.choice(questions))
    spec = {"id": job_id, "constraints": {"regions": default_regions},
            "metadata": {"models": entries[:split]}, "questions": qentries,
            "params": {"temperature": 0, "max_tokens": 32}, "max_attempts": rng.randint(3, 5)}
    if entries[split:]:
        spec["models"] = entries[split:]
    units = set()
    for e in entries:
        mid = (e if isinstance(e, str) else e["id"]).strip().lower()
        regs = default_regions if isinstance(e, str) or not e.get("regions") else e["regions"]
        for r in regs:
            for q in set(questions):
                units.add((mid, r, q))
    return spec, units


# --- the harness -------------------------------------------------------------------------

class Chaos:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.run_id = "%x%02x" % (int(time.time()) & 0xfffff, args.seed % 256)
        self.regions = ["c%s-%s" % (self.run_id, r) for r in ("us-east", "eu-west", "ap-south")]
        self.cluster_dir = os.environ.get("EXECGUARD_CLUSTER_DIR") or None
        self.own_cluster = os.environ.get("EXECGUARD_CHAOS_OWN_CLUSTER") == "1"
        self.binary = os.environ.get("EXECGUARD_RUNNER_BIN",
                                     os.path.join(REPO, "build", "runner", "execguard-runner"))
        self.logdir = args.logdir or os.path.join(REPO, ".run", "chaos-logs-%s" % self.run_id)
        os.makedirs(self.logdir, exist_ok=True)
        self.db = Db("execguard-chaos")
        self.fake = None
        self.runners = {}          # index -> Runner (current incarnation)
        self.all_runners = []      # every incarnation
        self.generation = collections.Counter()
        self.jobs = {}             # job_id -> (spec, units)
        self.submitted = []        # job ids whose submit returned
        self.cancelled = set()
        self.faults = collections.Counter()
        self.notes = []
        self.failures = []
        self.figures = []
        self.restart_windows = []  # (unix start, unix end) around each PostgreSQL restart
        self.stats_sum = collections.Counter()
        self.stats_base = None
        self.first_results = {}    # execution_id -> (md5, provider_request_id)
        self.poll_changed = []
        self.poll_regressed = []
        self.polls = 0
        self.poll_errors = 0
        self.poll_stop = threading.Event()
        self.rss_warm = {}         # pid -> (worker_id, kib)
        self.server_log_offset = 0

    # -- helpers
    def server_log_path(self):
        return os.path.join(self.cluster_dir, "server.log") if self.cluster_dir else None

    def fail(self, what):
        self.failures.append(what)

    def figure(self, name, text, ok=True):
        self.figures.append((name, text, ok))
        if not ok:
            self.fail(name)

    def start_runner(self, index):
        self.generation[index] += 1
        r = Runner(index, self.generation[index], self.binary, self.regions, self.fake.base, self.logdir)
        self.runners[index] = r
        self.all_runners.append(r)
        return r

    # -- result poller (thread)
    def poll_results(self):
        db = Db("execguard-chaos-poller")
        while not self.poll_stop.is_set():
            try:
                rows = db.query("SELECT execution_id, status, md5(result::text) AS h, "
                                "       result->>'provider_request_id' AS rid "
                                "  FROM execguard.executions WHERE region = ANY(%s)",
                                (self.regions,), retry_for=0)
                self.polls += 1
                for r in rows:
                    eid = r["execution_id"]
                    first = self.first_results.get(eid)
                    if r["status"] == "completed":
                        if first is None:
                            self.first_results[eid] = (r["h"], r["rid"])
                        elif first[0] != r["h"]:
                            self.poll_changed.append((eid, first[1], r["rid"]))
                    elif first is not None:
                        self.poll_regressed.append((eid, r["status"]))
            except Exception:
                self.poll_errors += 1
            self.poll_stop.wait(0.5)
        db.close()

    # -- stats over restarts
    def close_stats_segment(self, retry_for=5.0):
        try:
            now = read_stats(self.db, retry_for=retry_for)
        except Exception as e:
            self.notes.append("stats could not be read before a restart (%s): that segment is not counted" % e)
            return False
        for k, v in now.items():
            self.stats_sum[k] += v - self.stats_base[k]
        return True

    # -- chaos actions
    def act_kill(self):
        choices = [i for i, r in self.runners.items() if i != 0 and r.alive()]
        if not choices:
            return None
        i = self.rng.choice(choices)
        r = self.runners[i]
        r.proc.send_signal(signal.SIGKILL)
        r.proc.wait(timeout=10)
        r.stopped = False
        self.faults["runner SIGKILL"] += 1
        say("SIGKILL %s (pid %d)" % (r.worker_id, r.pid))
        return i

    def act_stop(self):
        choices = [i for i, r in self.runners.items() if r.alive() and not r.stopped]
        if not choices:
            return None
        r = self.runners[self.rng.choice(choices)]
        r.proc.send_signal(signal.SIGSTOP)
        r.stopped = True
        self.faults["runner SIGSTOP past lease"] += 1
        pause = LEASE_S + self.rng.uniform(1.5, 3.0)
        say("SIGSTOP %s for %.1fs (lease %gs)" % (r.worker_id, pause, LEASE_S))
        return r, pause

    def act_terminate_backend(self):
        if self.own_cluster:
            rows = self.db.query("SELECT pid, application_name FROM pg_stat_activity "
                                 "WHERE application_name LIKE 'execguard-runner%%'", retry_for=3)
        else:  # a shared cluster: only backends that hold claims of this run's rows
            rows = self.db.query("SELECT DISTINCT owner_pid AS pid, 'execguard-runner' AS application_name "
                                 "  FROM execguard.executions WHERE region = ANY(%s) AND status = 'running' "
                                 "   AND owner_pid IS NOT NULL", (self.regions,), retry_for=3)
        if not rows:
            return
        work = [r for r in rows if r["application_name"] == "execguard-runner"]
        victim = self.rng.choice(work if work and self.rng.random() < 0.8 else rows)
        ok = self.db.query("SELECT pg_terminate_backend(%s) AS ok", (victim["pid"],), retry_for=3)[0]["ok"]
        if ok:
            self.faults["pg_terminate_backend (%s)" % victim["application_name"]] += 1
            say("pg_terminate_backend(%d) %s" % (victim["pid"], victim["application_name"]))

    def act_cancel(self):
        recent = [j for j in self.submitted[-2:] if j not in self.cancelled]  # likely still pending
        if not recent:
            return
        job = self.rng.choice(recent)
        n = self.db.query("SELECT execguard.cancel_job(%s) AS n", (job,), retry_for=5)[0]["n"]
        self.cancelled.add(job)
        self.faults["cancel_job"] += 1
        say("cancel_job(%s): %d executions cancelled" % (job, n))

    def act_pg_restart(self):
        t0 = time.time()
        self.close_stats_segment()
        say("restarting PostgreSQL")
        res = subprocess.run([PGCLUSTER, "restart", self.cluster_dir], capture_output=True, text=True,
                             timeout=120)
        t1 = time.time()
        self.restart_windows.append((t0, t1))
        self.stats_base = collections.Counter()  # shared-memory counters start from zero
        if res.returncode != 0:
            raise RuntimeError("pgcluster.sh restart failed: %s" % res.stderr)
        self.faults["PostgreSQL restart"] += 1
        say("PostgreSQL restarted in %.1fs" % (t1 - t0))

    def submit(self, job_id):
        spec, units = self.jobs[job_id]
        row = self.db.query("SELECT * FROM execguard.submit_job(%s::jsonb)", (json.dumps(spec),),
                            retry_for=15)[0]
        return row, units

    def submit_tick(self, n):
        if self.submitted and self.rng.random() < 0.15:  # resubmission: must create nothing
            candidates = [j for j in self.submitted if j not in self.cancelled]
            if candidates:
                job = self.rng.choice(candidates)
                row, _ = self.submit(job)
                self.faults["job resubmitted"] += 1
                if row["executions_created"] != 0:
                    self.fail("resubmit")
                    say("VIOLATION: resubmitting %s created %d executions" % (job, row["executions_created"]))
                return
        job = "chaos-%s-%04d" % (self.run_id, n)
        self.jobs[job] = make_job(self.rng, job, self.regions)
        row, units = self.submit(job)
        self.submitted.append(job)
        if row["executions_created"] + row["executions_existing"] != len(units):
            self.fail("submit")
            say("VIOLATION: %s planned %d units, submit_job reported %d+%d"
                % (job, len(units), row["executions_created"], row["executions_existing"]))

    def schedule(self):
        d = self.args.duration
        lo, hi = min(8.0, d * 0.1), d * 0.85
        counts = {"term_backend": max(1, round(d / 20)), "cancel": max(1, round(d / 40)),
                  "stop": max(1, round(d / 50))}
        if len(self.runners) > 1:
            counts["kill"] = max(1, round(d / 25))
        else:
            self.notes.append("one runner: no SIGKILL (it is the memory witness)")
        events = []
        for kind, n in counts.items():
            events += [(self.rng.uniform(lo, hi), kind) for _ in range(n)]
        if self.cluster_dir:
            n = min(max(1, int(d // 60)), 2 if d <= 150 else int(d // 60))
            for k in range(n):
                centre = d * (k + 1) / (n + 1)
                events.append((centre + self.rng.uniform(-0.1, 0.1) * d / (n + 1), "pg_restart"))
        else:
            self.notes.append("EXECGUARD_CLUSTER_DIR not set: no PostgreSQL restart, no server log check")
        return sorted(events)

    # -- main phases
    def run(self):
        a = self.args
        say("run %s: duration %ds, %d runners, seed %d, regions %s, logs in %s"
            % (self.run_id, a.duration, a.runners, a.seed, ",".join(self.regions), self.logdir))
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError("runner binary %s missing (build it: cmake -S . -B build && "
                               "cmake --build build -j2)" % self.binary)
        if self.db.query("SELECT count(*) AS n FROM execguard.regions")[0]["n"]:
            self.db.query("INSERT INTO execguard.regions(name, description) SELECT unnest(%s::text[]), "
                          "'chaos run' ON CONFLICT DO NOTHING", (self.regions,))
            self.notes.append("execguard.regions is in use: this run's regions were added to it")
        if self.server_log_path() and os.path.exists(self.server_log_path()):
            self.server_log_offset = os.path.getsize(self.server_log_path())
        self.stats_base = read_stats(self.db)
        self.fake = Fake(a.seed, self.logdir)
        self.fake.chaos(rates=FAULT_RATES, latency=LATENCY, retry_after=1)
        for i in range(a.runners):
            self.start_runner(i)
        poller = threading.Thread(target=self.poll_results, daemon=True)
        poller.start()

        events = self.schedule()
        start = time.monotonic()
        end = start + a.duration
        submit_until = start + a.duration * 0.75
        warm_at = start + min(20.0, a.duration * 0.2)
        next_submit, n = start, 0
        pending_restart = []   # (time, index)
        pending_cont = []      # (time, runner)
        warm_done = False
        sabotaged = False
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if now >= next_submit and now < submit_until:
                n += 1
                try:
                    self.submit_tick(n)
                except psycopg2.Error as e:
                    self.notes.append("a submission failed after retries: %s" % str(e).strip()[:120])
                next_submit = now + 0.7
            while events and start + events[0][0] <= now:
                _, kind = events.pop(0)
                try:
                    if kind == "kill":
                        i = self.act_kill()
                        if i is not None:
                            pending_restart.append((now + self.rng.uniform(0.5, 2.0), i))
                    elif kind == "stop":
                        got = self.act_stop()
                        if got:
                            pending_cont.append((now + got[1], got[0]))
                    elif kind == "term_backend":
                        self.act_terminate_backend()
                    elif kind == "cancel":
                        self.act_cancel()
                    elif kind == "pg_restart":
                        self.act_pg_restart()
                except psycopg2.Error as e:
                    self.notes.append("chaos action %s skipped: %s" % (kind, str(e).strip()[:120]))
            for item in [p for p in pending_cont if p[0] <= now]:
                pending_cont.remove(item)
                self.cont(item[1])
            for item in [p for p in pending_restart if p[0] <= now]:
                pending_restart.remove(item)
                r = self.start_runner(item[1])
                say("restarted runner %d as %s (pid %d)" % (item[1], r.worker_id, r.pid))
            if self.args.sabotage and not sabotaged and now >= start + a.duration / 2:
                sabotaged = True
                got = self.db.query(
                    "UPDATE execguard.executions SET result = result || '{\"sabotage\": true}' "
                    " WHERE execution_id = (SELECT min(execution_id) FROM execguard.executions "
                    "  WHERE region = ANY(%s) AND status = 'completed') RETURNING execution_id",
                    (self.regions,))
                say("sabotage: overwrote the result of execution %s" % [g["execution_id"] for g in got])
            if not warm_done and now >= warm_at:
                warm_done = True
                for r in self.runners.values():
                    kib = r.rss_kib()
                    if kib:
                        self.rss_warm[r.pid] = (r.worker_id, kib)
                say("warm-up RSS: %s" % ", ".join("%s %.1f MiB" % (w, k / 1024) for w, k in self.rss_warm.values()))
            for i, r in list(self.runners.items()):
                if not r.alive() and not any(p[1] == i for p in pending_restart):
                    self.fail("runner exited")
                    say("VIOLATION: runner %s exited by itself with %s" % (r.worker_id, r.proc.returncode))
                    self.start_runner(i)
            time.sleep(0.05)

        # -- drain
        say("chaos phase over; faults off, draining")
        self.fake.chaos(rates={}, latency=[0.0, 0.05])
        for _, r in pending_cont:
            self.cont(r)
        for _, i in pending_restart:
            self.start_runner(i)
        drain_deadline = time.monotonic() + self.args.drain
        left = None
        while time.monotonic() < drain_deadline:
            left = self.db.query(
                "SELECT count(*) AS n FROM execguard.executions e JOIN execguard.jobs j USING (job_id) "
                " WHERE e.region = ANY(%s) AND e.status IN ('pending', 'running')", (self.regions,))[0]["n"]
            if left == 0:
                break
            time.sleep(0.5)
        say("drained in %.1fs, %s executions still pending/running"
            % (self.args.drain - (drain_deadline - time.monotonic()), left))
        time.sleep(1.0)  # let the poller see the last completions

        # -- stop runners
        rss_end, stale_metric = {}, {}
        for r in self.runners.values():
            if r.alive():
                rss_end[r.pid] = r.rss_kib()
                try:
                    stale_metric[r.worker_id] = r.stale_metric()
                except (OSError, urllib.error.URLError) as e:
                    self.notes.append("metrics of %s unreadable: %s" % (r.worker_id, e))
        for r in self.runners.values():
            if r.alive():
                r.proc.send_signal(signal.SIGTERM)
        exits = {}
        for r in self.runners.values():
            try:
                exits[r.worker_id] = r.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                exits[r.worker_id] = "timeout"
                r.kill()
        self.poll_stop.set()
        poller.join(timeout=10)
        self.close_stats_segment(retry_for=20)
        self.check(rss_end, stale_metric, exits)

    def cont(self, r):
        if r.alive():
            r.proc.send_signal(signal.SIGCONT)
            say("SIGCONT %s" % r.worker_id)
        r.stopped = False

    # -- invariants
    def check(self, rss_end, stale_metric, exits):
        db = self.db
        say("checking invariants")
        print("chaos: faults injected:")
        log = self.fake.requests()
        with open(os.path.join(self.logdir, "fake_requests.json"), "w") as f:
            json.dump(log, f)
        calls = [q for q in log["requests"] if q["region"] in self.regions]
        by_fault = collections.Counter(q.get("fault", "none") for q in calls)
        hang_aborted = sum(1 for q in calls if q.get("fault") == "hang" and q["outcome"] == "client_aborted")
        names = {"429": "HTTP 429 without Retry-After", "429_retry_after": "HTTP 429 with Retry-After: 1",
                 "500": "HTTP 500", "error_body": "HTTP 200 with error body (billing)",
                 "hang": "hang (runner timed out: %d)" % hang_aborted, "close": "dropped connection"}
        for k in ("429", "429_retry_after", "500", "error_body", "hang", "close"):
            print("chaos:   %-45s %d" % (names[k], by_fault.get(k, 0)))
        print("chaos:   %-45s %d (latency %.2f-%.2fs)" % ("model calls answered normally", by_fault.get("none", 0),
                                                         LATENCY[0], LATENCY[1]))
        for k in sorted(self.faults):
            print("chaos:   %-45s %d" % (k, self.faults[k]))

        rows = db.query("SELECT e.execution_id, e.job_id, e.model_id, e.region, e.question_id, e.status, "
                        "       e.attempt, e.max_attempts, e.fencing_token, e.error, e.result, "
                        "       j.cancelled_at IS NOT NULL AS job_cancelled "
                        "  FROM execguard.executions e LEFT JOIN execguard.jobs j USING (job_id) "
                        " WHERE e.region = ANY(%s)", (self.regions,), retry_for=30)
        by_id = {r["execution_id"]: r for r in rows}

        # 1. terminal
        db_jobs = {r["job_id"] for r in db.query("SELECT job_id FROM execguard.jobs WHERE job_id LIKE %s",
                                                 ("chaos-%s-%%" % self.run_id,))}
        live = [r for r in rows if not r["job_cancelled"]]
        cancelled_rows = [r for r in rows if r["job_cancelled"]]
        st = collections.Counter(r["status"] for r in live)
        not_terminal = [r for r in live if r["status"] not in ("completed", "failed")]
        failed = [r for r in live if r["status"] == "failed"]
        early_failed = [r for r in failed if r["attempt"] < r["max_attempts"]]
        fail_class = collections.Counter((r["error"] or "lease lost on last attempt").split(":")[0] for r in failed)
        cancelled_open = [r for r in cancelled_rows if r["status"] in ("pending", "running")]
        count_bad = []
        per_job = collections.Counter(r["job_id"] for r in rows)
        for job in db_jobs:
            if job in self.jobs and per_job[job] != len(self.jobs[job][1]):
                count_bad.append((job, per_job[job], len(self.jobs[job][1])))
        unknown_jobs = db_jobs - set(self.jobs)
        self.figure("terminal",
                    "%d executions of %d jobs (%d cancelled jobs excluded): %d completed, %d failed "
                    "(attempts exhausted %d; by last error: %s), %d not terminal, %d failed with attempts left; "
                    "%d jobs with a wrong row count"
                    % (len(live), len(db_jobs) - len({r["job_id"] for r in cancelled_rows}), len(self.cancelled),
                       st["completed"], st["failed"], len(failed) - len(early_failed),
                       ", ".join("%s %d" % kv for kv in sorted(fail_class.items())) or "none",
                       len(not_terminal), len(early_failed), len(count_bad)),
                    not not_terminal and not early_failed and not count_bad and not unknown_jobs)
        cst = collections.Counter(r["status"] for r in cancelled_rows)
        self.figure("cancelled",
                    "%d cancelled jobs, %d rows (%s), %d pending/running"
                    % (len({r["job_id"] for r in cancelled_rows}), len(cancelled_rows),
                       ", ".join("%s %d" % kv for kv in sorted(cst.items())), len(cancelled_open)),
                    not cancelled_open)
        for r in not_terminal[:10] + early_failed[:10] + cancelled_open[:10]:
            print("chaos:   offending row: %s" % {k: r[k] for k in ("execution_id", "job_id", "model_id", "region",
                                                                     "question_id", "status", "attempt",
                                                                     "max_attempts", "error")})
        for c in count_bad[:10]:
            print("chaos:   job %s has %d rows, expected %d" % c)

        # 2. no_overwrite / no double completion
        dup_keys = db.query("SELECT count(*) AS n FROM (SELECT 1 FROM execguard.executions WHERE region = ANY(%s) "
                            " GROUP BY job_id, model_id, region, question_id HAVING count(*) > 1) d",
                            (self.regions,))[0]["n"]
        unique_idx = db.query("SELECT count(*) AS n FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                              " WHERE i.indrelid = 'execguard.executions'::regclass AND i.indisunique "
                              "   AND c.relname = 'executions_key'")[0]["n"]
        completed = [r for r in rows if r["status"] == "completed"]
        hashes = {r["execution_id"]: r["h"] for r in db.query(
            "SELECT execution_id, md5(result::text) AS h FROM execguard.executions "
            " WHERE region = ANY(%s) AND status = 'completed'", (self.regions,))}
        changed = [eid for eid, h in hashes.items() if eid in self.first_results and self.first_results[eid][0] != h]
        unseen = [eid for eid in hashes if eid not in self.first_results]
        accepted = collections.Counter()
        stale_runner, stale_uncertain, runner_events = 0, 0, {}
        for r in self.all_runners:
            evs = parse_runner_log(r.log_path)
            runner_events[r.worker_id] = evs
            for ts, ev in evs:
                if ev.get("event") == "execution_completed":
                    accepted[ev.get("execution_id")] += 1
                if is_stale_event(ev):
                    stale_runner += 1
                    if any(a - 0.5 <= ts <= b + 0.5 for a, b in self.restart_windows):
                        stale_uncertain += 1
        twice = [eid for eid, k in accepted.items() if k > 1]
        seq_of = {q["seq"]: q for q in calls}
        wrong_source = []
        for r in completed:
            res = r["result"] or {}
            m = re.search(r"chaos answer #(\d+) ", str(res.get("text", "")))
            q = seq_of.get(int(m.group(1))) if m else None
            key = (q or {}).get("idempotency_key") or ""
            if (not q or not key.startswith("execguard-%d-" % r["execution_id"])
                    or res.get("provider_request_id") != "chaos-%s" % m.group(1)):
                wrong_source.append(r["execution_id"])
        self.figure("no_overwrite",
                    "%d completed results, %d changed since first seen (%d polls, %d executions seen changing while "
                    "polling, %d completed rows seen leaving completed), %d first seen only at the end; "
                    "%d duplicate keys (unique index executions_key %s); %d executions accepted twice "
                    "(runner logs); %d results not from a call of their own execution"
                    % (len(completed), len(changed), self.polls, len({c[0] for c in self.poll_changed}),
                       len({c[0] for c in self.poll_regressed}), len(unseen), dup_keys,
                       "present" if unique_idx else "MISSING", len(twice), len(wrong_source)),
                    not changed and not self.poll_changed and not self.poll_regressed and dup_keys == 0
                    and unique_idx == 1 and not twice and not wrong_source)
        for eid in sorted(set(changed) | {c[0] for c in self.poll_changed})[:10]:
            print("chaos:   overwritten: execution %s first %s now %s"
                  % (eid, self.first_results.get(eid, ("", "?"))[1], (by_id.get(eid) or {}).get("result")))
        for eid in twice[:10]:
            print("chaos:   accepted twice: execution %s" % eid)
        for eid in wrong_source[:10]:
            print("chaos:   result of execution %s: %s" % (eid, by_id[eid]["result"]))

        # 3. stale writes counted
        db_stale = self.stats_sum["stale_writes_rejected"]
        metric_mismatch = []
        for r in self.all_runners:
            if r.worker_id in stale_metric:
                from_log = sum(1 for _, ev in runner_events[r.worker_id] if is_stale_event(ev))
                if from_log != stale_metric[r.worker_id]:
                    metric_mismatch.append((r.worker_id, stale_metric[r.worker_id], from_log))
        self.figure("stale_counted",
                    "execguard.stats stale_writes_rejected %d (summed over %d server lifetimes) >= %d stale "
                    "outcomes logged by %d runner processes (%d of them within 0.5 s of a restart, allowed "
                    "to be missing); /metrics of the %d runners alive at the end agree with their logs%s"
                    % (db_stale, len(self.restart_windows) + 1, stale_runner, len(self.all_runners),
                       stale_uncertain, len(stale_metric),
                       "" if not metric_mismatch else ": NO %s" % metric_mismatch),
                    db_stale >= stale_runner - stale_uncertain and not metric_mismatch)

        # 4. calls <= attempts
        total_attempts = sum(r["attempt"] for r in rows)
        per_exec = collections.Counter()
        tokens = collections.Counter()
        bad_keys, token_above = [], []
        for q in calls:
            m = re.fullmatch(r"execguard-(\d+)-(\d+)", q.get("idempotency_key") or "")
            if not m:
                bad_keys.append(q["seq"])
                continue
            eid, tok = int(m.group(1)), int(m.group(2))
            per_exec[eid] += 1
            tokens[(eid, tok)] += 1
            if eid not in by_id or tok > by_id[eid]["fencing_token"]:
                token_above.append((eid, tok))
        over = [(eid, k, by_id[eid]["attempt"]) for eid, k in per_exec.items()
                if eid in by_id and k > by_id[eid]["attempt"]]
        same_token = [k for k, v in tokens.items() if v > 1]
        self.figure("calls",
                    "%d model calls (%d distinct grants called, %d repeats of a grant already called) <= "
                    "%d attempts granted (%d executions); %d executions with more calls "
                    "than attempts; %d (execution, token) pairs called twice; %d calls without a valid "
                    "Idempotency-Key; %d calls with an unknown execution or a token above the row's"
                    % (len(calls), len(tokens), sum(v - 1 for v in tokens.values()), total_attempts, len(rows),
                       len(over), len(same_token), len(bad_keys),
                       len(token_above)),
                    len(calls) <= total_attempts and not over and not same_token and not bad_keys
                    and not token_above)
        calls_of = collections.defaultdict(list)
        for q in calls:
            calls_of[q.get("idempotency_key")].append(q)
        for o in over[:10]:
            print("chaos:   execution %s: %d calls, attempt %d" % o)
        for eid, tok in same_token[:10]:
            print("chaos:   Idempotency-Key execguard-%d-%d sent %d times: %s"
                  % (eid, tok, tokens[(eid, tok)],
                     "; ".join("seq %d at %.3f by %s fault %s outcome %s" % (
                         q["seq"], q["received_at"] % 1000, q.get("worker"), q.get("fault"), q.get("outcome"))
                               for q in calls_of["execguard-%d-%d" % (eid, tok)])))
        if same_token:
            faults_before = collections.Counter(
                calls_of["execguard-%d-%d" % k][0].get("fault") for k in same_token)
            print("chaos:   fault of the first of each repeated request: %s"
                  % ", ".join("%s %d" % kv for kv in sorted(faults_before.items())))

        # 5. memory
        lines, bad = [], []
        for pid, (wid, warm) in self.rss_warm.items():
            end = rss_end.get(pid)
            if end is None:
                continue
            bound = warm + max(warm * RSS_BOUND_FRACTION, RSS_BOUND_MIB * 1024)
            lines.append("%s %.1f -> %.1f MiB" % (wid, warm / 1024, end / 1024))
            if end > bound:
                bad.append(wid)
        self.figure("memory",
                    "%d runners lived through the run: %s (bound: warm-up + max(%d%%, %g MiB))"
                    % (len(lines), "; ".join(lines) or "none", RSS_BOUND_FRACTION * 100, RSS_BOUND_MIB),
                    bool(lines) and not bad)

        # 6. server log
        if self.server_log_path() and os.path.exists(self.server_log_path()):
            with open(self.server_log_path(), errors="replace") as f:
                f.seek(self.server_log_offset)
                text = f.read()
            crashes = [l for l in text.splitlines()
                       if re.search(r"terminated by signal|PANIC|was terminated by|server process .* exited with exit code [^0]",
                                    l)]
            self.figure("server_log", "%d crash lines in %d new lines of %s"
                        % (len(crashes), text.count("\n"), self.server_log_path()), not crashes)
            for l in crashes[:10]:
                print("chaos:   %s" % l)
        else:
            self.figure("server_log", "not checked (EXECGUARD_CLUSTER_DIR not set)", True)

        self.figure("clean_shutdown", "runner exit codes on SIGTERM: %s"
                    % ", ".join("%s=%s" % kv for kv in sorted(exits.items())),
                    all(v == 0 for v in exits.values()))
        s = self.stats_sum
        print("chaos: database counters over the run: claims %d, reclaims %d, rescued (expired %d, owner gone %d), "
              "retries %d, completed %d, failed %d, cancelled %d, duplicates prevented at claim %d, "
              "normalisation duplicates removed %d"
              % (s["claims_claimed"], s["claims_reclaimed"], s["leases_rescued_expired"],
                 s["leases_rescued_owner_gone"], s["retries_scheduled"], s["executions_completed"],
                 s["executions_failed"], s["executions_cancelled"], s["duplicates_prevented_claim"],
                 s["duplicates_prevented_normalization"]))

    def cleanup(self):
        self.poll_stop.set()
        for r in self.all_runners:
            try:
                if r.alive():
                    r.proc.send_signal(signal.SIGCONT)
                r.kill()
            except Exception:
                pass
        if self.fake:
            self.fake.stop()
        self.db.close()


def main():
    p = argparse.ArgumentParser(description="execguard chaos harness")
    p.add_argument("--duration", type=int, default=120, help="seconds of chaos (default 120)")
    p.add_argument("--runners", type=int, default=3, help="runner processes (default 3)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    p.add_argument("--drain", type=int, default=90, help="bound of the drain phase in seconds (default 90)")
    p.add_argument("--logdir", default=None, help="where runner and fake server logs go")
    p.add_argument("--sabotage", action="store_true",
                   help="self-test of the harness: overwrite one completed result with a direct UPDATE "
                        "half-way through; the run must then FAIL on no_overwrite")
    args = p.parse_args()
    if args.seed is None:
        args.seed = int(time.time()) % 100000
    if args.duration < 10 or args.runners < 1:
        p.error("--duration must be >= 10 and --runners >= 1")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    chaos = Chaos(args)
    try:
        chaos.run()
    except Exception as e:  # including Interrupted
        traceback.print_exc()
        print("chaos: ERROR (harness: %s); logs in %s" % (e, chaos.logdir), flush=True)
        chaos.cleanup()
        return 2
    finally:
        chaos.cleanup()
    for name, text, ok in chaos.figures:
        print("chaos: invariant %s: %s%s" % (name, text, "" if ok else "  <-- VIOLATED"))
    for note in chaos.notes:
        print("chaos: note: %s" % note)
    print("chaos: reproduce with: test/chaos/run.sh --duration %d --runners %d --seed %d; logs in %s"
          % (args.duration, args.runners, args.seed, chaos.logdir))
    if chaos.failures:
        print("chaos: FAIL (%s)" % ", ".join(sorted(set(chaos.failures))), flush=True)
        return 1
    print("chaos: PASS", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
