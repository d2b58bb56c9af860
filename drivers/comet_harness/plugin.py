"""The pytest plugin: scenario files in, one test per scenario x client, verdicts out.

    PYTHONPATH=drivers /usr/bin/python3 -m pytest -p comet_harness.plugin scenarios/ \\
        [--client chromium,python-requests] [-k reconnect] [-m sse] [-n auto] \\
        [--junitxml results/junit.xml]

Collection: every *.yaml / *.yml under --scenarios (or named on the command line) is
validated by `harness check --json` (the one parser and validator); an invalid file is a
collection error with its file:line:col messages. A valid scenario gives one item per
client, named `ID[CLIENT]`, marked with its area (the first segment of the id: `-m sse`)
and its tags.

Running an item (per pytest process, so per xdist worker: one `harness serve`, one adapter
per client, each started on first use):

    setup     load the scenario as an instance of its own, prepare the client part, send
              `run` to the client's adapter, read the journal, unload. A failing adapter
              or harness raises here, so pytest reports an *error*; an unsupported action
              is a *skip*.
    call      grade the observations and the journal against `expect` (grader.py): a
              failed strict check is a *failure*; failed `strict: false` checks only are
              a pass, shown as NON-STRICT.

Known failures (drivers/expectations/CLIENT.yaml) are marked xfail(strict): a listed
failure does not fail the run, an unexpected pass does.

The controller (the only process without xdist) gathers one record per item and writes
results/results.json, summary.md and report.html (report.py) at the end.
"""
import itertools
import os
import re
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import pytest

from . import expectations as expectations_mod
from . import grader, prepare, report
from .adapters import AdapterError, AdapterPool, DEFAULT_GRACE_S, ROOT, RegistryError, load_registry
from .server import HarnessError, HarnessServer, check, default_binary


class ScenarioFailure(AssertionError):
    """The client did not do what the scenario expects (a failed strict check)."""


@dataclass
class SessionState:
    """Everything the plugin keeps for one pytest process (in config.stash)."""
    harness_bin: str
    scenarios_dir: str
    results_dir: str
    clients: List[str]
    registry: dict
    default: List[str]
    grace_s: float
    worker: str
    explicit_files: set
    check_cache: Dict[str, tuple] = field(default_factory=dict)
    dir_checked: bool = False
    server: Optional[HarnessServer] = None
    pool: Optional[AdapterPool] = None
    expectations: Dict[str, dict] = field(default_factory=dict)
    markers: set = field(default_factory=set)
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))
    records: List[dict] = field(default_factory=list)
    clients_info: Dict[str, dict] = field(default_factory=dict)
    harness_version: Optional[str] = None
    collect_errors: List[dict] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)

    # -- collection ----------------------------------------------------------------------

    def is_scenario_file(self, path):
        path = os.path.abspath(str(path))
        return path in self.explicit_files or \
            path.startswith(self.scenarios_dir.rstrip(os.sep) + os.sep)

    def checked(self, path):
        """(scenarios, errors) of one file, from `harness check --json`."""
        path = os.path.abspath(str(path))
        if path not in self.check_cache and not self.dir_checked and \
                path.startswith(self.scenarios_dir + os.sep):
            self.dir_checked = True
            self._fill(check(self.harness_bin, [self.scenarios_dir]))
        if path not in self.check_cache:
            self._fill(check(self.harness_bin, [path]), also=[path])
        return self.check_cache[path]

    def _fill(self, doc, also=()):
        for f in also:
            self.check_cache.setdefault(f, ([], []))
        for s in doc.get("scenarios") or []:
            f = os.path.abspath(s.get("file", ""))
            self.check_cache.setdefault(f, ([], []))[0].append(s)
        for e in doc.get("errors") or []:
            f = os.path.abspath(e.get("file", ""))
            self.check_cache.setdefault(f, ([], []))[1].append(e)

    # -- running -------------------------------------------------------------------------

    def get_server(self):
        if self.server is not None and not self.server.alive():
            self.server = None  # it died: the next test gets a new one
        if self.server is None:
            self.server = HarnessServer(self.harness_bin)
            self.harness_version = self.server.version
        return self.server

    def new_instance_id(self, client):
        safe = "".join(c if c.isalnum() else "-" for c in client.lower())
        return "%s-%d-%s-%s" % (self.worker, next(self.counter), safe, secrets.token_hex(3))

    def close(self):
        if self.pool is not None:
            self.pool.close()
        if self.server is not None:
            self.server.stop()
            self.server = None


