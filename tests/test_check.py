"""`harness check`: every malformed fixture rejected with the right file:line:column, every
shipped scenario and documented example accepted, and the --json shape the drivers read."""
import glob
import json
import os
import re
import resource
import subprocess
import threading
import time

import pytest
import requests

from conftest import Server

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BAD = sorted(glob.glob(os.path.join(ROOT, "tests/fixtures/bad/*.yaml")))


REGISTRY = os.path.join(ROOT, "drivers", "clients.yaml")


def run(binary, *args):
    return subprocess.run([binary, "check", *args], capture_output=True, text=True, timeout=60)


def run_with_registry(binary, *args):
    """As the drivers check: with the client registry, so when.client names are checked."""
    return run(binary, "--clients", REGISTRY, *args)


def test_enough_bad_fixtures():
    assert len(BAD) >= 20


@pytest.mark.parametrize("path", BAD, ids=[os.path.basename(p) for p in BAD])
def test_bad_fixture_reports_each_error_at_its_place(harness_bin, path):
    expected = re.findall(r"^# expect-error: (\d+):(\d+): (.*)$", open(path).read(), re.M)
    assert expected, "the fixture lists no expect-error line"
    proc = run_with_registry(harness_bin, path)
    assert proc.returncode == 1
    errors = [l for l in proc.stderr.splitlines() if l.startswith(path + ":")]
    assert len(errors) == len(expected), proc.stderr
    for (line, col, text), got in zip(expected, errors):
        assert got.startswith("%s:%s:%s: " % (path, line, col)), got
        assert text.strip() in got, got
    assert re.search(r"checked 1 file: %d errors?" % len(expected), proc.stderr)


def test_all_errors_of_all_files_in_one_run(harness_bin):
    proc = run_with_registry(harness_bin, os.path.join(ROOT, "tests/fixtures/bad"))
    assert proc.returncode == 1
    total = sum(len(re.findall(r"^# expect-error:", open(p).read(), re.M)) for p in BAD)
    assert "checked %d files: %d errors" % (len(BAD), total) in proc.stderr


def test_shipped_scenarios_are_valid(harness_bin):
    dirs = [d for d in ("scenarios", "drivers/tests/scenarios") if os.path.isdir(os.path.join(ROOT, d))]
    proc = run_with_registry(harness_bin, *[os.path.join(ROOT, d) for d in dirs])
    assert proc.returncode == 0, proc.stderr


def test_when_client_is_checked_against_the_registry_only_when_given(harness_bin, tmp_path):
    """The registry is read from its file (no second list): without --clients a name is not
    checked; with it, a typo is an error at the name; NAME@VERSION is the client NAME; a
    --clients-file's clients count too; a file that is not a registry is an error."""
    bad = os.path.join(ROOT, "tests/fixtures/bad/when-client-unknown.yaml")
    assert run(harness_bin, bad).returncode == 0
    proc = run_with_registry(harness_bin, bad)
    assert proc.returncode == 1 and "no client 'chromuim'" in proc.stderr, proc.stderr
    extra = tmp_path / "mine.yaml"
    extra.write_text("clients:\n  chromuim:\n    command: [true]\n  node-ws-fork:\n"
                     "    command: [true]\n")
    proc = run(harness_bin, "--clients", REGISTRY, "--clients", str(extra), bad)
    assert "chromuim" not in proc.stderr and proc.stderr.count(": when.client:") == 1, proc.stderr
    assert "'pyhton-requests'" in proc.stderr
    notreg = tmp_path / "not.yaml"
    notreg.write_text("default: [a]\n")
    proc = run(harness_bin, "--clients", str(notreg), bad)
    assert proc.returncode == 1 and "%s:1:1: a client registry has a `clients` mapping" % notreg \
        in proc.stderr, proc.stderr
    proc = run(harness_bin, "--clients", str(tmp_path / "missing.yaml"), bad)
    assert proc.returncode == 1 and "cannot read the client registry" in proc.stderr


def doc_examples():
    """Whole scenarios (with a top-level id) in the fenced YAML blocks of the docs."""
    out = []
    for doc in ("docs/scenarios.md", "README.md"):
        text = open(os.path.join(ROOT, doc)).read()
        for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", text, re.S)):
            if re.search(r"^id: ", block, re.M):
                out.append(pytest.param(block, id="%s-%d" % (os.path.basename(doc), i)))
    return out


