#!/usr/bin/env python3
"""test/packaging/validate_meta.py: checks a META.json against the PGXN Meta
Spec, version 1.0.x (https://pgxn.org/meta/spec.txt).

Debian has no package of PGXN's own validators (the Perl PGXN::Meta::Validator
and the Rust pgxn_meta crate are not packaged for Debian 12), so this is a
small independent implementation of the spec's rules: the required keys,
the type and format of every key the spec defines, and that any other key
is a custom one (x_ or X_ prefix). Written from the spec's text; it does not
check that URIs resolve or that email addresses exist.

    validate_meta.py META.json     prints each problem, exits 1 if any
    validate_meta.py --self-test   checks the checker on documents that
                                   must pass and documents that must fail
"""
import json
import re
import sys

# Semantic Versioning 2.0.0, as the spec requires for every version.
SEMVER = (r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
          r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
          r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?")
SEMVER_RE = re.compile("^" + SEMVER + "$")
# A version range: "0", a version, or an operator and a version; several
# joined by commas.
RANGE_PART_RE = re.compile(r"^\s*(?:(?:==|!=|<=|>=|<|>)\s*)?(?:" + SEMVER + r"|0)\s*$")

LICENSES = {
    "agpl_3", "apache_1_1", "apache_2_0", "artistic_1", "artistic_2", "bsd",
    "freebsd", "gfdl_1_2", "gfdl_1_3", "gpl_1", "gpl_2", "gpl_3", "lgpl_2_1",
    "lgpl_3_0", "mit", "mozilla_1_0", "mozilla_1_1", "openssl", "perl_5",
    "postgresql", "qpl_1_0", "ssleay", "sun", "zlib", "open_source",
    "restricted", "unrestricted", "unknown",
}
REQUIRED = ["name", "version", "abstract", "maintainer", "license", "provides", "meta-spec"]
OPTIONAL = ["description", "generated_by", "tags", "no_index", "prereqs", "release_status", "resources"]
PHASES = {"configure", "build", "test", "runtime", "develop"}
RELATIONSHIPS = {"requires", "recommends", "suggests", "conflicts"}
SPEC_URLS = {"https://pgxn.org/meta/spec.txt", "http://pgxn.org/meta/spec.txt"}
URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def is_custom(key):
    return isinstance(key, str) and len(key) > 2 and key[:2] in ("x_", "X_")


def has_control(text):
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


class Checker:
    def __init__(self):
        self.problems = []

    def fail(self, where, what):
        self.problems.append(f"{where}: {what}")

    def string(self, where, value, min_length=1):
        if not isinstance(value, str):
            self.fail(where, f"must be a string, not {type(value).__name__}")
            return False
        if len(value) < min_length:
            self.fail(where, f"must be at least {min_length} character(s) long")
            return False
        return True

    def term(self, where, value):
        # A Term: at least two characters, no slash, backslash, whitespace
        # or control character.
        if self.string(where, value, 2):
            if re.search(r"[/\\\s]", value) or has_control(value):
                self.fail(where, f"{value!r} is not a Term (no /, \\, whitespace or control characters)")

    def tag(self, where, value):
        if self.string(where, value, 2):
            if len(value) > 255:
                self.fail(where, "a Tag is at most 255 characters")
            if re.search(r"[/\\]", value) or has_control(value):
                self.fail(where, f"{value!r} is not a Tag (no /, \\ or control characters)")

    def version(self, where, value):
        if self.string(where, value) and not SEMVER_RE.match(value):
            self.fail(where, f"{value!r} is not a semantic version (X.Y.Z)")

    def version_range(self, where, value):
        if value == 0 and not isinstance(value, bool):
            return
        if not self.string(where, value):
            return
        if not all(RANGE_PART_RE.match(part) for part in value.split(",")):
            self.fail(where, f"{value!r} is not a version range")

    def path(self, where, value):
        # A relative path with Unix conventions, inside the distribution.
        if self.string(where, value, 2):
            if value.startswith("/") or "\\" in value or ".." in value.split("/") or has_control(value):
                self.fail(where, f"{value!r} is not a relative Unix path inside the distribution")

    def uri(self, where, value):
        if self.string(where, value) and not URI_RE.match(value):
            self.fail(where, f"{value!r} is not a URI")

    def email(self, where, value):
        if self.string(where, value) and not EMAIL_RE.match(value):
            self.fail(where, f"{value!r} is not an email address")

    def obj(self, where, value, min_properties=0):
        if not isinstance(value, dict):
            self.fail(where, f"must be an object, not {type(value).__name__}")
            return False
        if len(value) < min_properties:
            self.fail(where, f"must have at least {min_properties} key(s)")
            return False
        return True

    def only(self, where, value, allowed):
        for key in value:
            if key not in allowed and not is_custom(key):
                self.fail(f"{where}.{key}", "unknown key (custom keys start with x_ or X_)")

    def nonempty_array(self, where, value):
        if not isinstance(value, list):
            self.fail(where, f"must be an array, not {type(value).__name__}")
            return False
        if not value:
            self.fail(where, "must not be empty")
            return False
        return True

    def document(self, meta):
        if not self.obj("META.json", meta):
            return
        for key in REQUIRED:
            if key not in meta:
                self.fail(key, "required key is missing")
        self.only("META.json", meta, set(REQUIRED) | set(OPTIONAL))
        # meta-spec first: a consumer stops if it cannot read the version.
        spec = meta.get("meta-spec")
        if spec is not None and self.obj("meta-spec", spec):
            self.only("meta-spec", spec, {"version", "url"})
            if "version" not in spec:
                self.fail("meta-spec.version", "required key is missing")
            elif not (isinstance(spec["version"], str) and re.match(r"^1\.0\.\d+$", spec["version"])):
                self.fail("meta-spec.version", f"{spec['version']!r}: this checker reads 1.0.x only")
            if "url" in spec and spec["url"] not in SPEC_URLS:
                self.fail("meta-spec.url", f"must be one of {sorted(SPEC_URLS)}")
        if "name" in meta:
            self.term("name", meta["name"])
        if "version" in meta:
            self.version("version", meta["version"])
        for key in ("abstract", "description", "generated_by"):
            if key in meta:
                self.string(key, meta[key])
        if "maintainer" in meta:
            m = meta["maintainer"]
            if isinstance(m, list):
                if self.nonempty_array("maintainer", m):
                    for i, item in enumerate(m):
                        self.string(f"maintainer[{i}]", item)
            else:
                self.string("maintainer", m)
        if "license" in meta:
            self.license(meta["license"])
        if "provides" in meta:
            self.provides(meta["provides"])
        if "tags" in meta and self.nonempty_array("tags", meta["tags"]):
            for i, item in enumerate(meta["tags"]):
                self.tag(f"tags[{i}]", item)
        if "no_index" in meta:
            self.no_index(meta["no_index"])
        if "prereqs" in meta:
            self.prereqs(meta["prereqs"])
        if "release_status" in meta and meta["release_status"] not in ("stable", "testing", "unstable"):
            self.fail("release_status", "must be stable, testing or unstable")
        if "resources" in meta:
            self.resources(meta["resources"])

    def license(self, value):
        if isinstance(value, str):
            if value not in LICENSES:
                self.fail("license", f"{value!r} is not one of the spec's license strings")
        elif isinstance(value, list):
            if self.nonempty_array("license", value):
                for i, item in enumerate(value):
                    if item not in LICENSES:
                        self.fail(f"license[{i}]", f"{item!r} is not one of the spec's license strings")
        elif self.obj("license", value, 1):
            for name, link in value.items():
                self.uri(f"license.{name}", link)

    def provides(self, value):
        if not self.obj("provides", value, 1):
            return
        for name, ext in value.items():
            where = f"provides.{name}"
            self.term(where, name)
            if not self.obj(where, ext):
                continue
            self.only(where, ext, {"file", "version", "abstract", "docfile", "docpath"})
            for key in ("file", "version"):
                if key not in ext:
                    self.fail(f"{where}.{key}", "required key is missing")
            if "file" in ext:
                self.path(f"{where}.file", ext["file"])
            if "docfile" in ext:
                self.path(f"{where}.docfile", ext["docfile"])
            if "version" in ext:
                self.version(f"{where}.version", ext["version"])
            for key in ("abstract", "docpath"):
                if key in ext:
                    self.string(f"{where}.{key}", ext[key])

    def no_index(self, value):
        if not self.obj("no_index", value):
            return
        self.only("no_index", value, {"file", "directory"})
        if "file" not in value and "directory" not in value:
            self.fail("no_index", "needs file or directory")
        for key in ("file", "directory"):
            if key not in value:
                continue
            paths = value[key]
            if isinstance(paths, list):
                if self.nonempty_array(f"no_index.{key}", paths):
                    if len(set(map(json.dumps, paths))) != len(paths):
                        self.fail(f"no_index.{key}", "paths must be unique")
                    for i, p in enumerate(paths):
                        self.path(f"no_index.{key}[{i}]", p)
            else:
                self.path(f"no_index.{key}", paths)

    def prereqs(self, value):
        if not self.obj("prereqs", value, 1):
            return
        self.only("prereqs", value, PHASES)
        for phase, relations in value.items():
            if is_custom(phase):
                continue
            where = f"prereqs.{phase}"
            if not self.obj(where, relations, 1):
                continue
            self.only(where, relations, RELATIONSHIPS)
            for relation, deps in relations.items():
                if is_custom(relation) or not self.obj(f"{where}.{relation}", deps):
                    continue
                for dep, version_range in deps.items():
                    self.term(f"{where}.{relation} key", dep)
                    self.version_range(f"{where}.{relation}.{dep}", version_range)

    def resources(self, value):
        if not self.obj("resources", value, 1):
            return
        self.only("resources", value, {"homepage", "bugtracker", "repository"})
        if "homepage" in value:
            self.uri("resources.homepage", value["homepage"])
        tracker = value.get("bugtracker")
        if tracker is not None and self.obj("resources.bugtracker", tracker):
            self.only("resources.bugtracker", tracker, {"web", "mailto"})
            if "web" not in tracker and "mailto" not in tracker:
                self.fail("resources.bugtracker", "needs web or mailto")
            if "web" in tracker:
                self.uri("resources.bugtracker.web", tracker["web"])
            if "mailto" in tracker:
                self.email("resources.bugtracker.mailto", tracker["mailto"])
        repo = value.get("repository")
        if repo is not None and self.obj("resources.repository", repo):
            self.only("resources.repository", repo, {"url", "web", "type"})
            if "web" not in repo and not ("url" in repo and "type" in repo):
                self.fail("resources.repository", "needs web, or url and type")
            for key in ("url", "web"):
                if key in repo:
                    self.uri(f"resources.repository.{key}", repo[key])
            if "type" in repo and self.string("resources.repository.type", repo["type"]):
                if repo["type"] != repo["type"].lower():
                    self.fail("resources.repository.type", "must be lower case")


def problems_of(meta):
    checker = Checker()
    checker.document(meta)
    return checker.problems


def self_test():
    good = {
        "name": "pair", "abstract": "A key/value pair data type", "version": "0.1.8",
        "maintainer": "Someone <someone@example.org>", "license": "postgresql",
        "provides": {"pair": {"file": "sql/pair.sql", "version": "0.1.8"}},
        "meta-spec": {"version": "1.0.0"},
    }
    rich = dict(good, license={"PostgreSQL": "https://www.postgresql.org/about/licence"},
                maintainer=["A <a@example.org>", "B <b@example.org>"],
                prereqs={"runtime": {"requires": {"PostgreSQL": "8.0.0", "plpgsql": 0},
                                     "recommends": {"PostgreSQL": ">= 8.4.0, != 9.0.0, < 20.0.0"}}},
                resources={"bugtracker": {"web": "https://example.org/issues"},
                           "repository": {"url": "https://example.org/pair.git", "type": "git"}},
                tags=["key value", "pair"], no_index={"directory": ["test"], "file": "x/y.sql"},
                release_status="stable", x_extra=1)

    def without(doc, key):
        return {k: v for k, v in doc.items() if k != key}

    bad = {
        "missing name": without(good, "name"),
        "missing meta-spec": without(good, "meta-spec"),
        "name with a slash": dict(good, name="a/b"),
        "one-letter name": dict(good, name="a"),
        "two-part version": dict(good, version="1.0"),
        "unknown license": dict(good, license="wtfpl"),
        "empty maintainer list": dict(good, maintainer=[]),
        "provides without file": dict(good, provides={"pair": {"version": "0.1.8"}}),
        "provides with a bad version": dict(good, provides={"pair": {"file": "a.sql", "version": "v1"}}),
        "absolute file": dict(good, provides={"pair": {"file": "/a.sql", "version": "0.1.8"}}),
        "empty provides": dict(good, provides={}),
        "meta-spec 2.0.0": dict(good, **{"meta-spec": {"version": "2.0.0"}}),
        "unknown top-level key": dict(good, homepage="https://example.org"),
        "bad release_status": dict(good, release_status="beta"),
        "unknown phase": dict(good, prereqs={"install": {"requires": {"x": 0}}}),
        "bad version range": dict(good, prereqs={"runtime": {"requires": {"PostgreSQL": "~> 15"}}}),
        "repository url without type": dict(good, resources={"repository": {"url": "https://e.org/r.git"}}),
        "empty tags": dict(good, tags=[]),
    }
    failures = []
    for label, doc in (("minimal", good), ("rich", rich)):
        if problems_of(doc):
            failures.append(f"valid document '{label}' refused: {problems_of(doc)}")
    for label, doc in bad.items():
        if not problems_of(doc):
            failures.append(f"invalid document accepted: {label}")
    for f in failures:
        print(f"self-test: {f}")
    print(f"self-test: {2 + len(bad) - len(failures)} of {2 + len(bad)} cases as expected")
    return 1 if failures else 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        with open(argv[1], encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        print(f"{argv[1]}: cannot read as JSON: {e}")
        return 1
    problems = problems_of(meta)
    for p in problems:
        print(f"{argv[1]}: {p}")
    if problems:
        return 1
    print(f"{argv[1]}: valid against the PGXN Meta Spec {meta['meta-spec']['version']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
