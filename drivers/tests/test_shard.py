"""Shards and their merge (comet_harness/shard.py, merge.py): the partition (deterministic,
balanced by durations or by count), --shard K/N selecting one slice under xdist too, and
shards 1/3, 2/3, 3/3 merged giving the results of one unsharded run, testcase by testcase;
a merge refuses shards that do not make one run.

Pytest runs in a subprocess (pytester) with the fake clients of drivers/tests/fakes/.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from helpers import DRIVERS, FAKE_CLIENTS, ROOT, SCENARIOS

sys.path.insert(0, DRIVERS)
from comet_harness import shard  # noqa: E402

CLIENTS = "fake-conforming,fake-wrong,fake-crashing"


# ------------------------------------------------------------------------ the partition

def test_parse():
    assert shard.parse("2/3") == (2, 3)
    assert shard.parse(" 1 / 1 ") == (1, 1)
    for bad in ("0/3", "4/3", "3", "a/b", "1/0", ""):
        with pytest.raises(shard.ShardError):
            shard.parse(bad)


def test_partition_is_balanced_and_deterministic():
    cost = {"r%02d" % n: float(n % 7 + 1) for n in range(40)}
    where = shard.partition(cost, 3)
    assert where == shard.partition(dict(reversed(list(cost.items()))), 3)  # input order
    loads = [sum(c for k, c in cost.items() if where[k] == i) for i in range(3)]
    assert max(loads) - min(loads) <= max(cost.values())
    assert sorted(set(where.values())) == [0, 1, 2]
    # longest first: the two costliest runs are in different shards
    assert where["r06"] != where["r13"]
    assert shard.fingerprint(where, 3) == shard.fingerprint(dict(where), 3)
    other = dict(where, r00=(where["r00"] + 1) % 3)
    assert shard.fingerprint(other, 3) != shard.fingerprint(where, 3)


def test_costs():
    durations = {("a", "c1"): 4.0, ("b", "c1"): 2.0, ("c", "c1"): 3.0}
    runs = [("A", "a", "c1", True), ("D", "d", "c1", True), ("E", "e", "c2", True),
            ("U", "a", "c1", False)]
    cost = shard.costs(runs, durations)
    assert cost == {"A": 4.0, "D": 3.0, "E": shard.DEFAULT_COST, "U": shard.UNSUPPORTED_COST}
    assert shard.costs(runs, {})["A"] == shard.DEFAULT_COST


def test_load_durations(tmp_path):
    assert shard.load_durations(str(tmp_path / "none.json")) == {}
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"results": [
        {"id": "x", "client": "c", "outcome": "pass", "duration": 1.5},
        {"id": "y", "client": "c", "outcome": "unsupported", "duration": 0.01}]}))
    assert shard.load_durations(str(path)) == {("x", "c"): 1.5}
    path.write_text("{")
    with pytest.raises(shard.ShardError):
        shard.load_durations(str(path))


# ------------------------------------------------------------------------ shards and merge

@pytest.fixture
def runner(pytester, harness_bin, monkeypatch):
    """Run the plugin on a copy of the test scenarios into a results folder of one's own."""
    shutil.copytree(SCENARIOS, str(pytester.path / "scenarios"))
    monkeypatch.setenv("PYTHONPATH", DRIVERS)

    def run(results, *args, clients=CLIENTS):
        return pytester.runpytest_subprocess(
            "-p", "comet_harness.plugin", "-p", "no:cacheprovider", "--rootdir",
            str(pytester.path), "--harness-bin", harness_bin, "--clients-file", FAKE_CLIENTS,
            "--client", clients, "--results", results, "--junitxml", results + "/junit.xml",
            "--adapter-grace", "1", *args, "scenarios", timeout=300)

    return run


def merge(pytester, out, *folders, fail=False):
    return subprocess.run(
        [sys.executable, "-m", "comet_harness.merge", "--results", out]
        + (["--fail"] if fail else []) + list(folders), cwd=str(pytester.path),
        env=dict(os.environ, PYTHONPATH=DRIVERS), capture_output=True, text=True, timeout=120)


# What differs between two runs of one scenario: times and instance names.
_VARIES = [(re.compile(r"\b(?:g?w\d*)-\d+-[a-z0-9-]+?-[0-9a-f]{6}\b"), "INSTANCE"),
           (re.compile(r"\[run \d+\]"), "[run N]"),
           (re.compile(r"127\.0\.0\.1:\d+"), "HOST"), (re.compile(r"\bport \d+\b"), "port N"),
           (re.compile(r"\+\d+ms\b"), "+Nms"), (re.compile(r"\b\d+\.\d+\b"), "N.N")]


def steady(value):
    """value (JSON) with times and instance names replaced by placeholders."""
    text = json.dumps(value, sort_keys=True)
    for pattern, placeholder in _VARIES:
        text = pattern.sub(placeholder, text)
    return json.loads(text)


def records(folder):
    with open(os.path.join(folder, "results.json"), encoding="utf-8") as f:
        doc = json.load(f)
    keep = ("nodeid", "id", "client", "area", "file", "line", "outcome", "message",
            "known_failure", "error_kind", "checks", "client_version")
    return doc, {(r["id"], r["client"]): steady({k: r.get(k) for k in keep})
                 for r in doc["results"]}


