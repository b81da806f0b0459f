"""test/e2e/test_runner_faults.py: cancellation, provider outages, crashes,
database restarts, shutdown, and an extension older than the runner."""
import collections
import json
import os
import signal
import subprocess
import uuid

import psycopg2
import pytest

from conftest import REPO, cancel_in_flight_and_check_it_stopped, spec, wait_until


def test_cancel_during_a_slow_call_aborts_the_call_and_completes_nothing(db, fake, start_runner,
                                                                        job_id, region_prefix):
    region = region_prefix + "-us-east"
    fake.control(region=region, mode="hang")
    runner = start_runner([region])
    db.submit_job(spec(job_id, region, 1))
    wait_until(lambda: fake.in_progress() == 1, what="the call to be in flight")

    # The runner hears execguard_cancel and aborts the HTTP request.
    cancel_in_flight_and_check_it_stopped(db, fake, runner, job_id)


def test_429_storm_opens_the_breaker_without_exhausting_attempts_then_the_job_completes(
        db, fake, start_runner, job_id, region_prefix):
    region = region_prefix + "-us-east"
    questions = 8
    fake.control(region=region, mode="429")  # until told otherwise, no Retry-After
    runner = start_runner([region], "--concurrency", "2", "--breaker-threshold", "2",
                          "--breaker-cooldown", "0.3s", "--breaker-cooldown-max", "1s")
    db.submit_job(spec(job_id, region, questions, max_attempts=3))
    opened = 'execguard_runner_circuit_breaker_opened_total{region="%s"}' % region
    wait_until(lambda: runner.metric(opened) >= 3, what="the breaker to open three times")

    # During the storm: the breaker lets through only the first calls and one
    # probe per opening, instead of burning 8 x 3 attempts.
    opens = runner.metric(opened)
    storm_calls = fake.count()
    assert storm_calls <= 2 + opens + 1
    assert db.status_counts(job_id).get("failed", 0) == 0
    assert max(r["attempt"] for r in db.executions(job_id)) < 3
    assert runner.metric('execguard_runner_inference_errors_total{class="rate_limit",region="%s"}' % region) >= 3

    fake.control(region=region, mode="ok")
    wait_until(lambda: db.status_counts(job_id).get("completed") == questions, timeout=60,
               what="the job to complete after the storm")
    assert db.status_counts(job_id) == {"completed": questions}
    calls = fake.requests()
    assert collections.Counter(c["outcome"] for c in calls)["ok"] == questions
    # Every call was its own attempt through the database.
    assert len(calls) == sum(r["attempt"] for r in db.executions(job_id))
    assert runner.metric('execguard_runner_circuit_breaker_state{region="%s",state="closed"}' % region) == 1


def test_kill_9_of_a_runner_mid_call_another_finishes_and_only_its_in_flight_calls_repeat(
        db, fake, start_runner, job_id, region_prefix):
    region = region_prefix + "-us-east"
    questions = 6
    fake.control(region=region, latency=1.0)
    victim = start_runner([region], "--concurrency", "2")
    db.submit_job(spec(job_id, region, questions))
    wait_until(lambda: fake.in_progress() == 2, what="the victim's two calls in flight")
    held = {r["execution_id"]: r["prompt"] for r in db.executions(job_id)
            if r["status"] == "running" and r["worker"] == victim.worker_id}
    assert len(held) == 2
    rescued_before = db.stats()
    victim.kill()  # SIGKILL: no release, no completion

    survivors = [start_runner([region], "--concurrency", "2") for _ in range(2)]
    wait_until(lambda: db.status_counts(job_id).get("completed") == questions, timeout=60,
               what="the survivors to finish the job")

    rows = db.executions(job_id)
    assert len(rows) == questions and all(r["status"] == "completed" for r in rows)
    survivor_ids = {r.worker_id for r in survivors}
    for r in rows:
        if r["execution_id"] in held:
            assert r["attempt"] == 2 and r["result"]["worker"] in survivor_ids
    after = db.stats()
    rescued = (after["leases_rescued_owner_gone"] + after["leases_rescued_expired"]
               - rescued_before["leases_rescued_owner_gone"] - rescued_before["leases_rescued_expired"])
    assert rescued >= len(held)
    # Extra model calls: only the prompts the killed runner had in flight.
    per_prompt = collections.Counter(c["prompt"] for c in fake.requests())
    repeated = {p for p, n in per_prompt.items() if n > 1}
    assert repeated <= set(held.values())
    assert max(per_prompt.values()) <= 2
    assert fake.count() - questions <= len(held)


@pytest.mark.skipif(not os.environ.get("EXECGUARD_CLUSTER_DIR"),
                    reason="needs EXECGUARD_CLUSTER_DIR to restart the server")
