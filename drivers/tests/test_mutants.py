"""The catalogue catches broken clients: an EventSource written from the HTML standard
(drivers/tests/fakes/eventsource_py.py) passes the SSE scenarios of scenarios/sse/ that
apply to a non-browser client, and each of its mutants fails exactly the scenarios aimed at
the rule it breaks (the sse.cors.* scenarios are a browser's protocol and are left out);
the same for the `ws` package against scenarios/websocket/, and its mutant that does not
answer pings; and for the `xhr2` package against scenarios/xhr/, and its mutant that
ignores the timeout attribute (xhr2 itself fails the scenarios its expectations file
lists; the mutant must fail those and the timeout scenarios, nothing else)."""
import json
import os
import subprocess
import sys

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
DRIVERS = os.path.dirname(TESTS)
ROOT = os.path.dirname(DRIVERS)
CLIENTS = os.path.join(TESTS, "fakes", "clients.yaml")

CAUGHT = {
    "eventsource-py": set(),
    "eventsource-py-ignore-cr": {
        "sse.parse.cr-line-endings", "sse.parse.crlf-line-endings",
        "sse.parse.mixed-line-endings", "sse.parse.crlf-split-across-chunks",
        "sse.parse.invalid-utf8-replaced",  # its raw bytes end their lines with CRLF
    },
    "eventsource-py-no-last-event-id": {"sse.reconnect.last-event-id",
                                        "sse.reconnect.newest-id-sent"},
    "eventsource-py-reconnect-after-204": {"sse.reconnect.204-stops"},
}


AREA = {name: "sse" for name in CAUGHT}
CAUGHT.update({
    "node-ws": set(),
    "node-ws-no-pong": {"websocket.client.pong-echoes-ping-payload"},
})
AREA.update({"node-ws": "websocket", "node-ws-no-pong": "websocket"})


def _xhr2_known_failures():
    import yaml
    with open(os.path.join(DRIVERS, "expectations", "node-xhr2.yaml")) as f:
        return {k for k in yaml.safe_load(f) if k.startswith("xhr.")}


XHR2_KNOWN = _xhr2_known_failures()
CAUGHT.update({
    "node-xhr2": XHR2_KNOWN,
    # xhr.timeout.stalled-body is already among xhr2's own failures (status stays 200)
    "node-xhr2-no-timeout": XHR2_KNOWN | {"xhr.timeout.before-headers",
                                         "xhr.timeout.exact-event-list"},
})
AREA.update({"node-xhr2": "xhr", "node-xhr2-no-timeout": "xhr"})


@pytest.mark.parametrize("client", sorted(CAUGHT))
def test_mutant_fails_exactly_the_scenarios_aimed_at_it(harness_bin, tmp_path, client):
    results = tmp_path / "results"
    env = dict(os.environ, PYTHONPATH=DRIVERS)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c",
         os.path.join(DRIVERS, "pytest.ini"), "--rootdir", ROOT, "-p", "comet_harness.plugin",
         "--harness-bin", harness_bin, "--clients-file", CLIENTS, "--client", client,
         "--expectations", str(tmp_path / "no-expectations"), "--scenarios",
         os.path.join(ROOT, "scenarios", AREA[client]), "--results", str(results), "-q",
         "-k", "not cors", os.path.join(ROOT, "scenarios", AREA[client])],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    doc = json.loads((results / "results.json").read_text())
    outcomes = {r["id"]: r["outcome"] for r in doc["results"]}
    assert len(outcomes) >= 30, proc.stdout[-3000:]
    failed = {i for i, o in outcomes.items() if o == "fail"}
    assert failed == CAUGHT[client], proc.stdout[-5000:]
    # xhr2 lacks synchronous requests, FormData, blob and document responses: unsupported
    allowed = {"pass", "fail", "unsupported"} if AREA[client] == "xhr" else {"pass", "fail"}
    assert set(outcomes.values()) <= allowed, outcomes
