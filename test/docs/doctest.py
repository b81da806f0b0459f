#!/usr/bin/python3
"""test/docs/doctest.py: the SQL examples of README.md and docs/*.md, run.

    test/docs/doctest.py [--keep] [--show-actual] [FILE.md ...]

Every ```sql block of a document runs, verbatim and in the order written,
in one psql session per document (state carries over, as it does for a
reader who follows the document in psql), against a new database with
CREATE EXTENSION execguard in a throwaway cluster (scripts/pgcluster.sh,
which preloads execguard). What psql prints is compared with the ```text
block that follows the SQL block. test/docs/README.md describes the format
for the people who write the documents; in short:

  ```sql                      the example, exactly as a reader types it
  SELECT ...;
  ```
  ```text                     what psql (aligned output, no psqlrc)
   column                     prints for it, errors and notices included;
  --------                    only blank lines may stand between the two
   value                      blocks
  (1 row)
  ```

  <!-- doctest: skip (reason) -->       before a block: not run, and counted
  <!-- doctest: no-extension -->        before a document's first SQL block:
                                        the database starts without the
                                        extension (the block creates it)
  <!-- doctest: excerpt PATH -->        before a block of client code: its
                                        lines must appear, in order and
                                        contiguous, in PATH (a line "..."
                                        stands for lines left out)

Why psql's own output, and not "-- result" comments: it is what a reader
sees when trying the example, it leaves nothing to interpret (a comment
written by hand drifts: ids, widths, which statement a comment belongs to),
and the SQL block stays a clean copy-and-paste. The price is that a block
of several statements shows their outputs one after another, so documents
keep blocks short.

Comparison: exact, line by line, after removing trailing spaces (psql pads
headers; editors strip them) and the blank lines around the output. The
only values that may differ between runs are written as placeholders, and
a block that uses one is compared with runs of spaces and of dashes
collapsed (the widths of psql's columns follow the values):

  <timestamp>   a timestamp or timestamptz, e.g. 2025-01-31 12:00:00.123+00
  <interval>    an interval, e.g. 00:00:59.98 or 1 day 02:00:00
  <pid>         a backend's process id (an integer)

A SQL block with no output block after it must print no ERROR, WARNING,
FATAL or PANIC and is reported as "run, output not shown". Client-language
blocks (python, javascript, go, ...) must be skipped or be an excerpt.

Prints one line per document ("PASS file: ..." or "FAIL file: ..."), a
unified diff with file and line numbers for each block that does not
match, and ends with "N passed, N failed" (one test per document). Exit 0
only when every document passes.

--keep keeps the cluster (its folder is printed); --show-actual prints what
each block printed, for writing a new example (check it before pasting).
The cluster is PG_MAJOR's (scripts/lib.sh), in a folder of its own, so this
can run beside other suites.
"""

import argparse
import difflib
import glob
import os
import re
import signal
import subprocess
import sys
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

PLACEHOLDERS = {
    "<timestamp>": r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}(?::\d{2})?)?",
    "<interval>": (r"(?:(?:-?\d+ (?:years?|mons?|days?) ?)+(?:-?\d{2}:\d{2}:\d{2}(?:\.\d+)?)?"
                   r"|-?\d{2}:\d{2}:\d{2}(?:\.\d+)?)"),
    "<pid>": r"\d+",
}
PLACEHOLDER_RE = re.compile("|".join(re.escape(p) for p in PLACEHOLDERS))

# Blocks of code in a client language: shown only as excerpts of a file
# that a test runs (see the module docstring).
CLIENT_LANGUAGES = {
    "python", "py", "javascript", "js", "node", "typescript", "ts", "go",
    "golang", "java", "rust", "ruby", "rb", "php", "csharp", "cs", "c",
    "cpp", "c++",
}

FENCE_RE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
DIRECTIVE_RE = re.compile(r"^\s*<!--\s*doctest:\s*(?P<body>.*?)\s*-->\s*$")
BAD_OUTPUT_RE = re.compile(r"^(ERROR|WARNING|FATAL|PANIC):|^psql:|^invalid command", re.M)


class Block:
    def __init__(self, lang, start, end, lines, directives):
        self.lang = lang  # the info string's first word, lower-cased
        self.start = start  # 1-based line of the opening fence
        self.end = end  # 1-based line of the closing fence
        self.lines = lines  # content, fence indentation removed
        self.directives = directives  # [(line, text)] just before the block
        self.output = None  # the ```text block that shows a SQL block's output


class DocError(Exception):
    pass


