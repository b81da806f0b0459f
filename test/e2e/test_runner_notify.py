"""test/e2e/test_runner_notify.py: notifications are hints only.

PostgreSQL has no privilege for LISTEN or NOTIFY: any role that can log in
can send execguard_cancel and execguard_work, with any payload, as often as
it likes. So the runner never reads a payload. An execguard_cancel makes it
ask the database (execguard.execution_state, one round trip for every call
in flight) which calls are no longer its own, and it stops only those; an
execguard_work makes it claim. A flood of either costs a bounded number of
queries (runner/hint_gate.h).
"""
import time
import uuid

import psycopg2
import pytest

from conftest import spec, wait_until

# runner/runner.cpp's kHintSpacingSeconds: at most one execution_state check
# (and one claim_next) per spacing comes of notifications, however many.
HINT_SPACING_SECONDS = 0.1

CANCEL_HINTS = 'execguard_runner_notifications_total{channel="execguard_cancel"}'
WORK_HINTS = 'execguard_runner_notifications_total{channel="execguard_work"}'
CHECKS_AFTER_HINT = 'execguard_runner_execution_state_checks_total{trigger="notification"}'
CHECKS_AFTER_HEARTBEAT = 'execguard_runner_execution_state_checks_total{trigger="heartbeat"}'
STOPPED_CANCELLED = 'execguard_runner_auto_stopped_total{reason="cancelled"}'
STOPPED_LEASE_LOST = 'execguard_runner_auto_stopped_total{reason="lease_lost"}'
CLAIM_QUERIES = ('execguard_runner_claim_queries_total{result="granted"}',
                 'execguard_runner_claim_queries_total{result="empty"}',
                 'execguard_runner_claim_queries_total{result="error"}')

# Lease and heartbeat far longer than any wait below, so what stops a call
# in these tests can only be a notification, never a heartbeat.
SLOW_HEARTBEAT = ("--lease", "60s", "--heartbeat-interval", "20s")


@pytest.fixture
def nobody(db):
    """An autocommit connection of a role with LOGIN and nothing else."""
    name = "eg_nobody_%s" % uuid.uuid4().hex[:8]
    db.query("CREATE ROLE %s LOGIN" % name)
    conn = psycopg2.connect(user=name)
    conn.autocommit = True
    # It has no way into execguard's API...
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        with conn.cursor() as cur:
            cur.execute("SELECT execguard.cancel_job('any job')")
    yield conn
    conn.close()
    db.query("DROP ROLE %s" % name)