@pytest.mark.parametrize("block", doc_examples())
def test_documented_examples_are_valid(harness_bin, tmp_path, block):
    path = tmp_path / "example.yaml"
    path.write_text(block)
    proc = run(harness_bin, str(path))
    assert proc.returncode == 0, proc.stderr


def test_json_output(harness_bin, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("id: a.b\ntitle: t\nspec: https://x.org/\n"
                    "client:\n  xhr: {url: /x, abort: {on: load}, timeout: 5s}\n"
                    "expect:\n  client: {status: 0, statusText: yes, responseXML: null}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: a.c\ntitle: t\nspec: https://x.org/\nclient: {}\n")
    proc = run(harness_bin, "--json", str(good), str(bad))
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert [s["id"] for s in doc["scenarios"]] == ["a.b"]
    s = doc["scenarios"][0]
    assert s["file"] == str(good)
    # YAML 1.2 core typing: `on` and `yes` stay strings, null is null
    assert s["client"]["xhr"]["abort"] == {"on": "load"}
    assert s["client"]["xhr"]["timeout"] == 5000   # durations as milliseconds
    assert s["expect"]["client"] == {"status": 0, "statusText": "yes", "responseXML": None}
    assert doc["errors"] == [{"file": str(bad), "line": 4, "col": 9,
                              "message": doc["errors"][0]["message"]}]
    assert "exactly one action" in doc["errors"][0]["message"]


def test_duplicate_ids_across_files(harness_bin, tmp_path):
    for name in ("one.yaml", "two.yaml"):
        (tmp_path / name).write_text("id: same.id\ntitle: t\nspec: https://x.org/\n"
                                     "client:\n  http: {url: /}\n")
    proc = run(harness_bin, str(tmp_path))
    assert proc.returncode == 1
    assert "%s:1:1: duplicate scenario id 'same.id'" % (tmp_path / "two.yaml") in proc.stderr


def test_help_and_version(harness_bin):
    for cmd in (["check", "--help"], ["serve", "--help"], ["--help"]):
        p = subprocess.run([harness_bin, *cmd], capture_output=True, text=True)
        assert p.returncode == 0 and "usage: harness" in p.stdout
    for cmd in (["--version"], ["check", "--version"], ["serve", "--version"]):
        p = subprocess.run([harness_bin, *cmd], capture_output=True, text=True)
        assert p.returncode == 0 and re.match(r"harness \d+\.\d+\.\d+", p.stdout)


def test_missing_path(harness_bin):
    proc = run(harness_bin, "/no/such/dir")
    assert proc.returncode == 1
    assert "/no/such/dir:0:0: No such file or directory" in proc.stderr


def _check_one(harness_bin, tmp_path, duration):
    path = tmp_path / "d.yaml"
    path.write_text("id: d.d\ntitle: t\nspec: https://x.org/\nserver:\n  routes:\n"
                    "    - {match: {path: /x}, response: {delay: %s}}\n"
                    "client:\n  xhr: {url: /x, timeout: %s}\n" % (duration, duration))
    return run(harness_bin, "--json", str(path))


@pytest.mark.parametrize("text, ms", [
    ("500", 500), ("1.5", 2), ("0", 0), ('"500ms"', 500), ('"1.5s"', 1500), ('".5s"', 500),
    ('"2min"', 120000), ('"2m"', 120000), ('" 20 ms "', 20), ('"0.25s"', 250),
    ("86400000", 86400000), ('"1440min"', 86400000)])
def test_duration_grammar(harness_bin, tmp_path, text, ms):
    """One grammar (docs/scenarios.md), in the binary: check --json hands the drivers
    milliseconds, on the client side and the server side alike."""
    proc = _check_one(harness_bin, tmp_path, text)
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)["scenarios"][0]
    assert s["client"]["xhr"]["timeout"] == ms
    assert s["server"]["routes"][0]["response"]["delay"] == ms


@pytest.mark.parametrize("text", [
    '"fast"', "-1", '"-5ms"', '"1e3"', '"1.5.s"', '"2h"', "true", "86400001", '"."', '"5 m s"',
    '"ms"', "[1]", "null"])
def test_duration_grammar_rejects(harness_bin, tmp_path, text):
    proc = _check_one(harness_bin, tmp_path, text)
    assert proc.returncode == 1
    errors = json.loads(proc.stdout)["errors"]
    assert [(e["line"], "delay" in e["message"]) for e in errors] == [(6, True), (8, False)]
    assert all(re.search(r"duration", e["message"]) for e in errors), errors


