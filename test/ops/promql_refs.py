"""test/ops/promql_refs.py: what a PromQL expression refers to, for the
operations-kit checks (test/ops/run.sh).

Not a PromQL parser: a tokenizer that is enough to list an expression's
vector selectors (metric name and label matchers), the label names it groups
or matches on (by, without, on, ignoring, group_left, group_right), and to
turn its comparisons into `bool` comparisons. Syntax itself is checked by
promtool and by Prometheus, never here.

Glossary:
  selector   `name{label="value", ...}` or `{...}`, without range or offset
  grouping   a label named in by (...), without (...), on (...), ...
  boolified  the expression with `bool` after every comparison operator, so
             an alert's expression returns a 0/1 series wherever its inputs
             exist instead of only while it fires
"""
import re

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<number>(?:\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?:(?:ms|s|m|h|d|w|y)(?:\d+(?:ms|s|m|h|d|w|y))*)?)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|==|!=|>=|<=|[-+*/%^<>=,(){}\[\]@])
""", re.VERBOSE)

_GROUPING_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = _GROUPING_KEYWORDS | {"bool", "offset", "and", "or", "unless", "atan2", "inf", "nan"}
_COMPARISONS = {"==", "!=", ">", "<", ">=", "<="}
_AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
                 "topk", "quantile"}


class Token:
    def __init__(self, kind, text, start, end):
        self.kind, self.text, self.start, self.end = kind, text, start, end

    def __repr__(self):
        return "%s(%r)" % (self.kind, self.text)


def tokenize(expr):
    tokens = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise ValueError("cannot read PromQL at %r" % expr[pos:pos + 30])
        if m.lastgroup != "space":
            tokens.append(Token(m.lastgroup, m.group(), m.start(), m.end()))
        pos = m.end()
    return tokens


class Selector:
    """A vector selector: metric name (or None) and its matchers (label, op, value)."""

    def __init__(self, name, matchers):
        self.name, self.matchers = name, matchers

    def text(self, matchers=None):
        matchers = self.matchers if matchers is None else matchers
        inner = ", ".join('%s%s"%s"' % (label, op, value.replace("\\", "\\\\").replace('"', '\\"'))
                          for label, op, value in matchers)
        return (self.name or "") + ("{%s}" % inner if inner or not self.name else "")

    def alternatives(self):
        """For every `label=~"a|b|c"` matcher of plain words, one selector per word
        (so a misspelt alternative is not hidden by the ones that exist)."""
        out = []
        for i, (label, op, value) in enumerate(self.matchers):
            if op == "=~" and re.fullmatch(r"[A-Za-z0-9_:.-]+(\|[A-Za-z0-9_:.-]+)+", value):
                for word in value.split("|"):
                    m = list(self.matchers)
                    m[i] = (label, "=", word)
                    out.append(self.text(m))
        return out

    def __repr__(self):
        return self.text()


def _unquote(s):
    if s[0] == "`":
        return s[1:-1]
    return re.sub(r"\\(.)", r"\1", s[1:-1])


def _read_matchers(tokens, i):
    """tokens[i] is '{'; returns (matchers, index after '}')."""
    matchers = []
    i += 1
    while tokens[i].text != "}":
        if tokens[i].text == ",":
            i += 1
            continue
        label, op, value = tokens[i].text, tokens[i + 1].text, tokens[i + 2]
        if value.kind != "string":
            raise ValueError("unexpected matcher value %r" % value.text)
        matchers.append((label, op, _unquote(value.text)))
        i += 3
    return matchers, i + 1


def references(expr):
    """(selectors, grouping labels) of an expression."""
    tokens = tokenize(expr)
    selectors, grouping = [], set()
    i = 0
    while i < len(tokens):
        t = tokens[i]
        nxt = tokens[i + 1].text if i + 1 < len(tokens) else None
        if t.kind == "ident" and t.text in _GROUPING_KEYWORDS:
            i += 1
            if nxt == "(":
                i += 1
                while tokens[i].text != ")":
                    if tokens[i].kind == "ident":
                        grouping.add(tokens[i].text)
                    i += 1
                i += 1
            continue
        if t.kind == "ident" and t.text in _AGGREGATIONS and nxt in ("by", "without"):
            i += 1
            continue
        if t.kind == "ident" and t.text.lower() not in _KEYWORDS and nxt != "(":
            if nxt == "{":
                matchers, i = _read_matchers(tokens, i + 1)
            else:
                matchers, i = [], i + 1
            selectors.append(Selector(t.text, matchers))
            continue
        if t.text == "{":
            matchers, i = _read_matchers(tokens, i)
            selectors.append(Selector(None, matchers))
            continue
        if t.text == "[":  # a range or subquery: durations only
            while tokens[i].text != "]":
                i += 1
        i += 1
    return selectors, grouping


def boolified(expr):
    """expr with `bool` after every comparison operator outside braces."""
    tokens = tokenize(expr)
    out, last, depth = [], 0, 0
    for k, t in enumerate(tokens):
        if t.text == "{":
            depth += 1
        elif t.text == "}":
            depth -= 1
        elif depth == 0 and t.kind == "op" and t.text in _COMPARISONS:
            already = k + 1 < len(tokens) and tokens[k + 1].text == "bool"
            if not already:
                out.append(expr[last:t.end] + " bool")
                last = t.end
    out.append(expr[last:])
    return "".join(out)


# --- Grafana ------------------------------------------------------------------

GRAFANA_INTERVALS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}


_GRAFANA_VARIABLE = re.compile(r"\$\{?(\w+)(?::\w+)?\}?|\[\[(\w+)\]\]")


def grafana_variables(expr):
    """Names of the $var / ${var} / [[var]] references in a panel expression."""
    return {a or b for a, b in _GRAFANA_VARIABLE.findall(expr)}


def grafana_regex_value(values):
    """What Grafana's Prometheus data source puts in place of a multi-value
    variable: the values, regex-escaped, as one alternation."""
    escaped = [re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\\\1", v) for v in values]
    return "(" + "|".join(escaped) + ")"


def substitute(expr, values):
    """Replaces Grafana's variables: `values` maps a name to its text."""
    def repl(m):
        name = m.group(1) or m.group(2)
        if name in values:
            return values[name]
        if name in GRAFANA_INTERVALS:
            return GRAFANA_INTERVALS[name]
        raise KeyError("unknown Grafana variable $%s in %r" % (name, expr))
    return _GRAFANA_VARIABLE.sub(repl, expr)


def label_values_query(query):
    """label_values(selector, label) -> (selector, label)."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query, re.S)
    if not m:
        raise ValueError("not a label_values(...) query: %r" % query)
    return m.group(1).strip(), m.group(2)