def notify(conn, channel, payload):
    """...but it can NOTIFY any channel: each call is its own transaction."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_notify(%s, %s)", (channel, payload))


def test_a_cancel_notification_from_a_role_without_grants_does_not_stop_the_call(
        db, fake, start_runner, nobody, job_id, region_prefix):
    region = region_prefix + "-us-east"
    fake.control(region=region, latency=2.0)
    runner = start_runner([region])
    db.submit_job(spec(job_id, region, 1))
    wait_until(lambda: fake.in_progress() == 1, what="the call to be in flight")

    # The job's own id (the payload cancel_job has sent so far) and an empty
    # one (what it is to send, so that LISTEN reveals no job ids).
    notify(nobody, "execguard_cancel", job_id)
    notify(nobody, "execguard_cancel", "")

    wait_until(lambda: db.status_counts(job_id) != {"running": 1}, what="the execution to leave running")
    row = db.executions(job_id)[0]
    assert row["status"] == "completed"
    assert row["attempt"] == 1
    assert row["result"]["text"].startswith("fake answer to:")
    assert fake.count() == 1
    assert fake.requests()[0]["outcome"] == "ok"
    assert runner.metric(STOPPED_CANCELLED) == 0 and runner.metric(STOPPED_LEASE_LOST) == 0
    # Both hints were heard, and the runner asked the database while the
    # call was in flight (it asks only then) instead of believing them.
    assert runner.metric(CANCEL_HINTS) == 2
    assert runner.metric(CHECKS_AFTER_HINT) >= 1


def test_cancel_job_still_stops_the_call_at_once_through_the_state_check(
        db, fake, start_runner, job_id, region_prefix):
    region = region_prefix + "-us-east"
    fake.control(region=region, mode="hang")
    runner = start_runner([region], *SLOW_HEARTBEAT)
    db.submit_job(spec(job_id, region, 1))
    wait_until(lambda: fake.in_progress() == 1, what="the call to be in flight")

    assert db.query("SELECT execguard.cancel_job(%s) AS n", (job_id,))[0]["n"] == 1
    # Half the heartbeat interval: only the notification can have done it.
    wait_until(lambda: fake.requests()[0]["outcome"] == "client_aborted", timeout=10,
               what="the call to be aborted")
    wait_until(lambda: runner.metric(STOPPED_CANCELLED) == 1, timeout=10, what="auto-stop counted")
    row = db.executions(job_id)[0]
    assert row["status"] == "cancelled" and row["result"] is None
    assert fake.count() == 1
    assert runner.metric(STOPPED_LEASE_LOST) == 0
    assert runner.metric(CHECKS_AFTER_HINT) >= 1
    assert runner.metric(CHECKS_AFTER_HEARTBEAT) == 0


def test_a_flood_of_notifications_makes_a_bounded_number_of_queries(
        db, fake, start_runner, nobody, job_id, region_prefix):
    region = region_prefix + "-us-east"
    fake.control(region=region, mode="hang")
    # No poll during the test: every claim_next below comes of a notification.
    runner = start_runner([region], *SLOW_HEARTBEAT, "--poll-interval", "60s")
    db.submit_job(spec(job_id, region, 1))
    wait_until(lambda: fake.in_progress() == 1, what="the call to be in flight")
    checks_before = runner.metric(CHECKS_AFTER_HINT)
    claims_before = sum(runner.metric(k) for k in CLAIM_QUERIES)
    cancel_hints_before = runner.metric(CANCEL_HINTS)
    work_hints_before = runner.metric(WORK_HINTS)

    flood = 1000
    started = time.monotonic()
    for i in range(flood):
        # Payloads of every kind: the job's id, empty, anything.
        notify(nobody, "execguard_cancel", (job_id, "", "junk %d" % i)[i % 3])
        notify(nobody, "execguard_work", "")
    wait_until(lambda: runner.metric(CANCEL_HINTS) - cancel_hints_before == flood
               and runner.metric(WORK_HINTS) - work_hints_before == flood,
               what="the runner to have read every notification")
    # Let the last coalesced check and claim run.
    time.sleep(3 * HINT_SPACING_SECONDS)
    elapsed = time.monotonic() - started
    checks = runner.metric(CHECKS_AFTER_HINT) - checks_before
    claims = sum(runner.metric(k) for k in CLAIM_QUERIES) - claims_before

    # At most one of each per spacing while the flood lasted (plus the first
    # at once), not one per notification. The bound grows with the time the
    # flood took, so a slow machine does not fail it.
    bound = 2 + int(elapsed / HINT_SPACING_SECONDS)
    assert 1 <= checks <= bound, (checks, bound, elapsed)
    assert 1 <= claims <= bound, (claims, bound, elapsed)
    assert bound < flood / 4, "the flood took too long to show anything (%.1fs)" % elapsed

    # The call carried on through it all, and a real cancellation right after
    # the flood is still heard at once.
    assert fake.in_progress() == 1 and fake.count() == 1
    assert runner.metric(STOPPED_CANCELLED) == 0 and runner.metric(STOPPED_LEASE_LOST) == 0
    assert db.query("SELECT execguard.cancel_job(%s) AS n", (job_id,))[0]["n"] == 1
    wait_until(lambda: fake.requests()[0]["outcome"] == "client_aborted", timeout=10,
               what="the call to be aborted")
    wait_until(lambda: runner.metric(STOPPED_CANCELLED) == 1, timeout=10, what="auto-stop counted")
    assert db.executions(job_id)[0]["status"] == "cancelled"
    assert runner.metric(CHECKS_AFTER_HEARTBEAT) == 0
