"""test/ops/conftest.py: fixtures for the live check of the operations kit.

Reuses the end-to-end fixtures of test/e2e/conftest.py (PostgreSQL cluster,
fake inference server, runners), loaded under another module name so that
`pytest test/e2e test/ops` in one session does not confuse the two
conftest modules, and adds a real Prometheus.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse

import pytest

_E2E_CONFTEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e", "conftest.py")
_spec = importlib.util.spec_from_file_location("execguard_e2e_conftest", _E2E_CONFTEST)
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)

# The e2e fixtures, visible to the tests of this folder.
cluster = e2e.cluster
db = e2e.db
fake = e2e.fake
start_runner = e2e.start_runner
job_id = e2e.job_id
region_prefix = e2e.region_prefix

REPO = e2e.REPO
RULES = os.path.join(REPO, "deploy", "prometheus", "execguard.rules.yml")
DASHBOARD = os.path.join(REPO, "deploy", "grafana", "execguard.json")
SCRAPE_JOB = "execguard"


class Prometheus:
    """The Debian `prometheus` binary on a free loopback port, with a
    temporary configuration and data directory, scraping `targets` every
    second and evaluating the execguard rules every second."""

    def __init__(self, targets):
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus not found (Debian package 'prometheus')")
        self.directory = tempfile.mkdtemp(prefix="execguard-prometheus-", dir="/tmp")
        self.port = e2e.free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        config = os.path.join(self.directory, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n"
                    "  scrape_interval: 1s\n"
                    "  scrape_timeout: 1s\n"
                    "  evaluation_interval: 1s\n"
                    "rule_files:\n"
                    "  - %s\n"
                    "scrape_configs:\n"
                    "  - job_name: %s\n"
                    "    static_configs:\n"
                    "      - targets: [%s]\n"
                    % (RULES, SCRAPE_JOB, ", ".join("'%s'" % t for t in targets)))
        self.log_path = os.path.join(self.directory, "prometheus.log")
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [binary, "--config.file=" + config,
             "--storage.tsdb.path=" + os.path.join(self.directory, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port,
             "--log.level=warn"],
            stdout=self.log_file, stderr=subprocess.STDOUT)
        e2e.wait_until(self._ready, timeout=30, what="prometheus to be ready")

    def _ready(self):
        if self.proc.poll() is not None:
            pytest.fail("prometheus exited with %s:\n%s" % (self.proc.returncode, self.log()))
        try:
            return e2e.http_get(self.base + "/-/ready", timeout=2)[0] == 200
        except OSError:
            return False

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def api(self, path, **params):
        """GET /api/v1/<path>; returns `data`, fails the test on an error answer."""
        url = "%s/api/v1/%s?%s" % (self.base, path, urllib.parse.urlencode(params, doseq=True))
        status, body = e2e.http_get(url, timeout=10)
        answer = json.loads(body)
        if status != 200 or answer.get("status") != "success":
            raise AssertionError("%s %s: %s" % (path, params, body[:500]))
        return answer["data"]

    def query(self, expr):
        """An instant query at the current time: the result vector (or scalar)."""
        data = self.api("query", query=expr, time="%.3f" % time.time())
        return data["result"] if data["resultType"] == "vector" else [data["result"]]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def start_prometheus():
    started = []

    def start(targets):
        p = Prometheus(targets)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()
