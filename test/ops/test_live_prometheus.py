"""test/ops/test_live_prometheus.py: every dashboard panel and every rule of
the operations kit refers to series that real runners export.

Two runners do real work against the fake inference server while a real
Prometheus scrapes them every second and evaluates deploy/prometheus's rules.
The scenario causes each event the dashboard and the alerts are about: a
duplicate removed by submit_job, a duplicate claim, a stale write, a rescue
of a claim whose owner is gone, a server error, and rate limiting that opens
a circuit breaker. Then, through the HTTP API:

- every rule evaluates without error, and every alert has its annotations;
- every dashboard variable has values;
- for every panel expression and every rule expression:
  * each vector selector in it returns at least one series (and each word of
    a `label=~"a|b"` matcher does, on its own),
  * each label it groups or matches on is carried by those series,
  * the whole expression returns at least one series; an alert's expression
    is evaluated with `bool` comparisons, so it answers where its inputs
    exist rather than only while it fires.

No panel or alert can refer to a metric, label or label value the runners
do not export. Bounded: every wait has a deadline.
"""
import json
import os
import sys
import time

import psycopg2

from conftest import DASHBOARD, SCRAPE_JOB, e2e

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import promql_refs  # noqa: E402

wait_until = e2e.wait_until


def counter(prom, expr):
    result = prom.query(expr)
    return float(result[0]["value"][1]) if result else None


class Findings:
    """Collects every check, prints it, and fails the test at the end with all failures."""

    def __init__(self):
        self.failures = []
        self.count = 0

    def check(self, ok, what):
        self.count += 1
        print("  %s %s" % ("ok  " if ok else "FAIL", what))
        if not ok:
            self.failures.append(what)
        return ok


def check_expression(prom, findings, where, expr, whole_expr=None):
    """The selector, grouping and whole-expression checks of one expression."""
    try:
        selectors, grouping = promql_refs.references(expr)
    except (ValueError, IndexError) as e:
        findings.check(False, "%s: cannot list its selectors (%s): %s" % (where, e, expr))
        return
    labels = set()
    for selector in selectors:
        series = prom.query(selector.text())
        findings.check(len(series) > 0, "%s: %s has %d series" % (where, selector.text(), len(series)))
        for s in series:
            labels.update(s["metric"].keys())
        for alternative in selector.alternatives():
            n = len(prom.query(alternative))
            findings.check(n > 0, "%s: %s has %d series" % (where, alternative, n))
    missing = grouping - labels
    findings.check(not missing, "%s: groups and matches on labels its series carry (%s)"
                   % (where, ", ".join(sorted(grouping)) or "none"))
    whole_expr = whole_expr or expr
    n = len(prom.query(whole_expr))
    findings.check(n > 0, "%s: the whole expression returns %d series" % (where, n))


