#!/usr/bin/python3
"""test/ops/check_static.py: the checks of the operations kit that need no server.

- deploy/grafana/execguard.json: valid JSON; every panel but rows has a
  datasource that is the dashboard's ${datasource} variable and at least one
  target with an expression; ids unique; panels do not overlap; every
  template variable is the data source or a label_values(...) query; every
  expression and variable selector is valid PromQL (promtool parses them as
  recording rules in a temporary file) and names only known variables.
- deploy/prometheus/execguard.rules.yml: every alert has a runbook_url that
  names a heading of docs/operations.md.

Prints each check; exit 0 when all pass.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)

import promql_refs  # noqa: E402

DASHBOARD = os.path.join(REPO, "deploy", "grafana", "execguard.json")
RULES = os.path.join(REPO, "deploy", "prometheus", "execguard.rules.yml")
OPERATIONS_DOC = os.path.join(REPO, "docs", "operations.md")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

failures = []


def check(ok, what):
    print("  %s %s" % ("ok  " if ok else "FAIL", what))
    if not ok:
        failures.append(what)
    return ok


def panels_of(dashboard):
    for panel in dashboard["panels"]:
        yield panel
        for inner in panel.get("panels", []):  # panels of a collapsed row
            yield inner


def dashboard_checks():
    with open(DASHBOARD) as f:
        dashboard = json.load(f)
    check(bool(dashboard.get("uid")) and bool(dashboard.get("title")), "dashboard has a uid and a title")
    variables = dashboard["templating"]["list"]
    names = [v["name"] for v in variables]
    check(any(v["name"] == "datasource" and v["type"] == "datasource" and v["query"] == "prometheus"
              for v in variables), "a 'datasource' variable of type datasource selects the Prometheus data source")

    expressions = []  # (where, expression with variables replaced)
    placeholders = {name: promql_refs.grafana_regex_value(["placeholder"]) for name in names}
    for v in variables:
        if v["type"] == "datasource":
            continue
        where = "variable $%s" % v["name"]
        if not check(v["type"] == "query" and v.get("datasource") == DATASOURCE,
                     "%s is a query on ${datasource}" % where):
            continue
        query = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        try:
            selector, _label = promql_refs.label_values_query(query)
        except ValueError as e:
            check(False, "%s: %s" % (where, e))
            continue
        earlier = names[:names.index(v["name"])]
        unknown = promql_refs.grafana_variables(selector) - set(earlier)
        check(not unknown, "%s refers only to variables defined before it (%s)" % (where, sorted(unknown) or "ok"))
        expressions.append((where, promql_refs.substitute(selector, placeholders)))

    ids = set()
    cells = {}
    for panel in panels_of(dashboard):
        where = "panel %s %r" % (panel.get("id"), panel.get("title"))
        check(panel.get("id") not in ids, "%s: id is unique" % where)
        ids.add(panel.get("id"))
        pos = panel["gridPos"]
        overlaps = [cells[(x, y)] for x in range(pos["x"], pos["x"] + pos["w"])
                    for y in range(pos["y"], pos["y"] + pos["h"]) if (x, y) in cells]
        check(not overlaps and pos["x"] + pos["w"] <= 24, "%s: inside the grid, overlaps nothing" % where)
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                cells[(x, y)] = panel.get("id")
        if panel["type"] == "row":
            continue
        check(panel.get("datasource") == DATASOURCE, "%s: datasource is ${datasource}" % where)
        targets = panel.get("targets") or []
        if not check(len(targets) > 0, "%s: has targets" % where):
            continue
        for t in targets:
            twhere = "%s target %s" % (where, t.get("refId"))
            if not check(bool((t.get("expr") or "").strip()), "%s: has an expression" % twhere):
                continue
            check(t.get("datasource", DATASOURCE) == DATASOURCE, "%s: datasource is ${datasource}" % twhere)
            try:
                expressions.append((twhere, promql_refs.substitute(t["expr"], placeholders)))
            except KeyError as e:
                check(False, "%s: %s" % (twhere, e))

    # promtool parses each expression as a recording rule.
    promtool = shutil.which("promtool")
    if not check(promtool is not None, "promtool found (Debian package 'prometheus')"):
        return
    rules = {"groups": [{"name": "dashboard_expressions", "rules": [
        {"record": "dashboard:expression_%d" % i, "expr": expr} for i, (_where, expr) in enumerate(expressions)]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yml", prefix="execguard-dashboard-") as f:
        json.dump(rules, f)  # JSON is YAML
        f.flush()
        result = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
    check(result.returncode == 0, "promtool parses all %d dashboard expressions and variable selectors"
          % len(expressions))
    if result.returncode != 0:
        # promtool names the failing rule: ... "dashboard:expression_N": could not parse ...
        for line in (result.stdout + result.stderr).splitlines():
            m = re.search(r'"dashboard:expression_(\d+)": (.*)', line)
            if m:
                where, expr = expressions[int(m.group(1))]
                print("    %s: %s\n      %s" % (where, m.group(2), expr))
            elif line.strip():
                print("    " + line)
    for where, expr in expressions:
        try:
            promql_refs.references(expr)
        except (ValueError, IndexError) as e:
            check(False, "%s: cannot list its selectors: %s" % (where, e))


def github_anchor(heading):
    """The id GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_checks():
    with open(RULES) as f:
        rules_text = f.read()
    alerts = re.findall(r"^\s*- alert:\s*(\S+)", rules_text, re.M)
    runbooks = re.findall(r"^\s*runbook_url:\s*\"?([^\"\s]+)\"?", rules_text, re.M)
    check(len(alerts) > 0 and len(runbooks) == len(alerts), "every one of the %d alerts has a runbook_url"
          % len(alerts))
    if not check(os.path.exists(OPERATIONS_DOC), "docs/operations.md exists"):
        return
    with open(OPERATIONS_DOC) as f:
        anchors = {github_anchor(m) for m in re.findall(r"^#+\s+(.*)$", f.read(), re.M)}
    for url in runbooks:
        path, _, anchor = url.partition("#")
        check(path == "docs/operations.md" and anchor in anchors, "runbook %s names a heading of docs/operations.md"
              % url)
    for alert in alerts:
        check(alert.lower() in anchors, "docs/operations.md has a section %s" % alert)


def main():
    print("dashboard %s" % os.path.relpath(DASHBOARD, REPO))
    dashboard_checks()
    print("runbooks %s" % os.path.relpath(RULES, REPO))
    runbook_checks()
    if failures:
        print("%d static check(s) failed" % len(failures))
        return 1
    print("static checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
