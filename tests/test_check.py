"""`harness check`: every malformed fixture rejected with the right file:line:column, every
shipped scenario and documented example accepted, and the --json shape the drivers read."""
import glob
import json
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BAD = sorted(glob.glob(os.path.join(ROOT, "tests/fixtures/bad/*.yaml")))


def run(binary, *args):
    return subprocess.run([binary, "check", *args], capture_output=True, text=True, timeout=60)


def test_enough_bad_fixtures():
    assert len(BAD) >= 20


@pytest.mark.parametrize("path", BAD, ids=[os.path.basename(p) for p in BAD])
def test_bad_fixture_reports_each_error_at_its_place(harness_bin, path):
    expected = re.findall(r"^# expect-error: (\d+):(\d+): (.*)$", open(path).read(), re.M)
    assert expected, "the fixture lists no expect-error line"
    proc = run(harness_bin, path)
    assert proc.returncode == 1
    errors = [l for l in proc.stderr.splitlines() if l.startswith(path + ":")]
    assert len(errors) == len(expected), proc.stderr
    for (line, col, text), got in zip(expected, errors):
        assert got.startswith("%s:%s:%s: " % (path, line, col)), got
        assert text.strip() in got, got
    assert re.search(r"checked 1 file: %d errors?" % len(expected), proc.stderr)


def test_all_errors_of_all_files_in_one_run(harness_bin):
    proc = run(harness_bin, os.path.join(ROOT, "tests/fixtures/bad"))
    assert proc.returncode == 1
    total = sum(len(re.findall(r"^# expect-error:", open(p).read(), re.M)) for p in BAD)
    assert "checked %d files: %d errors" % (len(BAD), total) in proc.stderr


def test_shipped_scenarios_are_valid(harness_bin):
    dirs = [d for d in ("scenarios", "drivers/tests/scenarios") if os.path.isdir(os.path.join(ROOT, d))]
    proc = run(harness_bin, *[os.path.join(ROOT, d) for d in dirs])
    assert proc.returncode == 0, proc.stderr


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
