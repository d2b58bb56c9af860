"""make bench: the quick run's output shape (BENCH_TEST=1 only), and the report's arithmetic.

The quick run takes about 30 s and needs nginx and wrk (make bench installs them, make check
does not), so it runs only with BENCH_TEST=1 and when both are there:

    BENCH_TEST=1 /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/test_bench.py
"""
import json
import math
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import report  # noqa: E402
import servers  # noqa: E402


def test_quantile_counts_failures_as_infinitely_late():
    assert report.quantile([1, 2, 3, 4], 0.5) == 2
    assert report.quantile([5], 0.99, total=1) == 5
    # 98 answered, 2 failed: the p99 is a failure
    assert report.quantile(list(range(98)), 0.99, total=100) == math.inf
    assert report.quantile(list(range(99)), 0.99, total=100) == 98
    assert report.quantile([], 0.5) is None


def test_every_server_serves_the_same_13_byte_body():
    assert len(servers.BODY.encode()) == 13
    assert '"hello, world\\n"' in servers.harness_scenario()
    assert 'return 200 "hello, world\\n"' in servers.NGINX_CONF
    imp = servers.mountebank_imposter(1)
    assert {s["responses"][0]["is"]["body"] for s in imp["stubs"]} == {servers.BODY}


def test_goals_compare_with_nginx_in_the_same_repetition():
    p = {"reps": 2, "bursts": [1000], "sse_streams": 10, "scenarios": 10, "check_files": 10}
    runs = {"get": {"harness": [{"rps": 90}, {"rps": 70}],
                    "nginx": [{"rps": 100, "cpu_us": 10}, {"rps": 100, "cpu_us": 10}]},
            "burst1000": {"harness": [{"p99_ms": 9}, {"error": "burst failed"}]}}
    g = {x["id"]: x["reps"] for x in report.goals(runs, p, cores=2)}
    assert [r["pass"] for r in g["get.throughput"]] == [True, False]
    # the limit: 1000 x 10 us / 2 cores = 5 ms; the goal: p99 <= 10 ms
    assert g["burst1000"][0] == {"value": 9, "limit": 10.0, "pass": True}
    assert [x["unit"] for x in report.goals(runs, p, cores=2)][:3] == [" x nginx"] * 2 + [" ms"]
    assert g["burst1000"][1]["pass"] is None  # not measured: n/a, never a pass
    assert g["sse.lost"][0]["pass"] is None


QUICK_REASON = None
if os.environ.get("BENCH_TEST") != "1":
    QUICK_REASON = "the quick bench run (~30 s) runs only with BENCH_TEST=1"
elif not (shutil.which("nginx") and shutil.which("wrk") and shutil.which("taskset")):
    QUICK_REASON = "nginx, wrk or taskset missing (scripts/ensure-deps bench installs them)"


@pytest.mark.skipif(QUICK_REASON is not None, reason=QUICK_REASON or "")
def test_quick_run_writes_the_table_json_and_plots(harness_bin, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench", "bench.py"), "--quick",
                        "--out", str(out), "--burst", str(tmp_path / "burst"), harness_bin],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    result = json.loads((out / "bench.json").read_text())
    p = result["params"]
    assert result["servers"] == ["harness", "nginx"] and result["errors"] == []
    groups = ["get", "sse", "idle", "startup"] + ["burst%d" % n for n in p["bursts"]]
    assert sorted(result["runs"]) == sorted(groups)
    for kind in ("harness", "nginx"):
        get = result["runs"]["get"][kind][0]
        assert get["rps"] > 0 and get["cpu_us"] > 0 and get["non_2xx"] == 0
        idle = result["runs"]["idle"][kind][0]
        assert idle["held"] == p["idle_conns"] and idle["bytes_per_conn"] is not None
        for n in p["bursts"]:
            b = result["runs"]["burst%d" % n][kind][0]
            assert b["failed"] == 0 and 0 <= b["p50_ms"] <= b["p99_ms"] <= b["max_ms"]
    h = result["runs"]["burst%d" % p["bursts"][0]]["harness"][0]
    assert h["journal_entries"] == p["bursts"][0]
    sse = result["runs"]["sse"]["harness"][0]
    assert sse["events"] == p["sse_streams"] * p["sse_events"] and sse["hwm_mib"] > 0
    assert sse["lost"] == 0
    start = result["runs"]["startup"]["harness"][0]
    assert start["ready_ms"] > 0 and start["rss_mib"] > 0 and start["check_s"] > 0
    assert "nginx" not in result["runs"]["startup"]
    ids = [g["id"] for g in result["goals"]]
    assert ids == (["get.throughput", "get.cpu"] + ["burst%d" % n for n in p["bursts"]]
                   + ["sse.lost", "sse.rss", "sse.p99", "idle.bytes", "startup.ready",
                      "startup.rss", "check"])
    assert all(r["pass"] in (True, False) for g in result["goals"] for r in g["reps"])
    md = (out / "bench.md").read_text()
    assert "| figure | harness | nginx |" in md
    assert "PASS" in md or "MISS" in md
    assert sorted(result["plots"]) == sorted(["cdf-burst%d.png" % n for n in p["bursts"]]
                                             + ["cdf-sse.png"])
    for png in result["plots"]:
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
