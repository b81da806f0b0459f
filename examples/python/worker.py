#!/usr/bin/python3
"""examples/python/worker.py: an execguard worker in plain SQL, with psycopg 3.
It claims one execution at a time, sends its prompt to an OpenAI-compatible
server while a heartbeat keeps the lease, and records the outcome; any number
of workers, in any language, share the queue. Settings: examples/README.md."""
import datetime, http.client, json, os, signal, socket, sys, threading, time, urllib.parse

import psycopg
from psycopg.types.json import Jsonb

ENV = os.environ
WORKER = ENV.get("EXECGUARD_WORKER_ID") or "py-%s-%d" % (socket.gethostname(), os.getpid())
LEASE = datetime.timedelta(seconds=float(ENV.get("EXECGUARD_LEASE_SECONDS", "30")))
GRACE = float(ENV.get("EXECGUARD_GRACE_SECONDS", "10"))
EXIT_WHEN_IDLE = "--exit-when-idle" in sys.argv[1:] or ENV.get("EXECGUARD_EXIT_WHEN_IDLE") == "1"
FILTERS = [[s.strip() for s in ENV.get(v, "").split(",") if s.strip()] or None  # None: any
           for v in ("EXECGUARD_REGIONS", "EXECGUARD_MODELS")]
stopping = threading.Event()  # SIGTERM: claim nothing more


def log(event, **fields):
    print(WORKER + ": " + event, *("%s=%s" % kv for kv in fields.items()), file=sys.stderr, flush=True)


class Db:
    """One connection in autocommit mode: each execguard call is its own
    transaction, so none stays open (holding a snapshot) during a model call.
    Reconnects when the server goes away; sending a write again is safe, since
    the fencing token refuses anything but the first."""

    def __init__(self):
        self.conn = None

    def one(self, sql, args=()):
        for attempt in range(1, 6):
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = psycopg.connect(ENV.get("EXECGUARD_DSN", ""), autocommit=True)
                return self.conn.execute(sql, args).fetchone()
            except psycopg.OperationalError as e:
                self.conn = None
                if attempt == 5:
                    raise
                log("database unreachable, retrying", error=str(e).strip())
                time.sleep(attempt)


class ModelCall:
    """POST {base}/v1/chat/completions; abort() from another thread ends it."""

    def __init__(self, ex_id, token, region, payload):
        base = urllib.parse.urlsplit(ENV["EXECGUARD_EXAMPLE_BASE_URL"].replace("{region}", region))
        cls = http.client.HTTPSConnection if base.scheme == "https" else http.client.HTTPConnection
        self.http, self.path, self.why = cls(base.netloc, timeout=120), base.path.rstrip("/"), None
        body = dict(payload.get("params") or {}, model=payload["model_id"], stream=False,
                    messages=[{"role": "user", "content": payload["prompt"]}])
        # One key per grant: a provider that deduplicates sees a retry as new.
        self.args = ("POST", self.path + "/v1/chat/completions", json.dumps(body),
                     {"Content-Type": "application/json", "Idempotency-Key": "execguard-%s-%s" % (ex_id, token),
                      "X-Execguard-Worker": WORKER})

    def run(self):
        self.http.connect()
        if self.why is not None:  # aborted before there was a socket to shut down
            raise ConnectionAbortedError(self.why)
        try:
            self.http.request(*self.args)
            resp = self.http.getresponse()
            return resp.status, resp.getheader("Retry-After"), resp.read()
        finally:
            self.http.close()

    def abort(self, why):
        self.why, sock = why, self.http.sock
        try:
            sock and sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked read
        except OSError:  # already closed
            pass