def test_keys_export(harness_bin):
    """`harness keys --json`: every table a scenario's mappings use, each key typed and
    described, tables referenced by id (what a JSON Schema generator needs)."""
    proc = subprocess.run([harness_bin, "keys", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0
    doc = json.loads(proc.stdout)
    tables = doc["tables"]
    assert doc["root"] == "scenario" and doc["root"] in tables
    for table_id, table in tables.items():
        assert table["what"] and table["doc"] and table["keys"], table_id
        for key, spec in table["keys"].items():
            assert spec["type"] and spec["doc"], (table_id, key)
            assert spec.get("table") is None or spec["table"] in tables, (table_id, key)
            for variant in (spec.get("variants") or {}).values():
                assert variant in tables
    assert tables["client.xhr"]["keys"]["timeout"]["type"] == "duration"
    assert tables["expect.client.eventsource"]["keys"]["events_mode"]["values"] == [
        "exact", "subsequence", "contains"]
    text = subprocess.run([harness_bin, "keys"], capture_output=True, text=True).stdout
    assert "response — one response" in text


# -- loader limits (issue 14): linear time, bounded depth, nodes and size ------------------

def cpu_of(harness_bin, *args):
    """(process, CPU seconds) of `harness check ARGS`: CPU time, not wall time, so that a
    loaded machine does not fail the bound."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = run(harness_bin, *args)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return proc, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cpu_bound(harness_bin, seconds):
    """The CPU bound for a binary: ten times as much under AddressSanitizer (make
    sanitizer-tests), still far below what a quadratic load takes."""
    with open(harness_bin, "rb") as f:
        return seconds * (10 if b"__asan_init" in f.read() else 1)


def many_routes(n, channels=1000):
    """A valid scenario with n routes (names, delays, templates, long polls) and an expect
    naming every tenth route."""
    out = ["id: big.routes\ntitle: t\nspec: https://x.org/\nclient:\n  http: {url: /r1}\n"
           "server:\n  channels:\n"]
    out += ["    c%d: {events: [{after: 5, data: x}]}\n" % i for i in range(channels)]
    out.append("  routes:\n")
    out += ['    - {name: r%d, match: {path: /%d}, response: {delay: 1s, body: "{{base}}", '
            'long_poll: {channel: c%d}}}\n' % (i, i, i % channels) for i in range(n)]
    out.append("expect:\n  server:\n    requests:\n")
    out += ["      - {route: r%d, count: 1}\n" % i for i in range(0, n, 10)]
    return "".join(out)


def test_hundred_thousand_routes_load_in_linear_time(harness_bin, tmp_path):
    """10^5 routes took over 120 s (a quadratic duplicate-name check); now well under a
    second of CPU on this machine (3 s allows for a slow CI)."""
    path = tmp_path / "routes.yaml"
    path.write_text(many_routes(100000))
    proc, cpu = cpu_of(harness_bin, str(path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert cpu < cpu_bound(harness_bin, 3.0), \
        "harness check took %.2f s of CPU for 100,000 routes" % cpu


def test_hundred_thousand_keys_in_one_mapping(harness_bin, tmp_path):
    """Duplicate keys are found with a hash map: 10^5 keys in one mapping (80k took 25 s)."""
    path = tmp_path / "keys.yaml"
    path.write_text("id: big.keys\ntitle: t\nspec: https://x.org/\nclient:\n  http: {url: /}\n"
                    "server:\n  routes:\n    - match:\n        query:\n" +
                    "".join("          k%d: v\n" % i for i in range(100000)) +
                    "      response: {body: x}\n")
    proc, cpu = cpu_of(harness_bin, str(path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert cpu < cpu_bound(harness_bin, 3.0), \
        "harness check took %.2f s of CPU for 100,000 keys" % cpu


def test_size_and_node_limits(harness_bin, tmp_path):
    """The documented limits (yamldoc.h): 16 MiB of text, 2,000,000 nodes; each an error
    at its place, never a crash or an hour of work."""
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (16 * 1024 * 1024) + "\n")
    proc = run(harness_bin, str(big))
    assert proc.returncode == 1
    assert "%s:1:1: the file is %d bytes: a scenario is at most 16777216 bytes" % (
        big, 16 * 1024 * 1024 + 3) in proc.stderr
    many = tmp_path / "many.yaml"
    many.write_text("description: [" + "0," * 2000000 + "0]\n")
    proc = run(harness_bin, str(many))
    assert proc.returncode == 1
    # node 1 is the root mapping, 2 its key, 3 the sequence, 4.. its items
    col = 15 + 2 * (2000000 - 3)
    assert "%s:1:%d: too many values: a scenario has at most 2000000 nodes" % (many, col) \
        in proc.stderr, proc.stderr


def test_depth_limit_is_an_error_not_a_stack_overflow(harness_bin, tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("[" * 50000 + "]" * 50000 + "\n")
    proc = run(harness_bin, str(path))
    assert proc.returncode == 1
    assert "%s:1:65: nested too deeply: at most 64 levels" % path in proc.stderr


def test_every_integer_key_is_range_checked(harness_bin):
    """Every integer a scenario gives has a documented range (no value reaches the server
    unchecked); durations have theirs (0 to one day) in the one grammar."""
    tables = json.loads(subprocess.run([harness_bin, "keys", "--json"], capture_output=True,
                                       text=True).stdout)["tables"]
    unbounded = [(t, k) for t, table in tables.items() for k, spec in table["keys"].items()
                 if spec["type"] == "integer" and ("min" not in spec or "max" not in spec)]
    assert unbounded == []


def test_control_api_load_does_not_stall_other_requests(harness_bin):
    """A 10^5-route scenario posted to the control API loads off the request thread
    (ctl_load.c): other requests keep being answered while it loads."""
    srv = Server(harness_bin, ["--quiet"])
    try:
        text = many_routes(100000)
        result = {}

        def post():
            t0 = time.monotonic()
            r = srv.api("POST", "/instances", json={"yaml": text}, timeout=300)
            result["status"], result["seconds"] = r.status_code, time.monotonic() - t0

        other = requests.Session()
        other.trust_env = False
        th = threading.Thread(target=post)
        th.start()
        latencies = []
        while th.is_alive():
            t0 = time.monotonic()
            assert other.get(srv.control + "/_harness/health", timeout=60).status_code == 200
            latencies.append(time.monotonic() - t0)
        th.join()
        assert result["status"] == 201
        # Loading on the request thread, a request sent as the load began waited for all of
        # it; off the thread, requests go on being answered (judged against the load's own
        # duration, so that a loaded machine slows both alike).
        assert len(latencies) >= 5, (result, latencies)
        assert max(latencies) < 0.5 * result["seconds"], \
            "a request waited %.2f s during a %.2f s load" % (max(latencies), result["seconds"])
        r = srv.api("GET", "/instances", timeout=30)
        assert [i["scenario"] for i in r.json()["instances"]] == ["big.routes"]
    finally:
        assert srv.stop() == 0, srv.stderr


def _schema_event_types(action):
    """The event types the adapter protocol's schema gives an action's events."""
    with open(os.path.join(ROOT, "drivers/schema/adapter-protocol.schema.json")) as f:
        defs = json.load(f)["$defs"]
    out = set()

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                walk(defs[node["$ref"].split("/")[-1]])
            t = (node.get("properties") or {}).get("type")
            if isinstance(t, dict):
                out.update([t["const"]] if "const" in t else t.get("enum", []))
            for k in ("oneOf", "anyOf", "allOf"):
                for sub in node.get(k, []):
                    walk(sub)
    walk(defs["event." + action])
    return out


@pytest.mark.parametrize("action", ["xhr", "fetch", "http", "eventsource", "websocket", "jsonp",
                                    "image"])
def test_step_events_are_the_protocols(harness_bin, tmp_path, action):
    """A client script may bind a do step (or a wait) to exactly the events the adapter
    protocol says the step's action fires: the loader's list and the schema are one."""
    types = _schema_event_types(action)
    assert types
    for event, ok in [(t, True) for t in sorted(types)] + [("no-such-event", False)]:
        path = tmp_path / "s.yaml"
        path.write_text(
            "id: a.b\ntitle: t\nspec: https://x.org/\nclient:\n  steps:\n"
            "    - {id: x, %s: {url: /x}}\n"
            "    - wait_for: {event: {step: x, event: %s}, timeout: 1s}\n" % (action, event))
        proc = run(harness_bin, str(path))
        assert (proc.returncode == 0) == ok, (event, proc.stderr)