STATE = pytest.StashKey[SessionState]()


def _state(config):
    return config.stash[STATE]


# ------------------------------------------------------------------------------ options

def pytest_addoption(parser):
    group = parser.getgroup("comet", "Comet Harness conformance")
    group.addoption("--client", action="append", default=[], metavar="NAME[,NAME]",
                    help="clients to run the scenarios against (repeatable, comma separated; "
                         "default: the default clients of the registry)")
    group.addoption("--scenarios", default="scenarios", metavar="DIR",
                    help="the scenario catalogue: YAML files under it are collected "
                         "(default: scenarios)")
    group.addoption("--harness-bin", default=None, metavar="PATH",
                    help="the harness binary (default: $HARNESS_BIN, else build/harness)")
    group.addoption("--results", default="results", metavar="DIR",
                    help="where results.json, summary.md and report.html go (default: results)")
    group.addoption("--no-reports", action="store_true",
                    help="write no results.json / summary.md / report.html")
    group.addoption("--adapter-grace", type=float, default=DEFAULT_GRACE_S, metavar="SECONDS",
                    help="how long past a run's deadline an adapter may take to answer before "
                         "it counts as hung (default: %(default)s)")
    group.addoption("--clients-file", default=None, metavar="PATH",
                    help="the client registry's extra clients (default: drivers/clients.yaml)")
    group.addoption("--expectations", default=None, metavar="DIR",
                    help="known failures, one CLIENT.yaml per client (default: drivers/expectations)")
    group.addoption("--list-clients", action="store_true",
                    help="list the known clients and exit")


def pytest_configure(config):
    invocation = str(config.invocation_params.dir)
    clients_file = config.getoption("clients_file")
    if clients_file:
        clients_file = os.path.join(invocation, clients_file)
        if not os.path.exists(clients_file):
            raise pytest.UsageError("--clients-file %s does not exist" % clients_file)
    try:
        registry, default = load_registry(clients_file)
    except RegistryError as err:
        raise pytest.UsageError(str(err)) from None
    clients = []
    for value in config.getoption("client") or []:
        clients += [c.strip() for c in value.split(",") if c.strip()]
    clients = list(dict.fromkeys(clients)) or default
    unknown = [c for c in clients if c not in registry]
    if unknown and not config.getoption("list_clients"):
        raise pytest.UsageError("unknown client(s): %s (known: %s)" % (
            ", ".join(unknown), ", ".join(sorted(registry))))
    explicit = {os.path.abspath(os.path.join(invocation, a.split("::")[0]))
                for a in config.args if a.split("::")[0].endswith((".yaml", ".yml"))}
    workerinput = getattr(config, "workerinput", None)
    state = SessionState(
        harness_bin=os.path.abspath(os.path.join(invocation, config.getoption("harness_bin")
                                                 or default_binary())),
        scenarios_dir=os.path.abspath(os.path.join(invocation, config.getoption("scenarios"))),
        results_dir=os.path.abspath(os.path.join(invocation, config.getoption("results"))),
        clients=clients, registry=registry, default=default, grace_s=config.getoption("adapter_grace"),
        worker=workerinput["workerid"] if workerinput else "w",
        explicit_files=explicit)
    expectations_dir = os.path.join(invocation, config.getoption("expectations")
                                    or expectations_mod.DIR)
    try:
        for name in clients:
            state.expectations[name] = expectations_mod.load(name, expectations_dir)
    except expectations_mod.ExpectationsError as err:
        raise pytest.UsageError(str(err)) from None
    state.pool = AdapterPool(registry, ROOT, state.grace_s)
    config.stash[STATE] = state
    config.addinivalue_line("markers", "comet: a Comet Harness scenario run against one client")
    config.pluginmanager.register(Recorder(config), "comet-recorder")


