"""test/e2e/test_pooler.py: claims through a real PgBouncer in transaction mode.

Behind such a pooler a client's transactions run in whichever server backend
is free, and the pooler closes server connections on its own schedule. The
claims must still grant each key once and refuse stale writes (they hold no
session state and take no advisory locks). Owner tracking, which ties a
claim to the backend that made it, must stay off there (track_owner =>
false, the default since 0.6.0): these tests show why, and that the lease
takes over. Every key claimed here was submitted first (submit_job): a
claim of a key no job submitted is refused ('unknown') since 0.6.0.
"""
import collections
import random
import threading

from conftest import cancel_in_flight_and_check_it_stopped, spec, wait_until

CLAIM = ("SELECT c.outcome, c.execution_id, c.fencing_token, pg_backend_pid() AS backend "
         "  FROM execguard.claim_execution(%s, 'm1', %s, %s, %s, lease => %s::interval, "
         "                                 track_owner => %s) AS c")


def claim(conn, job_id, region, question, worker="w", lease="60 seconds", track_owner=False):
    with conn.cursor() as cur:
        cur.execute(CLAIM, (job_id, region, question, worker, lease, track_owner))
        outcome, execution_id, token, backend = cur.fetchone()
    return {"outcome": outcome, "execution_id": execution_id, "token": token, "backend": backend}


def submit(db, job_id, region, questions):
    """Submits the job whose keys are (job_id, 'm1', region, q) for each q in questions."""
    db.submit_job({"id": job_id, "models": ["m1"], "constraints": {"regions": [region]},
                   "questions": list(questions)})


def complete(conn, grant, result='{"text": "4"}'):
    with conn.cursor() as cur:
        cur.execute("SELECT execguard.complete_execution(%s, %s, %s::jsonb)",
                    (grant["execution_id"], grant["token"], result))
        return cur.fetchone()[0]


def stats_delta(db, before):
    after = db.stats()
    return {k: after[k] - before[k] for k in before if isinstance(before[k], int)}


def backend_alive(db, pid):
    return db.query("SELECT count(*) AS n FROM pg_stat_activity WHERE pid = %s", (pid,))[0]["n"] == 1


def run_clients(count, body):
    """Runs body(n) in count threads; re-raises the first failure."""
    errors = []

    def guarded(n):
        try:
            body(n)
        except BaseException as e:  # re-raised by the test's thread below
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a client thread did not finish"
    if errors:
        raise errors[0]


def test_eight_clients_on_two_pooled_backends_claim_each_key_exactly_once(db, pgbouncer, job_id,
                                                                          region_prefix):
    region = region_prefix + "-us-east"
    keys = ["q%d" % i for i in range(150)]
    submit(db, job_id, region, keys)
    clients = 8
    outcomes = collections.defaultdict(collections.Counter)
    grants = {}
    backends = set()
    lock = threading.Lock()
    before = db.stats()

    def client(n):
        conn = pgbouncer.connect()
        order = list(keys)
        random.Random(n).shuffle(order)
        try:
            for key in order:
                g = claim(conn, job_id, region, key, worker="w%d" % n)
                with lock:
                    outcomes[key][g["outcome"]] += 1
                    backends.add(g["backend"])
                    if g["outcome"] == "claimed":
                        grants[key] = (n, g)
        finally:
            conn.close()

    run_clients(clients, client)

    # Eight clients really shared the pool's backends...
    assert 1 <= len(backends) <= pgbouncer.pool_size
    # ...and still every key was granted once; every other call was told "running".
    for key in keys:
        assert outcomes[key] == {"claimed": 1, "running": clients - 1}, (key, outcomes[key])
    rows = db.query("SELECT status, attempt, fencing_token, owner_pid FROM execguard.executions "
                    "WHERE job_id = %s", (job_id,))
    assert len(rows) == len(keys)
    assert all(r["status"] == "running" and r["attempt"] == 1 and r["fencing_token"] == 1
               and r["owner_pid"] is None for r in rows)

    # Each grant completes once through the pooler, from any backend; a second
    # completion with the same token is a stale write.
    conn = pgbouncer.connect()
    try:
        assert all(complete(conn, g) for _, g in grants.values())
        assert not any(complete(conn, g) for _, g in list(grants.values())[:10])
    finally:
        conn.close()
    delta = stats_delta(db, before)
    assert delta["claims_claimed"] == len(keys)
    assert delta["claims_running"] == len(keys) * (clients - 1)
    assert delta["duplicates_prevented_claim"] == len(keys) * (clients - 1)
    assert delta["executions_completed"] == len(keys)
    assert delta["stale_writes_rejected"] == 10