class Heartbeat(threading.Thread):
    """Renews the lease every lease/3 on its own connection, so a slow model
    call never lets it lapse; aborts the call when execguard says stop (job
    cancelled, claim taken over) or when SIGTERM's grace period is over."""
    db = Db()  # one heartbeat connection for the worker's life

    def __init__(self, ex_id, token, call):
        super().__init__(daemon=True)
        self.ex_id, self.token, self.call, self.done = ex_id, token, call, threading.Event()

    def run(self):
        interval, deadline = LEASE.total_seconds() / 3, None
        next_beat = time.monotonic() + interval
        while not self.done.wait(0.1):
            now = time.monotonic()
            if stopping.is_set() and now >= (deadline := deadline or now + GRACE):
                return self.call.abort("shutdown")
            if now < next_beat:
                continue
            next_beat = now + interval
            try:
                if not self.db.one("SELECT execguard.heartbeat(%s, %s, %s)", (self.ex_id, self.token, LEASE))[0]:
                    # false means stop; execution_state says why (cancelled, stale, ...).
                    sql = "SELECT coalesce(execguard.execution_state(%s, %s), 'gone')"
                    return self.call.abort(self.db.one(sql, (self.ex_id, self.token))[0])
            except psycopg.Error as e:  # a missed beat is not a lost claim: the lease outlives two
                log("heartbeat failed", id=self.ex_id, error=str(e).strip())


def outcome_of(status, retry_after, body):
    """(result, None) or (None, (error, retryable, retry_after)): the runner's classes."""
    if status == 200:
        try:
            answer = json.loads(body)
            choice = answer["choices"][0]
            text = choice["message"]["content"].replace("\0", "\ufffd")  # jsonb cannot hold U+0000
            return {"text": text, "finish_reason": choice.get("finish_reason"),
                    "usage": answer.get("usage"), "worker": WORKER}, None
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return None, ("permanent: malformed response: %r" % body[:200], False, None)
    cls = {429: "rate_limit", 408: "timeout"}.get(status, "server_error" if status >= 500 else "permanent")
    # A provider's Retry-After in seconds wins (at most a day, as the runner's:
    # fail_execution refuses over 30 days); else execguard's backoff (NULL).
    secs = (retry_after or "").strip()
    wait = datetime.timedelta(seconds=min(int(secs), 86400)) if secs.isascii() and secs.isdigit() else None
    return None, ("%s: HTTP %d: %s" % (cls, status, body[:300].decode(errors="replace")), cls != "permanent", wait)


def execute(db, ex_id, token, attempt, region, payload):
    log("claimed", id=ex_id, token=token, attempt=attempt, model=payload["model_id"], region=region)
    call = ModelCall(ex_id, token, region, payload)
    beat = Heartbeat(ex_id, token, call)
    beat.start()
    try:
        result, failure = outcome_of(*call.run())
    except TimeoutError:
        result, failure = None, ("timeout: no answer in 120 s", True, None)
    except (OSError, http.client.HTTPException) as e:
        result, failure = None, ("network: %s" % e, True, None)
    finally:
        beat.done.set()
        beat.join()
    if call.why == "shutdown" and result is None:  # gives the attempt back to the next worker
        return log("released", id=ex_id, accepted=db.one("SELECT execguard.release_execution(%s, %s)", (ex_id, token))[0])
    if call.why not in (None, "shutdown"):  # cancelled or taken over: write nothing
        return log("stopped", id=ex_id, reason=call.why)
    if result is not None:
        ok = db.one("SELECT execguard.complete_execution(%s, %s, %s)", (ex_id, token, Jsonb(result)))[0]
        return log("completed", id=ex_id, token=token, accepted=ok)
    outcome = db.one("SELECT execguard.fail_execution(%s, %s, %s, retryable => %s, retry_after => %s)",
                     (ex_id, token) + failure)[0]
    log("failed", id=ex_id, outcome=outcome, error=failure[0][:80])


def main():
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    db = Db()
    while not stopping.is_set():
        # track_owner => false: a connection is not this worker's identity (this
        # one reconnects, heartbeats use another), so rescue must rely on the lease.
        row = db.one("SELECT execution_id, fencing_token, attempt, region, payload FROM execguard.claim_next("
                     "%s, max_claims => 1, lease => %s, regions => %s, models => %s, track_owner => false)",
                     (WORKER, LEASE, *FILTERS))
        if row is not None:
            execute(db, *row)
            continue
        # Nothing due. Pending rows may still be backing off, and running ones
        # may come back if their worker dies: idle only when neither is left.
        left = db.one("SELECT coalesce(sum(executions), 0) FROM execguard.queue_summary()"
                      " WHERE status IN ('pending', 'running')")[0]
        if EXIT_WHEN_IDLE and left == 0:
            break
        stopping.wait(0.5)
    log("exiting")


if __name__ == "__main__":
    main()
