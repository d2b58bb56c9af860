"""Unit tests of the plugin's parts that need no server: the client part made ready for an
adapter, the client registry, known failures, the adapter process management (with the
fake adapters) and the reports."""
import json
import os
import re
import textwrap
import time

import jsonschema
import pytest

from comet_harness import clients as registry, expectations, prepare, report

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
    srv = server.HarnessServer(harness_bin, roots=[tmp_path])
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
    clients, default = registry.load_registry(os.path.join(TESTS, "no-such-file.yaml"))
    assert default == ["chromium", "firefox", "webkit", "node-eventsource",
                       "node-undici-eventsource", "node-ws", "node-undici-websocket",
                       "node-fetch", "node-xhr2", "python-requests", "python-httpx",
                       "python-aiohttp", "python-websocket-client", "python-websockets",
                       "python-aiohttp-websocket", "curl"]
    # every built-in runs by default but the remote browsers, which need `make grid`
    assert set(clients) - set(default) == {"grid-chrome", "grid-webkit"}
    assert clients["firefox"].command[-2:] == ["--browser", "firefox"]
    assert clients["python-requests"].command[0] == "/usr/bin/python3"


def test_shipped_registry_file():
    clients, default = registry.load_registry()
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
    clients, default = registry.load_registry(str(f))
    assert default == ["python-requests", "curl"]
    assert clients["curl"].command == [PY, "drivers/adapters/curl.py", "--verbose"]
    assert clients["curl"].start_timeout == 5 and "chromium" in clients


@pytest.mark.parametrize("text", ["clients: {x: {}}\n", "default: [nobody]\n", "colour: red\n",
                                  "- a list\n", "clients: [\n"])
def test_registry_file_errors(tmp_path, text):
    f = tmp_path / "clients.yaml"
    f.write_text(text)
    with pytest.raises(registry.RegistryError):
        registry.load_registry(str(f))


# ------------------------------------------------------------ Node library clients

@pytest.mark.parametrize("version, spec, ok", [
    ("2.0.2", "<3", True), ("3.0.0", "<3", False), ("4.1.1", ">=4", True),
    ("3.9.9", "<=3", True), ("4.0.0", "<=3", False), ("2.1.5", ">=2.1 <3", True),
    ("2.0.9", ">=2.1 <3", False), ("4.1.1", "=4.1.1", True), ("4.1.2", "4.1.1", False),
    ("4.2.0", "4", True), ("10.0.0", ">9", True), ("9.1.0", ">9", False),
    ("7.30.2-rc.1", ">=7.30", True),
])
def test_version_matches(version, spec, ok):
    assert registry.version_matches(version, spec) is ok


@pytest.mark.parametrize("spec", ["", "~2", "^2.0", ">=x", "<3 ||"])
def test_version_range_errors(spec):
    with pytest.raises(ValueError):
        registry.version_matches("1.0.0", spec)


def fake_package(root, name, version):
    folder = root / "node_modules" / name
    folder.mkdir(parents=True)
    (folder / "package.json").write_text(json.dumps({"name": name, "version": version}))


def test_library_argument_applies_the_matching_versions(tmp_path):
    f = tmp_path / "clients.yaml"
    f.write_text(textwrap.dedent("""\
        clients:
          lib-a:
            capabilities: [eventsource]
            library:
              npm: pkg
              global: EventSource
              export: EventSource
              lacks: [{key: with_credentials, in: [true], reason: no cookies}]
              versions:
                "<3": {export: module}
                "<2": {lacks: []}
          lib-b:
            capabilities: [eventsource]
            command: [node, drivers/adapters/node-lib.mjs, --mutant, x]
            library: lib-a
        """))
    clients, _ = registry.load_registry(str(f))
    spec = clients["lib-a"]
    assert spec.command == registry.NODE_LIB and spec.library["npm"] == "pkg"
    assert clients["lib-b"].library == spec.library
    for version, export, lacks in [("4.1.1", "EventSource", 1), ("2.0.2", "module", 1),
                                   ("1.4.0", "module", 0)]:
        root = tmp_path / version
        fake_package(root, "pkg", version)
        spec.library_root = str(root)
        decl = registry.library_argument(spec)
        assert decl["export"] == export and len(decl["lacks"]) == lacks, version
        assert decl["root"] == str(root) and decl["name"] == "lib-a"
        assert "versions" not in decl and decl["capabilities"] == ["eventsource"]
        argv = spec.argv()
        assert argv[-2] == "--library" and json.loads(argv[-1]) == decl