def pytest_cmdline_main(config):
    if config.getoption("list_clients"):
        config._do_configure()  # as pytest's own --markers does
        try:
            state = config.stash[STATE]
            for name, spec in sorted(state.registry.items()):
                print("%-18s %-8s %s\n%27s %s" % (
                    name, "default" if name in state.default else "", spec.description, "",
                    " ".join(spec.command)))
        finally:
            config._ensure_unconfigure()
        return 0
    return None


def pytest_unconfigure(config):
    state = config.stash.get(STATE, None)
    if state is not None:
        state.close()


# ---------------------------------------------------------------------------- collection

def pytest_collect_file(file_path, parent):
    state = _state(parent.config)
    if file_path.suffix in (".yaml", ".yml") and state.is_scenario_file(file_path):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def _marker_name(text):
    return "".join(c if (c.isalnum() or c in "_-") else "_" for c in str(text))


class ScenarioFile(pytest.File):
    """One scenario file: one item per selected client."""

    def collect(self):
        state = _state(self.config)
        try:
            scenarios, errors = state.checked(self.path)
        except HarnessError as err:
            raise self.CollectError(str(err)) from None
        if errors:
            raise self.CollectError("\n".join(
                "%s:%s:%s: %s" % (e.get("file"), e.get("line"), e.get("col"), e.get("message"))
                for e in errors))
        for scenario in scenarios:
            sid = scenario["id"]
            area = sid.split(".")[0]
            marks = [_marker_name(area)] + [_marker_name(t) for t in scenario.get("tags") or []]
            for client in state.clients:
                item = ScenarioItem.from_parent(self, name="%s[%s]" % (sid, client),
                                                scenario=scenario, client=client)
                item.add_marker("comet")
                for m in dict.fromkeys(marks):
                    if m not in state.markers:
                        state.markers.add(m)
                        self.config.addinivalue_line("markers", "%s: Comet scenarios (area or tag)" % m)
                    item.add_marker(m)
                reason = expectations_mod.lookup(state.expectations.get(client, {}), sid)
                if reason:
                    item.add_marker(pytest.mark.xfail(reason=reason, strict=True,
                                                      raises=ScenarioFailure))
                    item.known_failure = reason
                yield item


