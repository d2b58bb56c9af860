"""The catalogue catches broken clients: an EventSource written from the HTML standard
(drivers/tests/fakes/eventsource_py.py) passes the SSE scenarios of scenarios/sse/ that
apply to a non-browser client, and each of its mutants fails exactly the scenarios aimed at
the rule it breaks (the sse.cors.* scenarios are a browser's protocol and are left out);
the same for the `ws` package against scenarios/websocket/, and its mutant that does not
answer pings; and for the `xhr2` package against scenarios/xhr/, and its mutant that
ignores the timeout attribute (xhr2 itself fails the scenarios its expectations file
lists; the mutant must fail those and the timeout scenarios, nothing else). The machinery
of client scripts, per-kind expectations and timing matchers has its own: an EventSource
that reconnects too early (caught by the reconnection-gap scenarios), a `ws` that fires open
when its handshake failed (caught by the failed-handshake scenarios), and a Chromium whose
XMLHttpRequest never throws InvalidStateError (caught by the InvalidStateError table of
scenarios/xhr/script-*, run against plain Chromium as its base). A client without the
`steps` capability reports the client scripts of its area unsupported."""
import fnmatch
import json
import os
import subprocess
import sys

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
DRIVERS = os.path.dirname(TESTS)
ROOT = os.path.dirname(DRIVERS)
CLIENTS = os.path.join(TESTS, "fakes", "clients.yaml")

def _scenario_docs(area):
    """{id: scenario} of the scenarios of an area, as `harness check --json` reads them."""
    from conftest import harness_binary
    binary = harness_binary()
    if not binary:
        return {}
    out = subprocess.run([binary, "check", "--json", os.path.join(ROOT, "scenarios", area)],
                         capture_output=True, text=True, check=True).stdout
    return {s["id"]: s for s in json.loads(out)["scenarios"]}


def _scenarios(area):
    """{id: client part} of the scenarios of an area."""
    return {i: s["client"] for i, s in _scenario_docs(area).items()}


CAUGHT = {
    "eventsource-py": set(),
    "eventsource-py-ignore-cr": {
        "sse.parse.cr-line-endings", "sse.parse.crlf-line-endings",
        "sse.parse.mixed-line-endings", "sse.parse.crlf-split-across-chunks",
        "sse.parse.invalid-utf8-replaced",  # its raw bytes end their lines with CRLF
    },
    "eventsource-py-no-last-event-id": {
        "sse.reconnect.last-event-id", "sse.reconnect.newest-id-sent",
        "sse.reconnect.last-event-id-each-reconnect",
        "sse.reconnect.id-only-block-sets-last-event-id"},
    # the third attempt of sse.readystate.each-listener gets a 204 that must end it
    "eventsource-py-reconnect-after-204": {"sse.reconnect.204-stops",
                                           "sse.readystate.each-listener"},
    "eventsource-py-reconnect-early": {
        "sse.reconnect.gap-at-least-retry", "sse.reconnect.retry-changes-gap",
        "sse.reconnect.gaps-every-reconnect", "sse.reconnect.gap-after-network-error",
        "sse.reconnect.retry-changed-mid-stream", "sse.reconnect.invalid-retry-keeps-time",
        "sse.reconnect.retry-without-data"},
}


AREA = {name: "sse" for name in CAUGHT}

def _failed_handshakes():
    """Every WebSocket scenario whose handshake fails (handshake and failure scenarios that
    expect no open event): a client that reports such a connection as open fails each of
    them, and nothing else."""
    out = set()
    for sid, doc in _scenario_docs("websocket").items():
        if not sid.startswith(("websocket.handshake.", "websocket.failure.")):
            continue
        expect = doc.get("expect") or {}
        blocks = [expect] + list(expect.get("cases") or [])
        items = [i for b in blocks for i in ((b.get("client") or {}).get("events") or [])]
        if not any(i.get("type") == "open" and i.get("count") != 0 for i in items):
            out.add(sid)
    return out


def _known(client, prefix):
    """The scenarios (ids starting with prefix) that the real client fails, as its
    expectations file records them: a mutant of it fails these too."""
    import yaml
    path = os.path.join(DRIVERS, "expectations", client + ".yaml")
    with open(path) as f:
        patterns = [k for k in (yaml.safe_load(f) or {}) if k.startswith(prefix)]
    ids = _scenarios(prefix.split(".")[0])
    return {i for i in ids for p in patterns if fnmatch.fnmatchcase(i, p)}


WS_KNOWN = _known("node-ws", "websocket.")
CAUGHT.update({
    "node-ws": WS_KNOWN,
    # order-preserved has a frame after a ping, and expects its pong
    "node-ws-no-pong": WS_KNOWN | {"websocket.client.pong-echoes-ping-payload",
                                   "websocket.messages.order-preserved"},
    # ws ends closed-during-handshake with close alone, no error: nothing to turn into open
    "node-ws-open-on-failure": WS_KNOWN | _failed_handshakes() -
    {"websocket.failure.closed-during-handshake"},
})
AREA.update({"node-ws": "websocket", "node-ws-no-pong": "websocket",
             "node-ws-open-on-failure": "websocket"})