@pytest.mark.parametrize("library", [
    "{npm: p}",                                      # no global
    "{npm: p, global: EventSource}",                 # no export shape
    "{builtin: undici, npm: p, global: fetch}",      # both
    "{global: fetch}",                               # neither
    "{npm: p, global: X, export: module, colour: red}",
    "{npm: p, global: X, export: module, lacks: [{key: a}]}",            # no reason
    "{npm: p, global: X, export: module, versions: {'~2': {}}}",         # a range npm has
    "{npm: p, global: X, export: module, versions: {'<2': {npm: q}}}",   # not an override
    "nobody",                                        # no such client to share with
])
def test_library_errors(tmp_path, library):
    f = tmp_path / "clients.yaml"
    f.write_text("clients:\n  x:\n    library: %s\n" % library)
    with pytest.raises(registry.RegistryError, match="clients.x"):
        registry.load_registry(str(f))


def test_npm_libraries_are_pinned_in_package_json():
    """A library client's version is drivers/package.json's (the one place it is written),
    and the packages its clients.yaml entries name are all there."""
    for name, spec in registry.builtin_clients().items():
        if spec.library is not None and "npm" in spec.library:
            assert registry.pinned_version(spec.library["npm"]), name
            assert "node_modules" in spec.needs, name


@pytest.mark.parametrize("name, message", [
    ("nobody@1.0.0", "unknown client nobody"),
    ("node-eventsource@2", "the version must be exact"),
    ("node-eventsource@latest", "the version must be exact"),
    ("python-aiohttp@3.9.0", "Python libraries come from Debian"),
    ("node-fetch@6.0.0", "Node's own"),
    ("curl@8.0.0", "not an npm library client"),
])
def test_versioned_client_errors(name, message):
    clients, _ = registry.load_registry()
    with pytest.raises(registry.RegistryError, match=message):
        registry.add_versioned(clients, [name])


def test_versioned_client_reuses_its_install(tmp_path, monkeypatch):
    fake_package(tmp_path / "eventsource@2.0.2", "eventsource", "2.0.2")
    monkeypatch.setattr(registry.shutil, "which", lambda _: None)  # npm must not be needed
    clients, _ = registry.load_registry()
    registry.add_versioned(clients, ["node-eventsource@2.0.2", "curl"], str(tmp_path))
    spec = clients["node-eventsource@2.0.2"]
    assert spec.library_root == str(tmp_path / "eventsource@2.0.2") and not spec.default
    decl = registry.library_argument(spec)
    assert decl["name"] == "node-eventsource" and decl["export"] == "module"  # "<3"
    assert clients["node-eventsource"].library_root is None  # the base is unchanged


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
    return registry.ClientSpec(name, [PY, "drivers/tests/fakes/%s.py" % name] + list(args),
                               start_timeout=timeout)


RUN = ("x.y", {"http": {"url": "http://127.0.0.1:9/none"}}, ORIGINS, ORIGINS["main"] + "/p", 2000)


def test_start_records_the_client():
    p = registry.AdapterProcess(fake("conforming"))
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
    p = registry.AdapterProcess(fake(name, "--on", "x.y"))
    try:
        p.start()
        mark = p.stderr_mark()
        with pytest.raises(registry.AdapterError) as err:
            p.run(*RUN, grace_s=0.5)
        assert err.value.kind == kind and err.value.fatal
        if name != "babbling":
            assert name in p.stderr_since(mark)
    finally:
        p.kill()
    assert not p.alive()


def test_pool_restarts_a_crashed_adapter():
    pool = registry.AdapterPool({"fake-crashing": fake("crashing", "--on", "x.y")}, ROOT, 1)
    try:
        first = pool.get("fake-crashing")
        with pytest.raises(registry.AdapterError):
            first.run(*RUN)
        pool.discard("fake-crashing")
        second = pool.get("fake-crashing")
        assert second is not first and second.alive()
        assert second.run("other", *RUN[1:])[0] == "result"
    finally:
        pool.close()


def test_pool_gives_up_on_an_adapter_that_cannot_start():
    spec = registry.ClientSpec("nothing", [PY, "-c", "import sys; print('no', file=sys.stderr)"],
                               start_timeout=5)
    pool = registry.AdapterPool({"nothing": spec}, ROOT)
    for _ in range(2):
        with pytest.raises(registry.AdapterError) as err:
            pool.get("nothing")
        assert err.value.kind == "crash"
    with pytest.raises(registry.AdapterError) as err:
        pool.get("nothing")  # no third launch
    assert "could not be started (2 tries)" in str(err.value) and "no" in err.value.stderr
    pool.close()