def test_claim_next_from_eight_pooled_clients_never_grants_a_row_twice(db, pgbouncer, job_id, region_prefix):
    region = region_prefix + "-us-east"
    questions = 240
    db.submit_job(spec(job_id, region, questions))
    granted = []
    lock = threading.Lock()

    def client(n):
        conn = pgbouncer.connect()
        try:
            with conn.cursor() as cur:
                while True:
                    # Claim and complete in one transaction, as a batching worker does.
                    cur.execute(
                        "WITH c AS (SELECT execution_id, fencing_token FROM execguard.claim_next("
                        "             %s, 5, regions => ARRAY[%s], track_owner => false)) "
                        "SELECT c.execution_id, done.accepted "
                        "  FROM c, execguard.complete_executions("
                        "         ARRAY[c.execution_id], ARRAY[c.fencing_token], ARRAY['{}'::jsonb]) AS done",
                        ("w%d" % n, region))
                    rows = cur.fetchall()
                    if not rows:
                        return
                    with lock:
                        granted.extend(rows)
        finally:
            conn.close()

    run_clients(8, client)

    ids = [execution_id for execution_id, _ in granted]
    assert len(ids) == questions
    assert len(set(ids)) == questions
    assert all(accepted for _, accepted in granted)
    assert db.status_counts(job_id) == {"completed": questions}


def test_the_pooler_recycling_a_server_connection_rescues_a_tracked_claim_from_a_live_worker(
        db, pgbouncer, job_id, region_prefix):
    """Why a worker behind a transaction-mode pooler must not pass track_owner => true."""
    region = region_prefix + "-us-east"
    submit(db, job_id, region, ["tracked", "untracked"])
    worker = pgbouncer.connect()
    other = pgbouncer.connect()
    try:
        tracked = claim(worker, job_id, region, "tracked", worker="w1", track_owner=True)
        untracked = claim(worker, job_id, region, "untracked", worker="w1", track_owner=False)
        assert tracked["outcome"] == untracked["outcome"] == "claimed"

        # The pooler closes its server connections (server_lifetime, a
        # RECONNECT, a failover); the worker's client connection stays up.
        pgbouncer.admin("RECONNECT")
        wait_until(lambda: not backend_alive(db, tracked["backend"]), timeout=15,
                   what="pgbouncer to close the server connection")

        # The tracked claim's owner looks crashed: it is granted again while
        # the first worker is still working on it.
        assert claim(other, job_id, region, "tracked", worker="w2", track_owner=True)["outcome"] == "reclaimed"
        # The untracked claim waits for its lease, so the live worker keeps it.
        assert claim(other, job_id, region, "untracked", worker="w2")["outcome"] == "running"

        # Fencing still keeps each result single: the first worker's late
        # write of the rescued execution is refused, its untracked one lands.
        assert complete(worker, tracked) is False
        assert complete(worker, untracked) is True
        assert claim(other, job_id, region, "untracked", worker="w2")["outcome"] == "completed"
    finally:
        worker.close()
        other.close()


def test_an_untracked_claim_whose_worker_vanished_is_rescued_when_its_lease_expires(
        db, pgbouncer, job_id, region_prefix):
    region = region_prefix + "-us-east"
    submit(db, job_id, region, ["q1"])
    worker = pgbouncer.connect()
    first = claim(worker, job_id, region, "q1", worker="w1", lease="1 second")
    assert first["outcome"] == "claimed"
    # The worker dies. Its pooled backend lives on, so a dead owner could not
    # be seen from it anyway: only the lease tells.
    worker.close()

    other = pgbouncer.connect()
    try:
        def rescue():
            g = claim(other, job_id, region, "q1", worker="w2")
            assert g["outcome"] in ("running", "reclaimed")
            return g if g["outcome"] == "reclaimed" else None

        rescued = wait_until(rescue, timeout=15, interval=0.2, what="the lease to expire and the claim to be rescued")
        assert rescued["token"] > first["token"]
        assert complete(other, first) is False
        assert complete(other, rescued) is True
    finally:
        other.close()


def test_runner_in_pooler_mode_makes_one_model_call_per_execution_through_pgbouncer(
        db, fake, pgbouncer, start_runner, job_id, region_prefix):
    region = region_prefix + "-us-east"
    db.submit_job(spec(job_id, region, 6, models=("m1", "m2")))
    start_runner([region], "--database", pgbouncer.dsn(), "--pooler-mode")
    start_runner([region], "--database", pgbouncer.dsn(), "--pooler-mode")
    wait_until(lambda: db.status_counts(job_id).get("completed") == 12, what="12 completed executions")
    assert fake.count() == 12
    assert len({(c["model"], c["prompt"]) for c in fake.requests()}) == 12
    rows = db.query("SELECT count(*) AS n FROM execguard.executions "
                    "WHERE job_id = %s AND owner_pid IS NOT NULL", (job_id,))
    assert rows[0]["n"] == 0


def test_runner_in_pooler_mode_learns_a_cancel_from_its_heartbeat_and_sends_no_listen_into_the_pool(
        db, fake, pgbouncer, start_runner, job_id, region_prefix):
    region = region_prefix + "-us-east"
    log_start = len(pgbouncer.log())
    fake.control(region=region, mode="hang")
    runner = start_runner([region], "--database", pgbouncer.dsn(), "--pooler-mode")
    db.submit_job(spec(job_id, region, 1))
    wait_until(lambda: fake.in_progress() == 1, what="the call to be in flight")

    # The heartbeat is refused and execution_state says "cancelled".
    cancel_in_flight_and_check_it_stopped(db, fake, runner, job_id)
    # cancel_job also sent NOTIFY execguard_cancel. Had the runner run LISTEN
    # through the pooler, the server connection holding it would have got
    # that notification while idle in the pool, which PgBouncer drops and logs.
    assert "from server when not linked" not in pgbouncer.log()[log_start:]