def test_every_panel_and_rule_expression_returns_series_from_real_runners(
        db, fake, start_runner, start_prometheus, job_id, region_prefix):
    ok_region = region_prefix + "-ok"
    limited_region = region_prefix + "-limited"

    # A rescue waiting for the runners: a claim whose owner's session is gone.
    # Only an owner-tracked claim is rescued when its session ends
    # (track_owner defaults to false since 0.6.0; an untracked one would wait
    # for its lease and count as an expired-lease rescue instead).
    rescue_job = job_id + "-rescue"
    db.submit_job(e2e.spec(rescue_job, ok_region, 1))
    owner = psycopg2.connect("")
    owner.autocommit = True
    with owner.cursor() as cur:
        cur.execute("SELECT outcome FROM execguard.claim_execution(%s, 'm1', %s, %s, 'gone-worker', "
                    "                                              track_owner => true)",
                    (rescue_job, ok_region, "question 0 of %s" % rescue_job))
        assert cur.fetchone()[0] == "claimed"
    owner.close()

    # Runner a serves a region whose provider rate-limits every call; its
    # breaker opens at the first 429 and stays open past the end of the test.
    fake.control(region=limited_region, mode="429")
    fake.control(region=ok_region, mode="500", count=1)
    runner_a = start_runner([ok_region, limited_region], "--model", "m1",
                            "--breaker-threshold", "1", "--breaker-cooldown", "120s")
    runner_b = start_runner([ok_region], "--model", "m1")
    prom = start_prometheus(["127.0.0.1:%d" % r.metrics_port for r in (runner_a, runner_b)])
    # The events below must come after Prometheus's first samples, or no
    # rate or increase could show them (its first scrape waits up to 5 s for
    # target discovery).
    wait_until(lambda: len(prom.query('count_over_time(execguard_db_up{job="%s"}[1m]) >= 2' % SCRAPE_JOB)) == 2,
               timeout=30, what="two scrapes of each runner")

    # Four model entries with one repeated (a duplicate removed by
    # normalisation); m2 is served by no runner and stays pending.
    spec = e2e.spec(job_id, ok_region, 4, models=("m1", "m1", "m2"))
    spec["constraints"]["regions"] = [ok_region, limited_region]
    assert db.submit_job(spec)["duplicates_removed"] >= 1
    wait_until(lambda: db.query("SELECT count(*) AS n FROM execguard.executions WHERE job_id = %s AND "
                                "region = %s AND model_id = 'm1' AND status = 'completed'",
                                (job_id, ok_region))[0]["n"] == 4, what="the ok region's executions")
    wait_until(lambda: db.status_counts(rescue_job) == {"completed": 1}, what="the rescued execution")
    wait_until(lambda: runner_a.metric('execguard_runner_inference_errors_total{class="rate_limit",region="%s"}'
                                       % limited_region) >= 1, what="a rate-limited call")
    # A duplicate claim (the unit is completed) and a stale heartbeat.
    first = db.executions(job_id)[0]
    duplicate = db.query("SELECT outcome FROM execguard.claim_execution(%s, %s, %s, %s)",
                         (job_id, first["model_id"], first["region"], "question 0 of %s" % job_id))
    assert duplicate[0]["outcome"] in ("completed", "running")
    assert db.query("SELECT execguard.heartbeat(%s, 987654321) AS held", (first["execution_id"],))[0]["held"] is False
    stats = db.stats()

    # Prometheus has scraped the events and evaluated the rules on them.
    expected = {
        'max(execguard_db_duplicates_prevented_total{layer="claim"})': stats["duplicates_prevented_claim"],
        'max(execguard_db_duplicates_prevented_total{layer="normalization"})':
            stats["duplicates_prevented_normalization"],
        "max(execguard_db_stale_writes_rejected_total)": stats["stale_writes_rejected"],
        'max(execguard_db_leases_rescued_total{reason="owner_gone"})': stats["leases_rescued_owner_gone"],
        'sum(execguard_runner_inference_errors_total{class="server_error"})': 1,
        'sum(execguard_runner_inference_errors_total{class="rate_limit"})': 1,
        "sum(execguard_runner_circuit_breaker_opened_total)": 1,
    }
    for expr, at_least in expected.items():
        wait_until(lambda: (counter(prom, expr) or 0) >= at_least, timeout=30,
                   what="Prometheus to see %s >= %s" % (expr, at_least))

    def rules_evaluated():
        groups = prom.api("rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return rules if rules and all(r["health"] == "ok" for r in rules) else None
    rules = wait_until(rules_evaluated, timeout=30, what="every rule to be evaluated without error")

    # The alerts behave on the real events: one stale write fires at once;
    # the rate-limited region's breaker is pending (for: 15m).
    def alert_states():
        return {(a["labels"]["alertname"], a["labels"].get("region")): a["state"]
                for a in prom.api("alerts")["alerts"]}
    expected_states = {("ExecguardStaleWritesRejected", None): "firing",
                       ("ExecguardCircuitBreakerOpen", limited_region): "pending"}
    wait_until(lambda: all(alert_states().get(k) == v for k, v in expected_states.items()), timeout=30,
               what="the stale-write alert to fire and the breaker alert to be pending")

    findings = Findings()
    print("\nrules (%d)" % len(rules))
    for rule in [r for g in prom.api("rules")["groups"] for r in g["rules"]]:
        name = rule["name"]
        findings.check(rule["health"] == "ok" and not rule.get("lastError"),
                       "rule %s evaluates without error %s" % (name, rule.get("lastError") or ""))
        if rule["type"] == "recording":
            check_expression(prom, findings, "record %s" % name, rule["query"])
            findings.check(len(prom.query(name)) > 0, "record %s has series" % name)
        else:
            annotations = rule.get("annotations", {})
            findings.check(all(annotations.get(k) for k in ("summary", "description", "runbook_url")),
                           "alert %s has summary, description and runbook_url" % name)
            check_expression(prom, findings, "alert %s" % name, rule["query"],
                             whole_expr=promql_refs.boolified(rule["query"]))

    states = alert_states()
    for (alertname, region), state in expected_states.items():
        findings.check(states.get((alertname, region)) == state, "alert %s%s is %s after the events"
                       % (alertname, " (region %s)" % region if region else "", state))

    with open(DASHBOARD) as f:
        dashboard = json.load(f)
    print("dashboard variables")
    values = {}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "datasource":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        selector, label = promql_refs.label_values_query(query)
        selector = promql_refs.substitute(selector, values)
        series = prom.api("series", **{"match[]": selector, "start": "%.0f" % (time.time() - 300),
                                       "end": "%.0f" % time.time()})
        found = sorted({s[label] for s in series if label in s})
        findings.check(len(found) > 0, "variable $%s = label_values(%s, %s): %s" % (
            variable["name"], selector, label, ", ".join(found)))
        values[variable["name"]] = promql_refs.grafana_regex_value(found or ["none"])
    for name, expect in (("job", [SCRAPE_JOB]), ("region", [limited_region, ok_region])):
        findings.check(values.get(name) == promql_refs.grafana_regex_value(expect),
                       "variable $%s covers %s" % (name, ", ".join(expect)))

    print("dashboard panels")
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    for panel in panels:
        for target in panel["targets"]:
            where = "panel %r %s" % (panel["title"], target["refId"])
            check_expression(prom, findings, where, promql_refs.substitute(target["expr"], values))

    print("%d checks, %d failed (%d rules, %d panels)" % (findings.count, len(findings.failures), len(rules),
                                                         len(panels)))
    assert not findings.failures, "\n".join(findings.failures)