def test_postgres_restart_under_a_running_runner_it_reconnects_and_the_job_completes(
        db, fake, start_runner, job_id, region_prefix):
    region = region_prefix + "-us-east"
    questions = 6
    fake.control(region=region, latency=0.5)
    runner = start_runner([region], "--concurrency", "2")
    db.submit_job(spec(job_id, region, questions))
    wait_until(lambda: fake.in_progress() == 2, what="calls in flight")

    subprocess.run([os.path.join(REPO, "scripts", "pgcluster.sh"), "restart",
                    os.environ["EXECGUARD_CLUSTER_DIR"]], check=True, capture_output=True)
    wait_until(lambda: db.status_counts(job_id).get("completed") == questions, timeout=60,
               what="the job to complete after the restart")
    assert runner.metric("execguard_runner_db_reconnects_total") >= 1
    assert runner.healthz() == 200
    assert db.status_counts(job_id) == {"completed": questions}
    # Calls in flight across the restart were completed on the new
    # connection, not run again.
    assert fake.count() == questions
    assert runner.proc.poll() is None


def test_sigterm_releases_in_flight_executions_and_exits_0(db, fake, start_runner, job_id, region_prefix):
    region = region_prefix + "-us-east"
    fake.control(region=region, mode="hang")
    released_before = db.stats()["executions_released"]
    runner = start_runner([region], "--concurrency", "3", "--grace-period", "0.5s")
    db.submit_job(spec(job_id, region, 4))
    wait_until(lambda: fake.in_progress() == 3, what="three calls in flight")

    runner.signal(signal.SIGTERM)
    assert runner.wait(timeout=30) == 0
    rows = db.executions(job_id)
    assert all(r["status"] == "pending" for r in rows)
    # A release gives the attempt back.
    assert all(r["attempt"] == 0 for r in rows)
    assert db.stats()["executions_released"] - released_before == 3
    wait_until(lambda: all(c["outcome"] == "client_aborted" for c in fake.requests()),
               what="the hanging calls to be aborted")
    assert fake.count() == 3
    assert "event=runner_stopped exit_code=0" in runner.log()


def test_sigterm_lets_calls_finish_within_the_grace_period_and_claims_nothing_new(
        db, fake, start_runner, job_id, region_prefix):
    region = region_prefix + "-us-east"
    fake.control(region=region, latency=1.0)
    runner = start_runner([region], "--concurrency", "2", "--grace-period", "30s")
    db.submit_job(spec(job_id, region, 4))
    wait_until(lambda: fake.in_progress() == 2, what="two calls in flight")

    runner.signal(signal.SIGTERM)
    assert runner.wait(timeout=30) == 0
    assert db.status_counts(job_id) == {"completed": 2, "pending": 2}
    assert fake.count() == 2


def test_a_dropped_keepalive_connection_never_makes_libcurl_resend_the_request(db, fake, start_runner,
                                                                             job_id, region_prefix):
    # Found by the chaos harness: when the server closed a reused keep-alive
    # connection without answering, libcurl re-sent the same POST on a new
    # connection by itself, a second model call for one grant. Now the
    # attempt fails (network) and the retry is a new grant with a new token.
    region = region_prefix + "-us-east"
    runner = start_runner([region], "--concurrency", "1")
    db.submit_job(spec(job_id + "-warm", region, 1))  # opens the keep-alive connection
    wait_until(lambda: db.status_counts(job_id + "-warm").get("completed") == 1, what="the warm-up call")
    fake.control(region=region, mode="close", count=1)
    db.submit_job(spec(job_id, region, 1))
    wait_until(lambda: db.status_counts(job_id).get("completed") == 1, what="the job to complete")

    keys = [r["idempotency_key"] for r in fake.requests()]
    assert len(keys) == len(set(keys)) == 3, keys  # warm-up, dropped attempt 1, attempt 2
    row = db.executions(job_id)[0]
    assert row["attempt"] == 2  # a second grant, not a silent second send
    assert runner.metric('execguard_runner_inference_errors_total{class="network",region="%s"}' % region) == 1


@pytest.fixture
def database_without_execution_state(cluster, db):
    """A database of the same cluster whose extension lacks execution_state,
    as the 0.2.0 extension does, which a runner upgraded first meets. The
    server's library works only with its own schema version, so the old
    version is stood in for by the current one with the function dropped."""
    name = "eg_e2e_no_state_%s" % uuid.uuid4().hex[:8]
    db.query("CREATE DATABASE %s" % name)
    conn = psycopg2.connect(dbname=name)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE EXTENSION execguard")
        cur.execute("ALTER EXTENSION execguard DROP FUNCTION execguard.execution_state(bigint, bigint)")
        cur.execute("DROP FUNCTION execguard.execution_state(bigint, bigint)")
    yield name, conn
    conn.close()
    db.query("DROP DATABASE %s WITH (FORCE)" % name)


