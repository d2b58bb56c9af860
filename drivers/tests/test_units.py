"""Unit tests of the plugin's parts that need no server: the client part made ready for an
adapter, the client registry, known failures, the adapter process management (with the
fake adapters) and the reports."""
import json
import os
import textwrap

import jsonschema
import pytest

from comet_harness import adapters, expectations, prepare, report

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(TESTS))
PY = "/usr/bin/python3"

ORIGINS = {"main": "http://127.0.0.1:4000", "cross": "http://127.0.0.1:4001",
           "alt": "http://localhost:4000"}
INSTANCE = {"instance": "w-1-x", "base": "/s/w-1-x",
            "urls": {k: v + "/s/w-1-x" for k, v in ORIGINS.items()}}

with open(os.path.join(ROOT, "drivers", "schema", "adapter-protocol.schema.json")) as f:
    PROTOCOL = json.load(f)
RUN_SCHEMA = jsonschema.Draft202012Validator(
    {"$schema": PROTOCOL["$schema"], "$defs": PROTOCOL["$defs"], "$ref": "#/$defs/run"})


# ------------------------------------------------------------------------ prepare

@pytest.mark.parametrize("client, url", [
    ({"xhr": {"url": "/slow"}}, "http://127.0.0.1:4000/s/w-1-x/slow"),
    ({"xhr": {"url": "slow?a=1"}}, "http://127.0.0.1:4000/s/w-1-x/slow?a=1"),
    ({"fetch": {"url": "/d", "origin": "cross"}}, "http://127.0.0.1:4001/s/w-1-x/d"),
    ({"image": {"url": "/p.gif", "origin": "alt"}}, "http://localhost:4000/s/w-1-x/p.gif"),
    ({"websocket": {"url": "/ws"}}, "ws://127.0.0.1:4000/s/w-1-x/ws"),
    ({"http": {"url": "http://example.test/x"}}, "http://example.test/x"),
    ({"xhr": {"url": "{{origin.cross}}{{base}}/d?i={{instance}}"}},
     "http://127.0.0.1:4001/s/w-1-x/d?i=w-1-x"),
    ({"websocket": {"url": "{{origin.alt}}{{base}}/ws"}}, "ws://localhost:4000/s/w-1-x/ws"),
])
def test_urls(client, url):
    action, prepared, deadline = prepare.prepare_client(client, INSTANCE, ORIGINS)
    assert prepared[action]["url"] == url
    assert deadline == prepare.DEFAULT_DEADLINE_MS
    RUN_SCHEMA.validate({"id": 1, "type": "run", "scenario": "a.b", "client": prepared,
                         "origins": ORIGINS, "page": ORIGINS["main"] + "/_harness/page",
                         "deadline_ms": deadline})


def test_urls_without_the_instance_urls():
    inst = {"instance": "i", "base": "/s/i"}
    _, p, _ = prepare.prepare_client({"xhr": {"url": "/a"}}, inst, ORIGINS)
    assert p["xhr"]["url"] == "http://127.0.0.1:4000/s/i/a"
    inst = {"instance": "i", "base": "/s/i", "urls": ORIGINS}  # origins only
    _, p, _ = prepare.prepare_client({"xhr": {"url": "/a", "origin": "cross"}}, inst, ORIGINS)
    assert p["xhr"]["url"] == "http://127.0.0.1:4001/s/i/a"


def test_templates_everywhere_and_durations_as_given():
    client = {"xhr": {"url": "/a", "timeout": 1500, "deadline": 3000, "abort": {"after": 100},
                      "headers": [{"X-I": "{{instance}}"}, {"X-Lit": "{{{{x}}"}],
                      "body": "{{request.body}} stays"}}
    original = json.loads(json.dumps(client))
    _, p, deadline = prepare.prepare_client(client, INSTANCE, ORIGINS)
    x = p["xhr"]
    assert (x["timeout"], x["abort"]["after"], deadline) == (1500, 100, 3000)
    assert x["headers"] == [{"X-I": "w-1-x"}, {"X-Lit": "{{x}}"}]
    assert x["body"] == "{{request.body}} stays"      # only the server knows the request
    assert client == original                          # not modified


