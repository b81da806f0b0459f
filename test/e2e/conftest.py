"""test/e2e/conftest.py: fixtures for the runner's end-to-end tests.

A real PostgreSQL with the execguard extension (PG* variables, or a
throwaway cluster started with scripts/pgcluster.sh when PGPORT is unset),
the fake inference server (test/fake_inference/fake_server.py, one per
test) and runner processes (EXECGUARD_RUNNER_BIN, default
build/runner/execguard-runner).

Isolation between tests: every test uses its own region names, so a runner
only ever claims the executions of its own test, whatever earlier tests
left behind. Every wait is a bounded loop with a deadline; tests assert
counts (fake server request log, database rows and counters), never timings.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import psycopg2
import psycopg2.extras
import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FAKE_SERVER = os.path.join(REPO, "test", "fake_inference", "fake_server.py")
PYTHON = "/usr/bin/python3"
DEFAULT_WAIT = 30.0


def wait_until(predicate, timeout=DEFAULT_WAIT, interval=0.05, what="condition"):
    """Polls predicate() until it returns a truthy value; fails at the deadline."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail("timed out after %.0fs waiting for %s (last value: %r)" % (timeout, what, last))


def http_get(url, timeout=5.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def parse_metrics(text):
    """Prometheus text -> {'name{a="x",b="y"}': value} with labels sorted."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)', line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        if labels:
            pairs = sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
            labels = "{" + ",".join('%s="%s"' % p for p in pairs) + "}"
        samples[name + labels] = float(value)
    return samples


# --- PostgreSQL ---------------------------------------------------------------

@pytest.fixture(scope="session")
def cluster():
    """PG* variables of a server with the extension; starts one if none is given."""
    if os.environ.get("PGPORT"):
        yield os.environ.get("EXECGUARD_CLUSTER_DIR")
        return
    directory = tempfile.mkdtemp(prefix="execguard-e2e-", dir="/tmp")
    os.chmod(directory, 0o755)
    script = os.path.join(REPO, "scripts", "pgcluster.sh")
    subprocess.run([script, "start", directory], check=True)
    with open(os.path.join(directory, "env")) as f:
        for line in f:
            m = re.match(r"export (\w+)='?([^']*)'?$", line.strip())
            if m:
                os.environ[m.group(1)] = m.group(2)
    os.environ["EXECGUARD_CLUSTER_DIR"] = directory
    yield directory
    subprocess.run([script, "destroy", directory], check=False)


class Db:
    """An autocommit connection that reconnects once when the server restarted."""

    def __init__(self):
        self.conn = None

    def _connect(self):
        self.conn = psycopg2.connect("")
        self.conn.autocommit = True

    def query(self, sql, params=None):
        for attempt in (1, 2, 3):
            try:
                if self.conn is None or self.conn.closed:
                    self._connect()
                with self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                    cur.execute(sql, params)
                    return cur.fetchall() if cur.description else []
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                self.conn = None
                if attempt == 3:
                    raise
                time.sleep(0.5)

    def submit_job(self, spec):
        return self.query("SELECT * FROM execguard.submit_job(%s::jsonb)", (json.dumps(spec),))[0]

    def executions(self, job_id):
        return self.query(
            "SELECT execution_id, model_id, region, question_id, status, attempt, worker, "
            "       result, error, payload->>'prompt' AS prompt "
            "  FROM execguard.executions WHERE job_id = %s ORDER BY execution_id", (job_id,))

    def status_counts(self, job_id):
        rows = self.query("SELECT status, count(*) AS n FROM execguard.executions "
                          "WHERE job_id = %s GROUP BY status", (job_id,))
        return {r["status"]: r["n"] for r in rows}

    def stats(self):
        return self.query("SELECT * FROM execguard.stats")[0]

    def close(self):
        if self.conn is not None and not self.conn.closed:
            self.conn.close()


@pytest.fixture
def db(cluster):
    d = Db()
    yield d
    d.close()


@pytest.fixture
def job_id(request):
    return "%s-%s" % (request.node.name[:40], uuid.uuid4().hex[:8])


@pytest.fixture
def region_prefix():
    """Region names unique to this test (see the module docstring)."""
    return "t%s" % uuid.uuid4().hex[:6]


def spec(job_id, region, questions, models=("m1",), **extra):
    """A job spec: every model in one region, `questions` distinct questions."""
    s = {"id": job_id, "models": list(models), "constraints": {"regions": [region]},
         "questions": ["question %d of %s" % (i, job_id) for i in range(questions)]}
    s.update(extra)
    return s


def cancel_in_flight_and_check_it_stopped(db, fake, runner, job_id):
    """Cancels job_id, whose one execution hangs in the fake server, and
    checks that the runner aborted the call (the server sees the client go
    away), counted it as cancelled, and stored nothing."""
    assert db.query("SELECT execguard.cancel_job(%s) AS n", (job_id,))[0]["n"] == 1
    wait_until(lambda: fake.requests()[0]["outcome"] == "client_aborted", what="the call to be aborted")
    wait_until(lambda: runner.metric('execguard_runner_auto_stopped_total{reason="cancelled"}') == 1,
               what="auto-stop counted")
    row = db.executions(job_id)[0]
    assert row["status"] == "cancelled" and row["result"] is None
    assert fake.count() == 1
    assert runner.metric('execguard_runner_executions_finished_total{result="completed"}') == 0


# --- PgBouncer ------------------------------------------------------------------

PGBOUNCER = "/usr/sbin/pgbouncer"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgBouncer:
    """A real PgBouncer in transaction mode in front of the test cluster.

    pool_size server connections serve every client, so consecutive
    transactions of one client run in whatever backend is free, and the
    pooler closes server connections on its own schedule (RECONNECT here).
    """

    def __init__(self, pool_size=2):
        self.directory = tempfile.mkdtemp(prefix="execguard-pgbouncer-", dir="/tmp")
        os.chmod(self.directory, 0o755)
        self.port = free_port()
        self.pool_size = pool_size
        # A Unix-socket PGHOST is a directory; anything else a host name.
        host = os.environ.get("PGHOST") or "localhost"
        user = os.environ.get("PGUSER") or "postgres"
        ini = os.path.join(self.directory, "pgbouncer.ini")
        self.log_path = os.path.join(self.directory, "pgbouncer.log")
        with open(ini, "w") as f:
            f.write("[databases]\n"
                    "* = host=%s port=%s user=%s\n"
                    "[pgbouncer]\n"
                    "listen_addr = 127.0.0.1\n"
                    "listen_port = %d\n"
                    "unix_socket_dir =\n"
                    "auth_type = any\n"
                    "admin_users = %s\n"
                    "pool_mode = transaction\n"
                    "default_pool_size = %d\n"
                    "max_client_conn = 200\n"
                    "logfile = %s\n"
                    % (host, os.environ.get("PGPORT", "5432"), user, self.port, user, pool_size,
                       self.log_path))
        command = [PGBOUNCER, ini]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            subprocess.run(["chown", "-R", "postgres", self.directory], check=True)
            command = ["runuser", "-u", "postgres", "--"] + command
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_until(self._accepts, timeout=15, what="pgbouncer to accept connections")

    def _accepts(self):
        if self.proc.poll() is not None:
            pytest.fail("pgbouncer exited with %s:\n%s" % (self.proc.returncode, self.log()))
        try:
            self.admin("SHOW VERSION")
            return True
        except psycopg2.OperationalError:
            return False

    def dsn(self):
        return "host=127.0.0.1 port=%d dbname=%s" % (self.port, os.environ.get("PGDATABASE") or "postgres")

    def connect(self):
        conn = psycopg2.connect(self.dsn())
        conn.autocommit = True
        return conn

    def admin(self, command):
        """Runs a command on the admin console (SHOW SERVERS, RECONNECT, ...)."""
        conn = psycopg2.connect("host=127.0.0.1 port=%d dbname=pgbouncer" % self.port)
        conn.autocommit = True
        try:
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute(command)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="module")
def pgbouncer(cluster):
    bouncer = PgBouncer()
    yield bouncer
    bouncer.stop()


# --- fake inference server ------------------------------------------------------

class FakeServer:
    def __init__(self):
        self.proc = subprocess.Popen([PYTHON, FAKE_SERVER, "--port", "0"],
                                     stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline().strip())
        self.base = "http://127.0.0.1:%d" % self.port

    def url(self, region):
        return "%s/%s" % (self.base, region)

    def control(self, **settings):
        req = urllib.request.Request(self.base + "/_control", data=json.dumps(settings).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200

    def log(self):
        return json.loads(http_get(self.base + "/_requests")[1])

    def requests(self):
        return self.log()["requests"]

    def count(self):
        return self.log()["count"]

    def in_progress(self):
        return self.log()["in_progress"]

    def stop(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def fake():
    server = FakeServer()
    yield server
    server.stop()


# --- runners ----------------------------------------------------------------------

class Runner:
    def __init__(self, args, log_path, worker_id):
        self.worker_id = worker_id
        self.log_path = log_path
        self.log_file = open(log_path, "w")
        binary = os.environ.get("EXECGUARD_RUNNER_BIN", os.path.join(REPO, "build", "runner", "execguard-runner"))
        self.proc = subprocess.Popen([binary] + args, stdout=self.log_file, stderr=subprocess.STDOUT)
        self.metrics_port = int(wait_until(self._bound_port, timeout=15, what="runner %s metrics port" % worker_id))

    def _bound_port(self):
        if self.proc.poll() is not None:
            pytest.fail("runner exited with %s:\n%s" % (self.proc.returncode, self.log()))
        m = re.search(r"event=metrics_listening .*port=(\d+)", self.log())
        return m and m.group(1)

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def metrics_text(self):
        status, text = http_get("http://127.0.0.1:%d/metrics" % self.metrics_port)
        assert status == 200
        return text

    def metrics(self):
        return parse_metrics(self.metrics_text())

    def metric(self, key):
        return self.metrics().get(key, 0.0)

    def healthz(self):
        return http_get("http://127.0.0.1:%d/healthz" % self.metrics_port)[0]

    def signal(self, signo):
        self.proc.send_signal(signo)

    def wait(self, timeout=30):
        return self.proc.wait(timeout=timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.log_file.close()


@pytest.fixture
def start_runner(cluster, fake, tmp_path):
    """start_runner(regions, *extra_args, worker_id=None) -> Runner."""
    started = []

    def start(regions, *extra, worker_id=None):
        worker_id = worker_id or "w%d-%s" % (len(started) + 1, uuid.uuid4().hex[:4])
        args = ["--worker-id", worker_id,
                "--metrics-listen", "127.0.0.1:0",
                "--lease", "3s", "--heartbeat-interval", "0.5s",
                "--poll-interval", "0.2s",
                "--retry-backoff-base", "0.2s", "--retry-backoff-max", "1s",
                "--reconnect-backoff-base", "0.1s", "--reconnect-backoff-max", "1s",
                "--grace-period", "5s"]
        for r in regions:
            args += ["--region", "%s=%s" % (r, fake.url(r))]
        args += list(extra)
        runner = Runner(args, str(tmp_path / ("%s.log" % worker_id)), worker_id)
        started.append(runner)
        return runner

    yield start
    for runner in started:
        runner.kill()
        if os.environ.get("EXECGUARD_E2E_SHOW_LOGS"):
            sys.stderr.write("---- %s ----\n%s\n" % (runner.worker_id, runner.log()))