def _xhr2_known_failures():
    import yaml
    with open(os.path.join(DRIVERS, "expectations", "node-xhr2.yaml")) as f:
        patterns = [k for k in yaml.safe_load(f) if k.startswith("xhr.")]
    ids = _scenarios("xhr")
    return {i for i in ids for p in patterns if fnmatch.fnmatchcase(i, p)}


XHR2_KNOWN = _xhr2_known_failures()
CAUGHT.update({
    "node-xhr2": XHR2_KNOWN,
    # xhr.timeout.stalled-body is already among xhr2's own failures (status stays 200);
    # xhr2 does not clear a timeout set to 0 in flight, which a client ignoring every
    # timeout gets right by accident
    "node-xhr2-no-timeout": XHR2_KNOWN - {"xhr.script.timeout-cleared-in-flight"} |
    {"xhr.timeout.before-headers", "xhr.timeout.exact-event-list"},
})
AREA.update({"node-xhr2": "xhr", "node-xhr2-no-timeout": "xhr"})

# Chromium and its mutant, on the client scripts of scenarios/xhr (a browser is slow to run
# the whole area twice): the mutant fails the scenarios where the XHR standard throws
# InvalidStateError, and no other.
CHROMIUM_KNOWN = _known("chromium", "xhr.script.")
CAUGHT.update({
    "chromium-xhr": CHROMIUM_KNOWN,
    "chromium-xhr-no-invalid-state": CHROMIUM_KNOWN | {
        "xhr.script.unsent-calls-throw", "xhr.script.with-credentials-headers-received",
        "xhr.script.set-request-header-after-send", "xhr.script.set-request-header-in-loadstart",
        "xhr.script.override-mime-type-loading", "xhr.script.override-mime-type-done",
        "xhr.script.response-type-loading", "xhr.script.response-type-done",
        "xhr.script.with-credentials-after-send", "xhr.script.send-twice",
        "xhr.script.send-in-load"},
})
AREA.update({"chromium-xhr": "xhr", "chromium-xhr-no-invalid-state": "xhr"})
KEYWORDS = {"chromium-xhr": "script", "chromium-xhr-no-invalid-state": "script"}
NEEDS = {"chromium-xhr": "/usr/lib/chromium/chromium",
         "chromium-xhr-no-invalid-state": "/usr/lib/chromium/chromium"}


# Known failures whose outcome on the real client depends on the timing of the bytes, so
# that a run may pass them: ws 8.23 fires the message sent right after the handshake
# after close() only when it arrives with the handshake (it XPASSed in a full conformance
# run and in one make check of two). Neither a pass nor a fail of these says anything
# about a mutant.
TIMING_DEPENDENT = {"websocket.script.close-in-open-listener"}


@pytest.mark.parametrize("client", sorted(CAUGHT))
def test_mutant_fails_exactly_the_scenarios_aimed_at_it(harness_bin, tmp_path, client):
    if client in NEEDS and not os.path.exists(NEEDS[client]):
        pytest.skip(NEEDS[client] + " not installed")
    results = tmp_path / "results"
    env = dict(os.environ, PYTHONPATH=DRIVERS)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c",
         os.path.join(DRIVERS, "pytest.ini"), "--rootdir", ROOT, "-p", "comet_harness.plugin",
         "--harness-bin", harness_bin, "--clients-file", CLIENTS, "--client", client,
         "--expectations", str(tmp_path / "no-expectations"), "--scenarios",
         os.path.join(ROOT, "scenarios", AREA[client]), "--results", str(results), "-q",
         "-k", "not cors" + (" and " + KEYWORDS[client] if client in KEYWORDS else ""),
         os.path.join(ROOT, "scenarios", AREA[client])],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    doc = json.loads((results / "results.json").read_text())
    outcomes = {r["id"]: r["outcome"] for r in doc["results"]}
    assert len(outcomes) >= (10 if client in KEYWORDS else 30), proc.stdout[-3000:]
    failed = {i for i, o in outcomes.items() if o == "fail"}
    assert failed - TIMING_DEPENDENT == CAUGHT[client] - TIMING_DEPENDENT, proc.stdout[-5000:]
    # xhr2 lacks synchronous requests, FormData, blob and document responses: unsupported;
    # a client without the steps capability has the client scripts unsupported
    scripts = {i for i, c in _scenarios(AREA[client]).items() if "steps" in c}
    allowed = {"pass", "fail", "unsupported"} if AREA[client] == "xhr" else {"pass", "fail"}
    assert {o for i, o in outcomes.items() if i not in scripts} <= allowed, outcomes
    assert {o for i, o in outcomes.items() if i in scripts} <= allowed | {"unsupported"}, outcomes