def test_kill_reaches_a_child_in_a_session_of_its_own():
    """puppeteer starts its browser in a process group of its own: killing the adapter's
    group alone left the browser running, so kill() also kills every descendant."""
    code = ("import subprocess, sys, time; c = subprocess.Popen(['sleep', '600'], "
            "start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
            "print('child', c.pid, file=sys.stderr, flush=True); "
            "time.sleep(600)")
    p = registry.AdapterProcess(registry.ClientSpec("detaching", [PY, "-c", code]))
    try:
        deadline = time.monotonic() + 10
        while "child" not in p.stderr_since(0) and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(p.stderr_since(0).split("child", 1)[1].split()[0])
        assert os.getpgid(child) != os.getpgid(p.proc.pid)
    finally:
        p.kill()

    def gone():
        try:
            with open("/proc/%d/stat" % child) as f:
                return f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True
    deadline = time.monotonic() + 10
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone()


def test_missing_program_is_a_start_error():
    spec = registry.ClientSpec("ghost", ["/nonexistent/program"])
    with pytest.raises(registry.AdapterError) as err:
        registry.AdapterProcess(spec)
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
    assert "8 runs · 2 areas · 2 clients · " in html
    for outcome in ("pass", "fail", "non-strict", "unsupported", "error", "xfail", "xpass"):
        assert 'class="o-%s" href="#r' % outcome in html
    assert "scenarios/bad.yaml:3:5: unknown key" in html
    assert json.loads((tmp_path / "results.json").read_text())["format"] == 1
    # the details are not in the page: in report-details/, a script per part
    assert "diff" not in html and "here" not in html
    parts = sorted(os.listdir(tmp_path / "report-details"))
    assert parts == ["0.js"]
    text = (tmp_path / "report-details" / "0.js").read_text()
    assert text.startswith("cometDetails(") and text.rstrip().endswith(");")
    cells = json.loads(text[len("cometDetails("):text.rstrip().rindex(")")])
    assert len(cells) == 8
    anchors = {(c["id"], c["client"]): a for a, c in cells.items()}
    fail = cells[anchors[("xhr.a", "c2")]]
    assert fail["details"] == "diff <b>here</b>"  # rendered as text by the page's script
    assert fail["checks"][0]["detail"] == "- a\n+ b"
    # every cell's link names the anchor of its own details
    for (sid, client), anchor in anchors.items():
        assert re.search(r'id="c-%s"><a class="o-[a-z-]+" href="#%s"' % (anchor, anchor), html)


def test_report_header_counts_in_the_singular(tmp_path):
    report.write_all(str(tmp_path), RECORDS[:1], dict(META, clients=META["clients"][:1]))
    assert "1 run · 1 area · 1 client · " in (tmp_path / "report.html").read_text()


def test_report_lists_failures_first_and_filters(tmp_path):
    report.write_all(str(tmp_path), RECORDS, META)
    html = (tmp_path / "report.html").read_text()
    first = html.index('id="failing"')
    assert first < html.index('class="clients"') < html.index('id="matrix"')
    failing = html[first:html.index("</section>", first)]
    # fail, xpass and error, failures first, each a link to its cell
    listed = re.findall(r'<li data-area="(\w+)" data-client="(\w+)" data-outcome="([\w-]+)">'
                        r'<a href="#(r\d+)">', failing)
    assert [(a, c, o) for a, c, o, _ in listed] == [("xhr", "c2", "fail"), ("xhr", "c1", "xpass"),
                                                     ("sse", "c1", "error")]
    for _a, _c, _o, anchor in listed:
        assert 'id="c-%s"' % anchor in html
    for select in ("f-area", "f-client", "f-outcome"):
        assert 'id="%s"' % select in html
    assert html.count('<tr class="row" data-area=') == 4
    assert '<td class="cell" data-client="c2" data-outcome="fail"' in html
    report.write_all(str(tmp_path), [record("xhr.a", "c1", "pass")], META)
    assert "No failures, errors or unexpected passes." in (tmp_path / "report.html").read_text()


def test_report_stays_light_at_10000_runs(tmp_path):
    clients = ["client-%d" % i for i in range(10)]
    big = "x" * 3000
    records = [record("area%d.s%d" % (i % 8, i), c, "fail" if i % 97 == 0 else "pass",
                      details=big, observations={"responseText": big},
                      journal=["#1 GET /x → 200 [r]"] * 20)
               for i in range(1000) for c in clients]
    t0 = time.monotonic()
    paths = report.write_all(str(tmp_path), records, {"clients": [{"name": c} for c in clients]})
    took = time.monotonic() - t0
    html = os.path.getsize(tmp_path / "report.html")
    details = os.listdir(tmp_path / "report-details")
    assert len(details) == 10000 // report.DETAILS_PER_FILE
    assert html < 4_000_000, html          # the details (~100 MB) are not in the page
    assert took < 60, took
    assert len(paths) == 3