DURATIONS = """id: e2e.duration.units
title: durations in every unit reach the server and the adapter as milliseconds
spec: https://example.org/
server:
  routes:
    - name: slow
      match: {path: /slow}
      response: {body: late, delay: 2min}
client:
  http: {url: /slow, timeout: .5s, deadline: 2min}
expect:
  client:
    events:
      - {type: error, name: ReadTimeout, t: {at_least: 450, at_most: 60000}}
    events_mode: contains
"""


def test_duration_units_end_to_end(harness_bin, tmp_path):
    """`.5s` and `2min`, parsed once by the binary: check --json gives milliseconds, the
    prepared run carries them, a real client times out after 0.5 s on a route the server
    holds for two minutes, and the grade passes."""
    import sys
    sys.path.insert(0, os.path.join(TESTS, "fakes"))
    stdout = sys.stdout
    import fakelib  # (it points sys.stdout at stderr, for the adapters' protocol)
    sys.stdout = stdout
    from comet_harness import grader, server

    path = tmp_path / "units.yaml"
    path.write_text(DURATIONS)
    doc = server.check(harness_bin, [str(path)])
    assert doc["errors"] == []
    scenario = doc["scenarios"][0]
    assert scenario["client"]["http"]["timeout"] == 500
    assert scenario["client"]["http"]["deadline"] == 120000
    assert scenario["server"]["routes"][0]["response"]["delay"] == 120000
    srv = server.HarnessServer(harness_bin)
    try:
        instance = srv.load(scenario["file"], "units-1")
        _, client, deadline_ms = prepare.prepare_client(scenario["client"], instance, srv.origins)
        assert (client["http"]["timeout"], deadline_ms) == (500, 120000)
        RUN_SCHEMA.validate({"id": 1, "type": "run", "scenario": scenario["id"], "client": client,
                             "origins": srv.origins, "page": srv.page, "deadline_ms": deadline_ms})
        observations = fakelib.http_run(client)
        verdict = grader.grade(prepare.expect_of(scenario, instance, srv.origins), observations)
        assert verdict.outcome == grader.PASS, (verdict.checks, observations)
    finally:
        srv.stop()


def test_bad_client_parts():
    for client in ({}, {"xhr": {"url": "/a"}, "fetch": {"url": "/b"}}, {"xhr": {}},
                   {"xhr": {"url": "/a", "origin": "elsewhere"}}):
        with pytest.raises(prepare.PrepareError):
            prepare.prepare_client(client, INSTANCE, ORIGINS)


def test_expect_templates():
    scenario = {"expect": {"server": {"requests": [{"route": "r", "headers": {
        "Origin": "{{origin.main}}", "Referer": {"regex": "^{{origin.main}}{{base}}/"}}}]}}}
    exp = prepare.expect_of(scenario, INSTANCE, ORIGINS)
    h = exp["server"]["requests"][0]["headers"]
    assert h == {"Origin": "http://127.0.0.1:4000",
                 "Referer": {"regex": "^http://127.0.0.1:4000/s/w-1-x/"}}


# ------------------------------------------------------------------------ registry

def test_builtin_registry():
    clients, default = adapters.load_registry(os.path.join(TESTS, "no-such-file.yaml"))
    assert default == ["chromium", "firefox", "webkit", "node-eventsource", "node-ws",
                       "node-fetch", "node-xhr2", "python-requests", "python-httpx",
                       "python-aiohttp", "python-websocket-client", "python-websockets", "curl"]
    assert set(default) == set(clients)
    assert clients["firefox"].command[-2:] == ["--browser", "firefox"]
    assert clients["python-requests"].command[0] == "/usr/bin/python3"


def test_shipped_registry_file():
    clients, default = adapters.load_registry()
    assert set(default) <= set(clients) and "python-requests" in default


def test_registry_file(tmp_path):
    f = tmp_path / "clients.yaml"
    f.write_text(textwrap.dedent("""\
        default: [python-requests, curl]
        clients:
          curl:
            command: /usr/bin/python3 drivers/adapters/curl.py --verbose
            start_timeout: 5
            description: curl
        """))
    clients, default = adapters.load_registry(str(f))
    assert default == ["python-requests", "curl"]
    assert clients["curl"].command == [PY, "drivers/adapters/curl.py", "--verbose"]
    assert clients["curl"].start_timeout == 5 and "chromium" in clients


