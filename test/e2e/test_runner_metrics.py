"""test/e2e/test_runner_metrics.py: /metrics passes promtool on a real scrape,
carries the runner's and the database's families with bounded labels, and
/healthz follows the database connection."""
import os
import shutil
import subprocess

import pytest

from conftest import REPO, wait_until

REQUIRED_SAMPLES = [
    'execguard_runner_claims_total{outcome="first_attempt"}',
    'execguard_runner_executions_finished_total{result="completed"}',
    'execguard_runner_in_flight_executions',
    'execguard_runner_auto_stopped_total{reason="cancelled"}',
    'execguard_runner_auto_stopped_total{reason="lease_lost"}',
    'execguard_db_duplicates_prevented_total{layer="claim"}',
    'execguard_db_duplicates_prevented_total{layer="normalization"}',
    'execguard_db_stale_writes_rejected_total',
    'execguard_db_leases_rescued_total{reason="expired"}',
    'execguard_db_leases_rescued_total{reason="owner_gone"}',
    'execguard_db_executions{status="pending"}',
    'execguard_db_oldest_pending_age_seconds',
    'execguard_db_up',
    'execguard_db_claims_total{outcome="unknown"}',
    'execguard_db_executions_purged_total',
    'execguard_db_writes_after_cancel_total',
]


def test_metrics_scrape_passes_promtool_and_has_no_unbounded_labels(db, fake, start_runner, job_id,
                                                                    region_prefix, tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found (Debian package 'prometheus')")
    region = region_prefix + "-us-east"
    runner = start_runner([region], "--model", "qwen2.5-1.5b")
    db.submit_job({"id": job_id, "models": ["qwen2.5-1.5b", "llama3.2-1b"],
                   "constraints": {"regions": [region]}, "questions": ["What is 2+2?"]})
    wait_until(lambda: db.status_counts(job_id).get("completed") == 1, what="the configured model's execution")
    assert runner.healthz() == 200

    text = runner.metrics_text()
    (tmp_path / "scrape.txt").write_text(text)
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    samples = runner.metrics()
    for key in REQUIRED_SAMPLES:
        assert key in samples, key
    assert samples['execguard_db_up'] == 1
    # The model label holds configured models only; job ids never appear.
    assert ('execguard_runner_inference_duration_seconds_count{model="qwen2.5-1.5b",region="%s"}' % region) in samples
    assert job_id not in text
    # Only the configured model was claimed: the other row is still pending.
    assert db.status_counts(job_id) == {"completed": 1, "pending": 1}
    assert [c["model"] for c in fake.requests()] == ["qwen2.5-1.5b"]


def test_healthz_is_503_while_the_database_is_unreachable(fake, start_runner, region_prefix):
    runner = start_runner([region_prefix + "-us-east"], "--database", "host=127.0.0.1 port=1 connect_timeout=1")
    wait_until(lambda: "event=db_connect_failed" in runner.log(), what="a failed connection attempt")
    assert runner.healthz() == 503
    assert runner.metrics()["execguard_runner_db_connected"] == 0
    assert "password" not in runner.log().lower()


def test_bad_configuration_or_a_bad_metrics_address_is_refused_at_start():
    binary = os.environ.get("EXECGUARD_RUNNER_BIN", os.path.join(REPO, "build", "runner", "execguard-runner"))
    bad = subprocess.run([binary, "--region", "r=http://x", "--concurrency", "0"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "concurrency" in bad.stderr
    busy = subprocess.run([binary, "--region", "r=http://x", "--metrics-listen", "256.0.0.1:1"],
                          capture_output=True, text=True, timeout=30)
    assert busy.returncode == 1
    assert "metrics" in busy.stderr