def test_runner_without_execution_state_stops_a_cancelled_call_as_a_lost_lease_and_carries_on(
        db, fake, start_runner, database_without_execution_state, job_id, region_prefix):
    name, conn = database_without_execution_state
    region = region_prefix + "-us-east"
    fake.control(region=region, mode="hang", count=1)
    # Pooler mode (no LISTEN), so only the heartbeat can tell it to stop.
    runner = start_runner([region], "--database", "dbname=" + name, "--pooler-mode")

    def run(sql, params):
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    run("SELECT * FROM execguard.submit_job(%s::jsonb)", (json.dumps(spec(job_id, region, 1)),))
    wait_until(lambda: fake.in_progress() == 1, what="the call to be in flight")
    assert run("SELECT execguard.cancel_job(%s)", (job_id,)) == [(1,)]
    wait_until(lambda: fake.requests()[0]["outcome"] == "client_aborted", what="the call to be aborted")
    # Without execution_state the reason is unknown: counted as a lost lease.
    wait_until(lambda: runner.metric('execguard_runner_auto_stopped_total{reason="lease_lost"}') == 1,
               what="auto-stop counted")
    assert runner.metric('execguard_runner_auto_stopped_total{reason="cancelled"}') == 0
    assert "during=execution_state" in runner.log()
    assert run("SELECT status, result FROM execguard.executions WHERE job_id = %s", (job_id,)) == [("cancelled", None)]

    # The runner carries on with the next job.
    second = job_id + "-2"
    run("SELECT * FROM execguard.submit_job(%s::jsonb)", (json.dumps(spec(second, region, 2)),))
    wait_until(lambda: run("SELECT count(*) FROM execguard.executions WHERE job_id = %s AND status = 'completed'",
                           (second,)) == [(2,)], what="the next job to complete")
    assert fake.count() == 3


@pytest.mark.parametrize("mode, error_class, extra", [
    ("close", "network", ()),
    ("hang", "timeout", ("--request-timeout", "0.5s")),
])
def test_a_transport_failure_names_its_class_once_in_the_rows_error(db, fake, start_runner, job_id, region_prefix,
                                                                    mode, error_class, extra):
    # Was "network: network: ..." and "timeout: timeout: ...".
    region = region_prefix + "-us-east"
    fake.control(region=region, mode=mode)
    start_runner([region], *extra)
    db.submit_job(spec(job_id, region, 1, max_attempts=1))
    wait_until(lambda: db.status_counts(job_id).get("failed") == 1, what="the execution to fail")
    error = db.executions(job_id)[0]["error"]
    assert error.startswith(error_class + ": ") and not error.startswith(error_class + ": " + error_class), error


def test_more_than_one_batch_of_results_at_once_are_all_written(db, fake, start_runner, job_id, region_prefix):
    # complete_executions takes 200 results per statement. Was: the rest
    # were popped from the queue unwritten, left running, and run again
    # after their lease. The table is locked while the calls finish, so
    # every result waits in the runner at once.
    region = region_prefix + "-us-east"
    questions = 230
    fake.control(region=region, latency=3.0)
    start_runner([region], "--concurrency", str(questions), "--lease", "10s")
    db.submit_job(spec(job_id, region, questions))
    wait_until(lambda: fake.in_progress() == questions, timeout=60, what="every call in flight")
    locker = psycopg2.connect("")
    try:
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE execguard.executions IN ACCESS EXCLUSIVE MODE")
        wait_until(lambda: fake.count() == questions and fake.in_progress() == 0, timeout=60,
                   what="every call to finish while the table is locked")
    finally:
        locker.rollback()
        locker.close()
    wait_until(lambda: db.status_counts(job_id).get("completed") == questions, timeout=60,
               what="every result to be written")
    assert fake.count() == questions
    assert all(r["attempt"] == 1 for r in db.executions(job_id))


@pytest.fixture
def trigger_refusing_some_results(db):
    """A trigger that refuses any result whose text mentions "refuse me"."""
    db.query("CREATE FUNCTION public.eg_e2e_refuse_result() RETURNS trigger LANGUAGE plpgsql AS $$ "
             "BEGIN IF NEW.result->>'text' LIKE '%refuse me%' THEN "
             "RAISE EXCEPTION 'refused by the test trigger' USING ERRCODE = '23514'; END IF; "
             "RETURN NEW; END $$")
    db.query("CREATE TRIGGER eg_e2e_refuse_result BEFORE UPDATE ON execguard.executions "
             "FOR EACH ROW EXECUTE FUNCTION public.eg_e2e_refuse_result()")
    yield
    db.query("DROP TRIGGER eg_e2e_refuse_result ON execguard.executions")
    db.query("DROP FUNCTION public.eg_e2e_refuse_result()")


def test_a_result_the_database_refuses_fails_the_execution_instead_of_running_it_again(
        db, fake, start_runner, job_id, region_prefix, trigger_refusing_some_results):
    # Was: counted as stale and dropped; the row stayed running until its
    # lease and the model was called again (and again).
    region = region_prefix + "-us-east"
    answer = {"id": "x", "choices": [{"message": {"content": "please refuse me"}, "finish_reason": "stop"}]}
    fake.control(region=region, mode="raw", body=json.dumps(answer))
    runner = start_runner([region])
    db.submit_job(spec(job_id, region, 1, max_attempts=3))
    wait_until(lambda: db.status_counts(job_id).get("failed") == 1, what="the execution to fail")
    row = db.executions(job_id)[0]
    assert row["attempt"] == 1 and row["result"] is None
    assert row["error"].startswith("result_refused: the database refused the result: "), row["error"]
    assert "refused by the test trigger" in row["error"] and "23514" in row["error"]
    assert fake.count() == 1
    assert runner.metric('execguard_runner_executions_finished_total{result="stale"}') == 0