def parse(path):
    """The fenced blocks of a Markdown file, with their directives."""
    rel = os.path.relpath(path, ROOT)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read().split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise DocError(f"{rel}: {e}")
    blocks = []
    pending = []  # directives waiting for their block
    i = 0
    while i < len(text):
        line = text[i]
        m = DIRECTIVE_RE.match(line)
        if m:
            pending.append((i + 1, m.group("body")))
            i += 1
            continue
        if "doctest:" in line and "<!--" in line:
            raise DocError(f"{rel}:{i + 1}: a doctest directive must be a comment on a line of its own")
        m = FENCE_RE.match(line)
        if m:
            indent = len(m.group("indent"))
            fence = m.group("fence")
            info = m.group("info").strip()
            lang = info.split()[0].lower() if info else ""
            body = []
            j = i + 1
            while j < len(text):
                close = re.match(r"^[ \t]*(`{3,}|~{3,})[ \t]*$", text[j])
                if close and close.group(1)[0] == fence[0] and len(close.group(1)) >= len(fence):
                    break
                raw = text[j]
                # Remove the fence's indentation (a block inside a list item).
                k = 0
                while k < indent and k < len(raw) and raw[k] in " \t":
                    k += 1
                body.append(raw[k:])
                j += 1
            if j >= len(text):
                raise DocError(f"{rel}:{i + 1}: the block is never closed")
            blocks.append(Block(lang, i + 1, j + 1, body, pending))
            pending = []
            i = j + 1
            continue
        if pending and line.strip():
            raise DocError(f"{rel}:{pending[0][0]}: a doctest directive must come right before a block "
                           "(only blank lines between)")
        i += 1
    if pending:
        raise DocError(f"{rel}:{pending[0][0]}: a doctest directive with no block after it")

    # Pair each SQL block with the ```text block right after it.
    paired = []
    for b in blocks:
        prev = paired[-1] if paired else None
        if (b.lang == "text" and prev is not None and prev.lang == "sql" and prev.output is None
                and not b.directives
                and all(not t.strip() for t in text[prev.end:b.start - 1])):
            prev.output = b
            continue
        paired.append(b)
    return paired


def directive_kinds(block, rel):
    """{'skip': reason, 'excerpt': path, 'no-extension': True} for a block."""
    kinds = {}
    for line, body in block.directives:
        m = re.fullmatch(r"skip\s*\((?P<reason>.+)\)", body)
        if m:
            kinds["skip"] = m.group("reason").strip()
            continue
        if body == "skip" or body.startswith("skip "):
            raise DocError(f"{rel}:{line}: a skip needs its reason: <!-- doctest: skip (why) -->")
        m = re.fullmatch(r"excerpt:?\s+(?P<path>\S+)", body)
        if m:
            kinds["excerpt"] = m.group("path")
            continue
        if body == "no-extension":
            kinds["no-extension"] = True
            continue
        raise DocError(f"{rel}:{line}: unknown doctest directive '{body}'")
    return kinds