class ScenarioItem(pytest.Item):
    """One scenario against one client."""

    def __init__(self, *, scenario, client, **kwargs):
        super().__init__(**kwargs)
        self.scenario = scenario
        self.client = client
        self.known_failure = None
        self.observations = None
        self.journal = None
        self.expect = None
        self.stderr_tail = ""
        self.verdict = None
        self.error_kind = None
        self.unsupported = None
        self.client_info = {}
        self.instance = None
        self.run_duration = 0.0

    # -- the run (setup) ------------------------------------------------------------------

    def setup(self):
        state = _state(self.config)
        try:
            server = state.get_server()
        except HarnessError:
            self.error_kind = "harness"
            raise
        try:
            adapter = state.pool.get(self.client)
        except AdapterError as err:
            self.error_kind = "adapter " + err.kind
            self.stderr_tail = err.stderr
            raise
        self.client_info = dict(adapter.started or {})
        action = prepare.action_of(self.scenario.get("client") or {})
        if action not in (adapter.started or {}).get("capabilities", []):
            self.unsupported = "%s has no %s capability" % (self.client, action)
            pytest.skip("unsupported: " + self.unsupported)
        instance_id = state.new_instance_id(self.client)
        try:
            self.instance = server.load(self.scenario["file"], instance_id)
        except HarnessError:
            self.error_kind = "harness"
            raise
        instance_id = self.instance["instance"]
        try:
            self._run(state, server, adapter, action)
        finally:
            try:
                server.unload(instance_id)
            except HarnessError:
                pass  # housekeeping: the next instance has an id of its own

    def _run(self, state, server, adapter, action):
        try:
            _, client_part, deadline_ms = prepare.prepare_client(
                self.scenario["client"], self.instance, server.origins)
            self.expect = prepare.expect_of(self.scenario, self.instance, server.origins)
        except prepare.PrepareError:
            self.error_kind = "scenario"
            raise
        mark = adapter.stderr_mark()
        try:
            kind, payload = adapter.run(self.scenario["id"], client_part, server.origins,
                                        server.page, deadline_ms, state.grace_s)
        except AdapterError as err:
            self.error_kind = "adapter " + err.kind
            if err.fatal:
                state.pool.discard(self.client)
            raise
        finally:
            self.stderr_tail = adapter.stderr_since(mark)
        if kind == "unsupported":
            self.unsupported = payload
            pytest.skip("unsupported: " + payload)
        self.observations = payload
        try:
            self.journal = self._journal(server)
        except HarnessError:
            self.error_kind = "harness"
            raise

    def _journal(self, server):
        """The instance's journal, after a short wait for requests still expected."""
        instance_id = self.instance["instance"]
        journal = server.journal(instance_id)
        counts = {}
        for e in journal.get("entries") or []:
            counts[e.get("route")] = counts.get(e.get("route"), 0) + 1
        missing = {r: n for r, n in grader.needed_counts(self.expect).items()
                   if counts.get(r, 0) < n}
        if missing:
            for route, n in missing.items():
                try:
                    server.wait(instance_id, n, route, timeout_ms=1000)
                except HarnessError:
                    pass
            journal = server.journal(instance_id)
        return journal

    # -- grading (call) ----------------------------------------------------------------

    def runtest(self):
        self.verdict = grader.grade(self.expect, self.observations, self.journal)
        if self.verdict.outcome == grader.FAIL:
            raise ScenarioFailure(self.failure_text())

    def failure_text(self):
        return grader.format_failure(self.verdict, self.scenario_meta(), self.client_meta(),
                                     self.journal, self.stderr_tail)

    def scenario_meta(self):
        s = self.scenario
        return {"id": s.get("id"), "title": s.get("title"), "spec": s.get("spec"),
                "file": os.path.relpath(s.get("file", str(self.path)),
                                        str(self.config.invocation_params.dir))}

    def client_meta(self):
        return {"name": self.client, "version": self.client_info.get("version")}

    def error_text(self, exc):
        lines = ["%s [%s]: ERROR (%s, not the client's failure)" % (
            self.scenario.get("id"), self.client, self.error_kind or "driver")]
        if self.scenario.get("spec"):
            lines.append("  spec: " + self.scenario["spec"])
        lines.append("")
        lines.append(str(exc))
        if self.stderr_tail.strip():
            lines += ["", "adapter stderr (last lines):"]
            lines += ["  " + l for l in self.stderr_tail.rstrip().splitlines()[-30:]]
        return "\n".join(lines)

    def repr_failure(self, excinfo, style=None):
        exc = excinfo.value
        if isinstance(exc, ScenarioFailure):
            return str(exc)
        if isinstance(exc, (AdapterError, HarnessError, prepare.PrepareError)):
            return self.error_text(exc)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        # No domain: pytest -v would show a dotted one as http::basic::get.
        return self.path, None, ""

    # -- the record for the reports ---------------------------------------------------

    def record(self, outcome, message, duration):
        s = self.scenario
        info = self.client_info
        rec = {
            "nodeid": self.nodeid, "id": s.get("id"), "title": s.get("title"),
            "spec": s.get("spec"), "area": s.get("id", "").split(".")[0],
            "tags": list(s.get("tags") or []), "description": s.get("description"),
            "file": self.scenario_meta()["file"],
            "client": self.client, "client_version": info.get("version"),
            "implementation": info.get("implementation"),
            "capabilities": info.get("capabilities"),
            "outcome": outcome, "message": message, "duration": round(duration, 3),
            "known_failure": self.known_failure, "error_kind": self.error_kind,
            "instance": (self.instance or {}).get("instance"),
            "checks": [_check_dict(c) for c in (self.verdict.checks if self.verdict else [])],
            "notes": list(self.verdict.notes) if self.verdict else [],
            "observations": report.trim(self.observations),
            "journal": [grader.journal_line(e) for e in (self.journal or {}).get("entries") or []],
            "stderr": self.stderr_tail[-6000:],
            "expect": report.trim(self.expect),
        }
        return rec