@pytest.mark.parametrize("text", ["clients: {x: {}}\n", "default: [nobody]\n", "colour: red\n",
                                  "- a list\n", "clients: [\n"])
def test_registry_file_errors(tmp_path, text):
    f = tmp_path / "clients.yaml"
    f.write_text(text)
    with pytest.raises(adapters.RegistryError):
        adapters.load_registry(str(f))


# ------------------------------------------------------------------------ expectations

def test_expectations(tmp_path):
    (tmp_path / "c.yaml").write_text(textwrap.dedent("""\
        xhr.a.b: https://crbug.com/1 fires load twice
        sse.reconnect.*:
          reason: no Last-Event-ID
          link: https://example.test/bug/2
        """))
    e = expectations.load("c", str(tmp_path))
    assert expectations.lookup(e, "xhr.a.b") == "https://crbug.com/1 fires load twice"
    assert expectations.lookup(e, "sse.reconnect.x") == "no Last-Event-ID https://example.test/bug/2"
    assert expectations.lookup(e, "xhr.a.c") is None
    assert expectations.load("nobody", str(tmp_path)) == {}
    assert expectations.stale(e, ["xhr.a.b"]) == ["sse.reconnect.*"]
    (tmp_path / "bad.yaml").write_text("xhr.a.b: ''\n")
    with pytest.raises(expectations.ExpectationsError):
        expectations.load("bad", str(tmp_path))


def test_shipped_expectation_files_load():
    folder = os.path.join(ROOT, "drivers", "expectations")
    for name in os.listdir(folder):
        if name.endswith(".yaml"):
            expectations.load(name[:-5], folder)


# ------------------------------------------------------------------------ adapter processes

def fake(name, *args, timeout=15):
    return adapters.ClientSpec(name, [PY, "drivers/tests/fakes/%s.py" % name] + list(args),
                               start_timeout=timeout)


RUN = ("x.y", {"http": {"url": "http://127.0.0.1:9/none"}}, ORIGINS, ORIGINS["main"] + "/p", 2000)


def test_start_records_the_client():
    p = adapters.AdapterProcess(fake("conforming"))
    try:
        started = p.start()
        assert started["name"] == "fake-conforming" and started["capabilities"] == ["http"]
        kind, obs = p.run(*RUN)  # a refused connection is an observation, not an error
        assert kind == "result" and obs["events"][0]["type"] == "error"
        assert p.run("x.y", {"eventsource": {"url": "http://a/"}}, ORIGINS, "p", 100) == \
            ("unsupported", "no eventsource")
        assert "fake-conforming: ready" in p.stderr_since(0)
    finally:
        p.stop()
    assert p.proc.returncode == 0


@pytest.mark.parametrize("name, kind", [("crashing", "crash"), ("babbling", "protocol"),
                                        ("hanging", "hang")])
def test_misbehaving_adapters(name, kind):
    p = adapters.AdapterProcess(fake(name, "--on", "x.y"))
    try:
        p.start()
        mark = p.stderr_mark()
        with pytest.raises(adapters.AdapterError) as err:
            p.run(*RUN, grace_s=0.5)
        assert err.value.kind == kind and err.value.fatal
        if name != "babbling":
            assert name in p.stderr_since(mark)
    finally:
        p.kill()
    assert not p.alive()


def test_pool_restarts_a_crashed_adapter():
    pool = adapters.AdapterPool({"fake-crashing": fake("crashing", "--on", "x.y")}, ROOT, 1)
    try:
        first = pool.get("fake-crashing")
        with pytest.raises(adapters.AdapterError):
            first.run(*RUN)
        pool.discard("fake-crashing")
        second = pool.get("fake-crashing")
        assert second is not first and second.alive()
        assert second.run("other", *RUN[1:])[0] == "result"
    finally:
        pool.close()


def test_pool_gives_up_on_an_adapter_that_cannot_start():
    spec = adapters.ClientSpec("nothing", [PY, "-c", "import sys; print('no', file=sys.stderr)"],
                               start_timeout=5)
    pool = adapters.AdapterPool({"nothing": spec}, ROOT)
    for _ in range(2):
        with pytest.raises(adapters.AdapterError) as err:
            pool.get("nothing")
        assert err.value.kind == "crash"
    with pytest.raises(adapters.AdapterError) as err:
        pool.get("nothing")  # no third launch
    assert "could not be started (2 tries)" in str(err.value) and "no" in err.value.stderr
    pool.close()