def test_summary_md_fits_a_pull_request_comment():
    records = [record("xhr.s%d" % i, "c%d" % (i % 3), "fail", details="line\n" * 80,
                      message="m " * 100) for i in range(400)]
    md = report.summary_md(records, dict(META, report_url="https://ci.test/job/1/report.html"))
    assert len(md) <= report.SUMMARY_LIMIT <= 65536
    assert "full report: [report.html](https://ci.test/job/1/report.html)" in md
    assert re.search(r"the summary stops here to fit a pull-request comment: \d+ more entries "
                     r"are in \[the full report\]\(https://ci.test/job/1/report.html\)", md)
    assert md.count("<details>") == md.count("</details>")  # no block is cut
    assert md.count("```") % 2 == 0
    small = report.summary_md(RECORDS, META)
    assert "stops here" not in small and "full report: [report.html](report.html)" in small


# ------------------------------------------------------------------------ the one client list

def readme_client_rows():
    """The rows of README.md's client table (| client | what it is | capabilities |)."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    start = lines.index("| client | what it is | capabilities |")
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def client_row(spec):
    return "| `%s` | %s | %s |" % (spec.name, spec.description, ", ".join(spec.capabilities))


def test_readme_client_table_is_the_registry():
    """README.md's client table says what drivers/clients.yaml says, in its order: on drift,
    paste the rows printed here."""
    expected = [client_row(s) for s in registry.builtin_clients().values() if s.default]
    assert readme_client_rows() == expected, "\n" + "\n".join(expected)


def test_registry_entries_are_complete():
    for name, spec in registry.builtin_clients().items():
        assert spec.description and spec.capabilities and spec.kind in registry.KINDS, name
        assert spec.command and spec.start_timeout > 0, name


def test_list_clients_counts_in_words():
    from comet_harness.plugin import list_clients

    class State:
        pass
    state = State()
    one = registry.ClientSpec("only-one-with-a-long-name", ["x"], True, 5, "d", ["http"])
    state.registry, state.default = {one.name: one}, [one.name]
    assert list_clients(state)[-1] == "1 client, 1 run by default"
    two = registry.ClientSpec("b", ["y"], False, 5, "", ["xhr", "fetch"], "browser")
    state.registry = {one.name: one, "b": two}
    lines = list_clients(state)
    assert lines[-1] == "2 clients, 1 run by default"
    assert lines[1].startswith("b ") and lines[3].startswith(one.name)
    assert lines[0].index("default") == lines[3].index("yes") == len(one.name) + 2
    assert lines[1].index("browser") == lines[3].index("program") == lines[0].index("kind")


def test_adapters_doc_registry_example_loads(tmp_path):
    """The clients.yaml entry that docs/adapters.md shows is one the registry takes."""
    with open(os.path.join(ROOT, "docs", "adapters.md"), encoding="utf-8") as f:
        text = f.read()
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    block = next(b for b in blocks if "my-client:" in b)
    (tmp_path / "c.yaml").write_text("clients:\n" + block)
    clients, default = registry.load_registry(str(tmp_path / "c.yaml"))
    spec = clients["my-client"]
    assert spec.capabilities == ["http"] and spec.kind == "python" and "my-client" in default


def test_adapters_doc_library_example_is_the_registry_entry(tmp_path):
    """docs/adapters.md's Node library client (an entry alone) is drivers/clients.yaml's."""
    with open(os.path.join(ROOT, "docs", "adapters.md"), encoding="utf-8") as f:
        text = f.read()
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    block = next(b for b in blocks if "library:" in b)
    (tmp_path / "c.yaml").write_text("clients:\n" + block)
    [(name, spec)] = registry._read(str(tmp_path / "c.yaml"))[0].items()
    assert spec == registry.builtin_clients()[name]


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Chromium")
def test_report_page_renders_a_cell_in_a_browser(tmp_path):
    """report.html opened at a cell's anchor (file://, as a CI artifact is opened) loads
    that cell's details from report-details/ and renders them, escaped."""
    import subprocess
    report.write_all(str(tmp_path), RECORDS, META)
    html = (tmp_path / "report.html").read_text()
    anchor = re.search(r'id="c-(r\d+)"><a class="o-fail"', html).group(1)
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                          "--virtual-time-budget=5000", "--dump-dom",
                          "file://%s/report.html#%s" % (tmp_path, anchor)],
                         capture_output=True, text=True, timeout=120).stdout
    box = dom[dom.index('id="detail-box"'):]
    assert '<span class="sid">xhr.a</span> [c2 1.0]' in box
    assert "diff &lt;b&gt;here&lt;/b&gt;" in box            # as text, not markup
    assert '<span class="del">- a</span>' in box
    assert 'class="detail open"' in dom
    assert "4 of 4 scenarios shown" in dom                   # the filters ran
