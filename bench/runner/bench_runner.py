#!/usr/bin/python3
"""bench/runner/bench_runner.py: runner throughput and cost per execution.

With the fake inference server at zero latency, submits one job of N
executions (1 model x 1 region x N questions) and measures, through 1 and
then 4 runners: executions per second (first claim to last completion, as
seen from the database), and each runner's CPU time and peak resident
memory per 1,000 executions (from /proc). Prints figures; asserts nothing.

Needs PG* variables for a server with the extension (scripts/pgcluster.sh
start DIR; . DIR/env) and the runner binary (EXECGUARD_RUNNER_BIN, default
build/runner/execguard-runner).

  /usr/bin/python3 bench/runner/bench_runner.py [--executions 2000] [--concurrency 20]
"""
import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid

import psycopg2

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def proc_peak_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def run_round(conn, fake_port, runners, executions, concurrency, binary, logdir):
    region = "bench-%s" % uuid.uuid4().hex[:6]
    job_id = "bench-%s" % uuid.uuid4().hex[:8]
    procs = []
    for i in range(runners):
        log = open(os.path.join(logdir, "%s-%d.log" % (region, i)), "w")
        procs.append(subprocess.Popen(
            [binary, "--worker-id", "%s-%d" % (region, i), "--metrics-listen", "127.0.0.1:0",
             "--region", "%s=http://127.0.0.1:%d/%s" % (region, fake_port, region),
             "--concurrency", str(concurrency), "--poll-interval", "0.5s", "--log-level", "warn"],
            stdout=log, stderr=subprocess.STDOUT))
    time.sleep(1.0)  # let them connect and LISTEN
    cpu_before = [proc_cpu_seconds(p.pid) for p in procs]
    cur = conn.cursor()
    cur.execute("SELECT executions_created FROM execguard.submit_job(%s::jsonb)", (json.dumps({
        "id": job_id, "models": ["bench-model"], "constraints": {"regions": [region]},
        "questions": ["q%d" % i for i in range(executions)]}),))
    assert cur.fetchone()[0] == executions
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        cur.execute("SELECT count(*) FILTER (WHERE status = 'completed'), "
                    "       extract(epoch FROM max(finished_at) - min(started_at)) "
                    "  FROM execguard.executions WHERE job_id = %s", (job_id,))
        done, span = cur.fetchone()
        if done == executions:
            break
        time.sleep(0.2)
    else:
        raise SystemExit("timed out: %d of %d completed" % (done, executions))
    cpu = sum(proc_cpu_seconds(p.pid) - b for p, b in zip(procs, cpu_before))
    rss = [proc_peak_rss_kib(p.pid) for p in procs]
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=30)
    return {"runners": runners, "executions": executions, "seconds": float(span),
            "per_second": executions / float(span), "cpu_ms_per_1000": 1000.0 * cpu / executions * 1000.0,
            "peak_rss_mib_per_runner": max(rss) / 1024.0}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    binary = os.environ.get("EXECGUARD_RUNNER_BIN", os.path.join(REPO, "build", "runner", "execguard-runner"))
    fake = subprocess.Popen(["/usr/bin/python3", os.path.join(REPO, "test", "fake_inference", "fake_server.py"),
                             "--port", "0"], stdout=subprocess.PIPE, text=True)
    fake_port = int(fake.stdout.readline())
    logdir = "/tmp/execguard-bench-runner"
    os.makedirs(logdir, exist_ok=True)
    conn = psycopg2.connect("")
    conn.autocommit = True
    try:
        print("runner benchmark: zero-latency fake server, %d executions per round, concurrency %d per runner"
              % (args.executions, args.concurrency))
        print("%-8s %10s %12s %18s %22s" % ("runners", "seconds", "exec/s", "CPU ms / 1000 exec",
                                             "peak RSS MiB / runner"))
        for runners in (1, 4):
            r = run_round(conn, fake_port, runners, args.executions, args.concurrency, binary, logdir)
            print("%-8d %10.2f %12.1f %18.1f %22.1f" % (r["runners"], r["seconds"], r["per_second"],
                                                        r["cpu_ms_per_1000"], r["peak_rss_mib_per_runner"]))
        print("(fake server: %d requests; runner logs in %s)" % (
            json.load(urllib.request.urlopen("http://127.0.0.1:%d/_requests" % fake_port))["count"], logdir))
    finally:
        fake.kill()
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
