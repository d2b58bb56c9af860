"""End to end with real clients: the plugin, the harness binary and the real adapters of
drivers/adapters/ on the scenarios of drivers/tests/scenarios/.

    make harness && /usr/bin/python3 -m pytest drivers/tests/test_e2e.py

python-requests gets the verdicts of a conforming HTTP client; node-eventsource and
Chromium (when installed) open the event stream of sse.basic.open and lack the http
capability. Skips: no harness binary, no npm packages, no browser.
"""
import json
import os
import shutil

import pytest

from helpers import CONFORMING, DRIVERS, SCENARIOS  # the facts the plugin tests prove


def node_packages():
    return all(os.path.isdir(os.path.join(DRIVERS, "node_modules", p))
               for p in ("puppeteer-core", "eventsource")) and shutil.which("node")


@pytest.fixture
def realrun(pytester, harness_bin, monkeypatch):
    shutil.copytree(SCENARIOS, str(pytester.path / "scenarios"))
    monkeypatch.setenv("PYTHONPATH", DRIVERS)

    def run(clients, *args):
        result = pytester.runpytest_subprocess(
            "-p", "comet_harness.plugin", "-p", "no:cacheprovider", "--rootdir", str(pytester.path),
            "--harness-bin", harness_bin, "--client", clients, "--results", "results",
            "--junitxml", "junit.xml", *args, "scenarios", timeout=600)
        doc = json.loads((pytester.path / "results" / "results.json").read_text())
        return result, doc

    return run


def test_python_requests(realrun):
    result, doc = realrun("python-requests")
    outcomes = {r["id"]: r["outcome"] for r in doc["results"]}
    assert outcomes == CONFORMING, "\n".join(result.outlines[-80:])
    client = doc["clients"][0]
    assert client["name"] == "python-requests" and client["version"]
    assert "requests" in client["implementation"]


@pytest.mark.skipif(not node_packages(), reason="npm packages not installed (scripts/ensure-deps)")
def test_node_eventsource(realrun):
    result, doc = realrun("node-eventsource")
    outcomes = {r["id"]: r["outcome"] for r in doc["results"]}
    expected = {sid: "unsupported" for sid in CONFORMING}
    expected["sse.basic.open"] = "pass"
    assert outcomes == expected, "\n".join(result.outlines[-80:])


@pytest.mark.skipif(not node_packages() or not os.path.exists("/usr/lib/chromium/chromium"),
                    reason="needs the npm packages and Chromium")
def test_chromium(realrun):
    result, doc = realrun("chromium", "-m", "sse")
    outcomes = {r["id"]: r["outcome"] for r in doc["results"]}
    assert outcomes == {"sse.basic.open": "pass"}, "\n".join(result.outlines[-80:])
    assert doc["clients"][0]["version"]


def test_scenario_folder_outside_the_working_folder(pytester, harness_bin, monkeypatch,
                                                    tmp_path_factory):
    """The server reads scenario files only under its roots (docs/control-api.md, Security):
    the plugin makes every collected folder a root, wherever it is."""
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "mine"
    shutil.copytree(SCENARIOS, str(elsewhere))
    monkeypatch.setenv("PYTHONPATH", DRIVERS)
    result = pytester.runpytest_subprocess(
        "-p", "comet_harness.plugin", "-p", "no:cacheprovider", "--rootdir", str(pytester.path),
        "--harness-bin", harness_bin, "--client", "python-requests", "--results", "results",
        str(elsewhere), timeout=600)
    doc = json.loads((pytester.path / "results" / "results.json").read_text())
    outcomes = {r["id"]: r["outcome"] for r in doc["results"]}
    assert outcomes == CONFORMING, "\n".join(result.outlines[-80:])