def sql_without_comments(lines):
    """The block's SQL with comments and string contents removed, enough to
    see whether it ends with a complete statement."""
    src = "\n".join(lines)
    out = []
    i = 0
    n = len(src)
    while i < n:
        c = src[i]
        if src.startswith("--", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c in "'\"":
            j = i + 1
            while j < n:
                if src[j] == c:
                    if j + 1 < n and src[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            out.append(c + c)
            i = j + 1
        elif c == "$":
            m = re.match(r"\$[A-Za-z_]*\$", src[i:])
            if m:
                tag = m.group(0)
                j = src.find(tag, i + len(tag))
                out.append(tag + tag)
                i = n if j < 0 else j + len(tag)
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def ends_complete(lines):
    code = sql_without_comments(lines).strip()
    if not code:
        return False
    last = code.split("\n")[-1].strip()
    return code.endswith(";") or last.startswith("\\")


def clean(text):
    """Output lines without trailing spaces and without blank lines around."""
    lines = [l.rstrip() for l in text.split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def loose(line):
    """A line with its widths removed: runs of spaces and of dashes."""
    return re.sub(r"-{2,}", "-", re.sub(r"\s+", " ", line.strip()))


def line_pattern(expected_line):
    parts = PLACEHOLDER_RE.split(loose(expected_line))
    holes = PLACEHOLDER_RE.findall(loose(expected_line))
    pattern = re.escape(parts[0])
    for hole, part in zip(holes, parts[1:]):
        pattern += "(?:" + PLACEHOLDERS[hole] + ")" + re.escape(part)
    return re.compile(pattern)


def compare(expected, actual):
    """(matches, actual lines to show in a diff)."""
    if not PLACEHOLDER_RE.search("\n".join(expected)):
        return expected == actual, actual
    shown = []
    ok = len(expected) == len(actual)
    for i, line in enumerate(actual):
        if i < len(expected) and line_pattern(expected[i]).fullmatch(loose(line)):
            shown.append(expected[i])
        else:
            ok = False
            shown.append(line)
    return ok, shown


def check_excerpt(block, path, rel):
    """None when the block's lines appear in the file, else why not."""
    full = os.path.join(ROOT, path)
    if not os.path.isfile(full):
        return f"{rel}:{block.start}: the excerpt's file {path} does not exist"
    with open(full, encoding="utf-8") as f:
        source = [l.rstrip() for l in f.read().split("\n")]
    segments = [[]]
    for line in block.lines:
        if line.strip() == "...":
            segments.append([])
        else:
            segments[-1].append(line.rstrip())
    segments = [s for s in segments if s]
    pos = 0
    for seg in segments:
        found = -1
        for start in range(pos, len(source) - len(seg) + 1):
            window = source[start:start + len(seg)]
            if dedent(window) == dedent(seg):
                found = start
                break
        if found < 0:
            return (f"{rel}:{block.start}: these lines of the excerpt are not in {path} "
                    f"(in this order, after line {pos}):\n" + "\n".join("  | " + l for l in seg))
        pos = found + len(seg)
    return None


def dedent(lines):
    widths = [len(l) - len(l.lstrip()) for l in lines if l.strip()]
    cut = min(widths) if widths else 0
    return [l[cut:] if l.strip() else "" for l in lines]


def default_documents():
    docs = [os.path.join(ROOT, "README.md")]
    for path in sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if re.search(r"^[ \t]*(```|~~~)[ \t]*(sql|" + "|".join(re.escape(l) for l in CLIENT_LANGUAGES)
                     + r")\b", text, re.M | re.I) or "doctest:" in text:
            docs.append(path)
    return docs


class Cluster:
    def __init__(self, keep):
        self.keep = keep
        name = f"doctest-{os.getpid()}"
        self.dir = subprocess.run(
            ["bash", "-c", f'. "{ROOT}/scripts/lib.sh" && eg_cluster_dir {name}'],
            check=True, capture_output=True, text=True).stdout.strip()
        run = subprocess.run([os.path.join(ROOT, "scripts", "pgcluster.sh"), "start", self.dir],
                             capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError("could not start a cluster:\n" + run.stdout + run.stderr)
        env = {}
        with open(os.path.join(self.dir, "env")) as f:
            for line in f:
                m = re.match(r"export (\w+)='(.*)'$", line.strip()) or re.match(r"export (\w+)=(.*)$", line.strip())
                if m:
                    env[m.group(1)] = m.group(2)
        with open(os.path.join(self.dir, "pg_bin")) as f:
            self.psql = os.path.join(f.read().strip(), "psql")
        # Only what names the server: no PGOPTIONS, psqlrc or client encoding
        # of the caller's, and psql's own messages in English.
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("PG") and k not in ("PSQLRC", "LANG", "LANGUAGE") and not k.startswith("LC_")}
        self.env.update({k: env[k] for k in ("PGHOST", "PGPORT", "PGUSER")})
        self.env["LC_ALL"] = "C.UTF-8"

    def psql_run(self, database, script, timeout=300):
        return subprocess.run([self.psql, "-X", "-d", database], input=script, env=self.env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout)

    def admin(self, sql):
        run = subprocess.run([self.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c", sql],
                             env=self.env, capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"{sql}: {run.stderr}")

    def stop(self):
        if self.keep:
            print(f"cluster kept: {self.dir} (scripts/pgcluster.sh destroy {self.dir})")
            return
        subprocess.run([os.path.join(ROOT, "scripts", "pgcluster.sh"), "destroy", self.dir],
                       capture_output=True)


def marker(i):
    return f"@@doctest end of block {i}@@"


def run_document(cluster, number, path, show_actual):
    """(passed, summary, messages) for one document."""
    rel = os.path.relpath(path, ROOT)
    messages = []
    try:
        blocks = parse(path)
        kinds = [directive_kinds(b, rel) for b in blocks]
    except DocError as e:
        return False, "cannot be read", [str(e)]

    to_run = []  # (index, block)
    skipped = []  # (block, reason)
    excerpts = 0
    problems = []
    first_sql = True
    no_extension = False
    for b, k in zip(blocks, kinds):
        if "skip" in k:
            skipped.append((b, k["skip"]))
            continue
        if "no-extension" in k:
            if b.lang != "sql" or not first_sql:
                problems.append(f"{rel}:{b.start}: no-extension belongs before the document's first SQL block")
            no_extension = True
        if "excerpt" in k:
            if b.lang == "sql":
                problems.append(f"{rel}:{b.start}: a SQL block runs; it cannot be an excerpt")
                continue
            excerpts += 1
            why = check_excerpt(b, k["excerpt"], rel)
            if why:
                problems.append(why)
            continue
        if b.lang in CLIENT_LANGUAGES:
            problems.append(f"{rel}:{b.start}: {b.lang} code must be an excerpt of a file that a test runs "
                            "(<!-- doctest: excerpt PATH -->) or be skipped with a reason")
            continue
        if b.lang == "sql":
            first_sql = False
            if not ends_complete(b.lines):
                problems.append(f"{rel}:{b.start}: the block does not end with a complete statement "
                                "(a semicolon or a backslash command)")
                continue
            to_run.append(b)

    compared = 0
    unshown = 0
    mismatched = 0
    if to_run and not problems:
        database = f"doctest_{number}"
        cluster.admin(f"DROP DATABASE IF EXISTS {database}")
        cluster.admin(f"CREATE DATABASE {database}")
        if not no_extension:
            run = cluster.psql_run(database, "CREATE EXTENSION execguard;\n")
            if "ERROR" in run.stdout:
                return False, "CREATE EXTENSION failed", [run.stdout]
        script = []
        for i, b in enumerate(to_run):
            script.append("\n".join(b.lines))
            script.append(f"\\echo '{marker(i)}'")
        started = time.monotonic()
        try:
            run = cluster.psql_run(database, "\n".join(script) + "\n")
        except subprocess.TimeoutExpired:
            return False, "psql did not finish in 300 s (a statement waits on something?)", []
        elapsed = time.monotonic() - started
        output = run.stdout
        for i, b in enumerate(to_run):
            mark = marker(i) + "\n"
            if mark not in output:
                problems.append(f"{rel}:{b.start}: psql stopped before the end of this block "
                                f"(exit {run.returncode}); it printed:\n{output}")
                break
            actual_text, output = output.split(mark, 1)
            actual = clean(actual_text)
            if show_actual:
                print(f"--- {rel}:{b.start} printed:")
                print("```text\n" + "\n".join(actual) + "\n```" if actual else "(nothing)")
            if b.output is None:
                unshown += 1
                if BAD_OUTPUT_RE.search("\n".join(actual)):
                    mismatched += 1
                    messages.append(f"{rel}:{b.start}: this block shows no output, but it failed:\n"
                                    + "\n".join("  " + l for l in actual))
                continue
            compared += 1
            expected = clean("\n".join(b.output.lines))
            ok, shown = compare(expected, actual)
            if not ok:
                mismatched += 1
                diff = difflib.unified_diff(
                    expected, shown,
                    fromfile=f"{rel}:{b.output.start + 1} (shown for the SQL block at line {b.start})",
                    tofile="what psql printed", lineterm="")
                messages.append("\n".join(diff))
    else:
        elapsed = 0.0
    messages = problems + messages
    passed = not problems and mismatched == 0
    summary = (f"{compared} blocks compared, {unshown} run with no output shown, "
               f"{excerpts} excerpts checked, {len(skipped)} skipped"
               + (f", {mismatched} wrong" if mismatched else "")
               + (f", {len(problems)} problems" if problems else "")
               + f" ({elapsed:.1f} s)")
    for b, reason in skipped:
        messages.append(f"  skipped {rel}:{b.start} ({b.lang or 'no language'}): {reason}")
    return passed, summary, messages


def main():
    ap = argparse.ArgumentParser(description="Runs the SQL examples of the documentation.")
    ap.add_argument("documents", nargs="*", help="Markdown files (default: README.md and docs/*.md with SQL)")
    ap.add_argument("--keep", action="store_true", help="keep the cluster")
    ap.add_argument("--show-actual", action="store_true", help="print what each block printed")
    args = ap.parse_args()
    documents = [os.path.abspath(d) for d in args.documents] or default_documents()

    started = time.monotonic()
    # A SIGTERM (a timeout of the caller) still destroys the cluster.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cluster = Cluster(args.keep)
    passed = failed = 0
    try:
        for number, path in enumerate(documents, 1):
            ok, summary, messages = run_document(cluster, number, path, args.show_actual)
            rel = os.path.relpath(path, ROOT)
            print(f"{'PASS' if ok else 'FAIL'} {rel}: {summary}")
            for m in messages:
                print(m)
            sys.stdout.flush()
            if ok:
                passed += 1
            else:
                failed += 1
    finally:
        cluster.stop()
    print(f"doctest: {len(documents)} documents in {time.monotonic() - started:.1f} s")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