def test_missing_program_is_a_start_error():
    spec = adapters.ClientSpec("ghost", ["/nonexistent/program"])
    with pytest.raises(adapters.AdapterError) as err:
        adapters.AdapterProcess(spec)
    assert err.value.kind == "start"


# ------------------------------------------------------------------------ reports

def record(sid, client, outcome, **kw):
    rec = {"nodeid": "f::%s[%s]" % (sid, client), "id": sid, "title": "T " + sid,
           "spec": "https://spec.test/#" + sid, "area": sid.split(".")[0], "tags": [],
           "file": "scenarios/x.yaml", "client": client, "client_version": "1.0",
           "outcome": outcome, "message": "m " + outcome, "duration": 0.1, "checks": [],
           "notes": [], "observations": {"events": []}, "journal": ["#1 GET /x → 200 [r]"],
           "stderr": "", "expect": {}}
    rec.update(kw)
    return rec


RECORDS = [record("xhr.a", "c1", "pass"), record("xhr.a", "c2", "fail", details="diff <b>here</b>",
                                                 checks=[{"path": "client.status", "ok": False,
                                                          "strict": True, "expected": "0",
                                                          "observed": "200", "message": "m",
                                                          "detail": "- a\n+ b"}]),
           record("sse.b", "c1", "non-strict"), record("sse.b", "c2", "unsupported"),
           record("sse.c", "c1", "error", details="the adapter crashed"),
           record("sse.c", "c2", "xfail"), record("xhr.d", "c1", "xpass"),
           record("xhr.d", "c2", "pass")]
META = {"clients": [{"name": "c1", "version": "1.0"}, {"name": "c2", "version": "2.0"}],
        "harness_version": "0.1.0", "collect_errors": [
            {"file": "scenarios/bad.yaml", "line": 3, "col": 5, "message": "unknown key"}]}


def test_totals():
    by_client, by_area = report.totals(RECORDS)
    assert by_client["c1"] == {"pass": 1, "non-strict": 1, "error": 1, "xpass": 1}
    assert by_area["sse"]["c2"] == {"unsupported": 1, "xfail": 1}
    assert report.totals_lines(RECORDS)[0].split() == ["c1", "1", "pass,", "1", "non-strict,",
                                                       "1", "xpass,", "1", "error"]


def test_results_json():
    doc = report.results_json(RECORDS, META)
    assert doc["totals"]["c2"]["fail"] == 1 and doc["areas"]["xhr"]["c1"]["pass"] == 1
    assert [r["id"] for r in doc["results"]][:2] == ["sse.b", "sse.b"]
    json.dumps(doc)


def test_summary_md():
    md = report.summary_md(RECORDS, META)
    assert md.startswith("## Comet Harness conformance: 8 runs, 4 scenarios × 2 clients")
    assert "**1 failures, 1 errors, 1 unexpected passes**" in md
    assert "| c2 | 2.0 | 1 | 0 | 1 | 1 | 0 | 1 | 0 | 0 |" in md
    assert "| xhr | 1/2 ✗1 | 2/2 |" in md or "| xhr | 1/2 ✗1 | 1/2 ✗1 |" in md
    assert "- `xhr.a` [c2] ([spec](https://spec.test/#xhr.a)): m fail" in md
    assert "`scenarios/bad.yaml:3:5`: unknown key" in md


def test_report_html(tmp_path):
    paths = report.write_all(str(tmp_path), RECORDS, META)
    assert sorted(os.path.basename(p) for p in paths) == ["report.html", "results.json",
                                                          "summary.md"]
    html = (tmp_path / "report.html").read_text()
    assert html.count('class="cell"') == 8
    for outcome in ("pass", "fail", "non-strict", "unsupported", "error", "xfail", "xpass"):
        assert 'class="o-%s" href="#r' % outcome in html
    assert "diff &lt;b&gt;here&lt;/b&gt;" in html          # escaped
    assert '<span class="del">- a</span>' in html
    assert "scenarios/bad.yaml:3:5: unknown key" in html
    assert json.loads((tmp_path / "results.json").read_text())["format"] == 1