def _check_dict(check):
    return {"path": check.path, "ok": check.ok, "strict": check.strict,
            "expected": grader.render(check.expected), "observed": grader.render(check.observed),
            "message": check.message, "detail": check.detail}


# ------------------------------------------------------------------------------ reports

def _outcome(item, rep, call):
    """The Comet outcome of one phase's report, or None (nothing decided in this phase)."""
    if rep.when == "setup":
        if rep.skipped and getattr(rep, "wasxfail", None) is None:
            return report.UNSUPPORTED if item.unsupported else report.SKIPPED
        if rep.failed:
            return report.ERROR
        if rep.skipped:  # xfail(run=False) or a setup exception matching raises
            return report.XFAIL
        return None
    if rep.when != "call":
        return None
    if getattr(rep, "wasxfail", None) is not None and rep.skipped:
        return report.XFAIL
    if rep.failed:
        if isinstance(rep.longrepr, str) and rep.longrepr.startswith("[XPASS(strict)]") or \
                (call.excinfo is None and item.known_failure):
            return report.XPASS
        if call.excinfo is not None and call.excinfo.errisinstance(ScenarioFailure):
            return report.FAIL
        return report.ERROR
    if rep.passed:
        if item.verdict is not None and item.verdict.outcome == grader.NON_STRICT:
            return report.NON_STRICT
        return report.PASS
    return None


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not isinstance(item, ScenarioItem):
        return
    rep.comet_classname = "%s.%s" % (item.client, item.scenario["id"].split(".")[0])
    comet = _outcome(item, rep, call)
    if rep.when == "setup":
        item.run_duration = call.duration
        if rep.failed and call.excinfo is not None and call.excinfo.errisinstance(
                (AdapterError, HarnessError, prepare.PrepareError)):
            # pytest shows a traceback for errors outside the call phase: show the facts
            rep.longrepr = item.error_text(call.excinfo.value)
    if comet is None:
        return
    if comet == report.NON_STRICT:
        message = "; ".join("%s: %s" % (c.path, c.message) for c in item.verdict.soft_failures)
    elif comet == report.FAIL:
        message = "; ".join("%s: %s" % (c.path, c.message) for c in item.verdict.failures)
    elif comet in (report.UNSUPPORTED, report.SKIPPED):
        message = item.unsupported or (rep.longrepr[2] if isinstance(rep.longrepr, tuple) else "")
    elif comet == report.ERROR:
        message = str(call.excinfo.value) if call.excinfo else "error"
    elif comet == report.XFAIL:
        message = "known failure: %s" % item.known_failure
    elif comet == report.XPASS:
        message = "passed, but listed as a known failure (%s): remove it from " \
                  "drivers/expectations/%s.yaml" % (item.known_failure, item.client)
    else:
        message = ""
    duration = call.duration + (item.run_duration if rep.when == "call" else 0.0)
    rec = item.record(comet, message.splitlines()[0][:500] if message else "", duration)
    if comet == report.ERROR:
        rec["details"] = item.error_text(call.excinfo.value) if call.excinfo else message
    elif item.verdict is not None and comet != report.PASS:
        rec["details"] = item.failure_text()
    rep.comet = rec


def pytest_report_teststatus(report, config):
    comet = getattr(report, "comet", None)
    if comet and report.when == "call" and comet["outcome"] == "non-strict":
        return "non-strict", "n", ("NON-STRICT", {"yellow": True})
    return None


def _junit_property(config, name, value):
    """A <testsuite> property of the JUnit XML (where junit-10.xsd allows properties)."""
    try:
        from _pytest.junitxml import xml_key
        xml = config.stash.get(xml_key, None)
    except ImportError:
        xml = None
    if xml is not None:
        if all(n != name for n, _ in xml.global_properties):
            xml.add_global_property(name, str(value))