def junit_cases(folder):
    """{(suite, classname, name): (outcome tag, message)} and the suites' counts."""
    root = ET.parse(os.path.join(folder, "junit.xml")).getroot()
    cases, suites = {}, {}
    for suite in root.findall("testsuite"):
        props = sorted((p.get("name"), p.get("value"))
                       for p in suite.iterfind("properties/property"))
        suites[suite.get("name")] = (suite.get("tests"), suite.get("failures"),
                                     suite.get("errors"), suite.get("skipped"), props)
        for case in suite.findall("testcase"):
            tags = steady([(el.tag, el.get("message")) for el in case])
            cases[(suite.get("name"), case.get("classname"), case.get("name"))] = tags
    totals = (root.get("tests"), root.get("failures"), root.get("errors"))
    return cases, suites, totals


def summary_lines(folder):
    with open(os.path.join(folder, "summary.md"), encoding="utf-8") as f:
        return steady(f.read().splitlines())


def test_shards_merged_are_one_run(runner, pytester):
    one = runner("one")
    assert one.ret == 1  # fake-wrong fails, fake-crashing errs
    parts = []
    for k in (1, 2, 3):
        extra = ["-n", "2"] if k == 2 else []  # under xdist the workers agree on the slice
        r = runner("shard-%d" % k, "--shard", "%d/3" % k, *extra)
        assert r.ret in (0, 1), r.stdout.str()
        parts.append("shard-%d" % k)
    sizes = [len(records(str(pytester.path / p))[1]) for p in parts]
    assert sum(sizes) == 21 and all(sizes), sizes
    done = merge(pytester, "merged", *parts)
    assert done.returncode == 0, done.stderr
    assert "merged 21 runs of 3 folders" in done.stdout

    one_doc, one_records = records(str(pytester.path / "one"))
    doc, merged = records(str(pytester.path / "merged"))
    assert merged == one_records
    for key in ("totals", "areas", "clients", "harness_version", "exitstatus",
                "collect_errors", "stale_expectations", "outcomes"):
        assert doc[key] == one_doc[key], key
    assert [s["index"] for s in doc["shards"]] == [1, 2, 3]
    assert junit_cases(str(pytester.path / "merged")) == junit_cases(str(pytester.path / "one"))
    assert summary_lines(str(pytester.path / "merged")) == summary_lines(str(pytester.path / "one"))
    html = (pytester.path / "merged" / "report.html").read_text()
    assert html.count('class="cell') == (pytester.path / "one" / "report.html").read_text() \
        .count('class="cell')
    assert sorted(os.listdir(pytester.path / "merged" / "report-details")) == \
        sorted(os.listdir(pytester.path / "one" / "report-details"))
    assert merge(pytester, "merged", *parts, fail=True).returncode == 1


def test_shards_balanced_by_durations(runner, pytester):
    """With a results.json of an earlier run the slices balance its durations: the slow
    http.timeout.read runs go to different shards, whatever the count."""
    assert runner("one", clients="fake-conforming,fake-wrong").ret == 1
    durations = str(pytester.path / "one" / "results.json")
    got = {}
    for k in (1, 2):
        runner("s%d" % k, "--shard", "%d/2" % k, "--shard-durations", durations,
               clients="fake-conforming,fake-wrong")
        doc, recs = records(str(pytester.path / ("s%d" % k)))
        assert doc["shard"]["balanced_by"] == "durations"
        got[k] = {key for key in recs if key[0] == "http.timeout.read"}
    assert len(got[1]) == len(got[2]) == 1


def test_merge_refuses_what_is_not_one_run(runner, pytester):
    runner("a1", "--shard", "1/2", clients="fake-conforming")
    runner("a2", "--shard", "2/2", clients="fake-conforming")
    runner("b2", "--shard", "2/2", clients="fake-conforming,fake-wrong")
    cases = [(["a1"], "shard 2 of 2 missing"),
             (["a1", "a1"], "both shard 1/2"),
             (["a1", "b2"], "different partitions"),
             (["a1", "nothing"], "did the shard run?")]
    for folders, message in cases:
        done = merge(pytester, "merged", *folders)
        assert done.returncode == 2 and message in done.stderr, (folders, done.stderr)
        assert not (pytester.path / "merged").exists()
    assert merge(pytester, "merged", "a1", "a2").returncode == 0


def test_an_empty_shard_is_not_an_error(runner, pytester):
    """More shards than runs: the empty ones exit 0 and write empty results to merge."""
    folders = []
    for k in range(1, 5):
        r = runner("e%d" % k, "--shard", "%d/4" % k, "-k", "basic", clients="fake-conforming")
        assert r.ret == 0, r.stdout.str()
        folders.append("e%d" % k)
    assert merge(pytester, "merged", *folders).returncode == 0
    assert len(records(str(pytester.path / "merged"))[1]) == 2  # http and sse .basic


def test_shard_usage_errors(runner):
    assert runner("x", "--shard", "4/3").ret == 2
    assert runner("x", "--shard", "1/2", "--shard-durations", "nothing.json").ret == 2


def test_make_merge_command():
    out = subprocess.run(["make", "-n", "--no-print-directory", "-C", ROOT, "merge",
                          "SHARDS=r1 r2", "RESULTS=/tmp/m"], capture_output=True, text=True,
                         check=True).stdout
    assert re.search(r"-m comet_harness\.merge --results /tmp/m[\s\\]+r1 r2\s*$", out.strip()), out
    out = subprocess.run(["make", "-n", "--no-print-directory", "-C", ROOT, "conformance",
                          "SHARD=2/3"], capture_output=True, text=True, check=True).stdout
    assert "-n 2 --shard 2/3" in out, out