def _junit_classname(config, report, classname):
    """Set a testcase's classname to CLIENT.AREA (pytest's default is the file path).

    Called after the junitxml plugin saw the setup report; pytest keeps attributes set
    this way when it records the later phases.
    """
    try:
        from _pytest.junitxml import xml_key
        xml = config.stash.get(xml_key, None)
        if xml is not None:
            xml.node_reporter(report).add_attribute("classname", classname)
    except (ImportError, AttributeError):
        pass  # pytest internals changed: keep pytest's classname


_LOCATED = re.compile(r"^(.+?):(\d+):(\d+): (.*)$")


def _located_errors(report):
    """The file:line:col errors of a failed collection report (seen by the controller too)."""
    text = str(report.longrepr)
    errors = []
    for line in text.splitlines():
        m = _LOCATED.match(line.strip())
        if m:
            errors.append({"file": m.group(1), "line": int(m.group(2)), "col": int(m.group(3)),
                           "message": m.group(4)})
    return errors or [{"file": report.nodeid, "line": 0, "col": 0, "message": text.strip()}]


class Recorder:
    """Gathers the records of the reports this process sees; the controller writes them.

    Registered on the config (pytest_configure), so its hooks reach the session's state.
    """

    def __init__(self, config):
        self.config = config
        self.written = []
        self.meta = {}

    @property
    def state(self):
        return self.config.stash[STATE]

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report):
        comet = getattr(report, "comet", None)
        state = self.state
        if comet:
            state.records.append(comet)
            client = comet["client"]
            if comet.get("client_version") and client not in state.clients_info:
                state.clients_info[client] = {
                    "name": client, "version": comet["client_version"],
                    "implementation": comet.get("implementation"),
                    "capabilities": comet.get("capabilities")}
                _junit_property(self.config, "client.%s.version" % client, comet["client_version"])
                if comet.get("implementation"):
                    _junit_property(self.config, "client.%s.implementation" % client,
                                    comet["implementation"])
        if report.when == "setup" and getattr(report, "comet_classname", None):
            _junit_classname(self.config, report, report.comet_classname)

    @pytest.hookimpl(trylast=True)
    def pytest_collectreport(self, report):
        # an invalid scenario file: a JUnit testcase of class "collection" (not "")
        if report.failed and str(report.nodeid).endswith((".yaml", ".yml")):
            _junit_classname(self.config, report, "collection")
            for error in _located_errors(report):
                if error not in self.state.collect_errors:
                    self.state.collect_errors.append(error)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session, exitstatus):
        config = self.config
        state = self.state
        state.close()
        if hasattr(config, "workerinput") or config.getoption("no_reports") \
                or config.getoption("collectonly"):
            return
        if not state.harness_version:
            # under xdist the controller runs no server: ask the binary
            try:
                out = subprocess.run([state.harness_bin, "--version"], capture_output=True,
                                     text=True, timeout=10).stdout.split()
                state.harness_version = out[-1] if out else None
            except (OSError, subprocess.SubprocessError):
                pass
        if state.harness_version:
            _junit_property(config, "harness.version", state.harness_version)
        ids = {r["id"] for r in state.records}
        stale = {c: expectations_mod.stale(state.expectations.get(c, {}), ids)
                 for c in state.clients} if ids else {}
        self.meta = {
            "started": state.started_at, "finished": time.time(),
            "clients": [state.clients_info.get(c, {"name": c}) for c in state.clients],
            "harness_version": state.harness_version, "exitstatus": int(exitstatus),
            "collect_errors": state.collect_errors,
            "stale_expectations": {c: s for c, s in stale.items() if s}}
        self.written = report.write_all(state.results_dir, state.records, self.meta)

    def pytest_terminal_summary(self, terminalreporter):
        if not self.written:
            return
        tr = terminalreporter
        tr.section("Comet Harness")
        for line in report.totals_lines(self.state.records, self.state.clients):
            tr.write_line(line)
        for client, ids in self.meta.get("stale_expectations", {}).items():
            tr.write_line("stale expectations for %s (no such scenario): %s"
                          % (client, ", ".join(ids)))
        for path in self.written:
            tr.write_line("wrote %s" % os.path.relpath(path, str(self.config.invocation_params.dir)))
