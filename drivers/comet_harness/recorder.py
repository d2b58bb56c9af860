"""The recorder: gathers the record of every result this process sees and, in the
controller, writes the reports (results.json, summary.md, report.html) and the terminal
summary at the end; shows a progress line per client meanwhile (progress.py).

Registered on the config (pytest_configure), so its hooks reach the session's state. Under
xdist every result reaches the controller as a report: it alone writes.
"""
import os
import re
import subprocess
import time

import pytest

from . import expectations as expectations_mod
from . import junit, report
from .progress import Progress
from .server import HarnessError
from .session import state_of

_LOCATED = re.compile(r"^(.+?):(\d+):(\d+): (.*)$")


def located_errors(rep):
    """The file:line:col errors of a failed collection report (seen by the controller too)."""
    text = str(rep.longrepr)
    errors = []
    for line in text.splitlines():
        m = _LOCATED.match(line.strip())
        if m:
            errors.append({"file": m.group(1), "line": int(m.group(2)), "col": int(m.group(3)),
                           "message": m.group(4)})
    return errors or [{"file": rep.nodeid, "line": 0, "col": 0, "message": text.strip()}]


class Recorder:
    def __init__(self, config):
        self.config = config
        self.written = []
        self.meta = {}
        self.progress = None
        if not hasattr(config, "workerinput"):
            self.progress = Progress(self._write_line, config.getoption("progress"))

    @property
    def state(self):
        return state_of(self.config)

    def _write_line(self, line):
        if self.config.getoption("progress") <= 0:
            return
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            # a line of its own, after the dots (under xdist pytest does not end theirs)
            if getattr(tr._tw, "width_of_current_line", 0):
                tr._tw.line()
            tr.write_line(line)

    # -- progress ------------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session):
        if self.progress is not None and session.items:
            self.progress.collected(item.nodeid for item in session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids):
        if self.progress is not None:
            self.progress.collected(ids)

    # -- results -------------------------------------------------------------------------

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
                junit.add_property(self.config, "client.%s.version" % client,
                                   comet["client_version"])
                if comet.get("implementation"):
                    junit.add_property(self.config, "client.%s.implementation" % client,
                                       comet["implementation"])
        if report.when == "setup" and getattr(report, "comet_classname", None):
            junit.set_classname(self.config, report, report.comet_classname)
        if self.progress is not None:
            self.progress.result(report.nodeid, report.when, comet["outcome"] if comet else None)

    @pytest.hookimpl(trylast=True)
    def pytest_collectreport(self, report):
        # an invalid scenario file: a JUnit testcase of class "collection" (not "")
        if report.failed and str(report.nodeid).endswith((".yaml", ".yml")):
            junit.set_classname(self.config, report, "collection")
            for error in located_errors(report):
                if error not in self.state.collect_errors:
                    self.state.collect_errors.append(error)

    # -- the end -------------------------------------------------------------------------

    def stale_expectations(self):
        """{client: [entries naming no scenario]}: checked against every scenario known
        (the catalogue and the files collected), not only those selected (-k, -m)."""
        state = self.state
        if not state.records:
            return {}
        try:
            ids = state.known_ids()
        except HarnessError:
            ids = set()
        ids |= {r["id"] for r in state.records}
        stale = {c: expectations_mod.stale(state.expectations.get(c, {}), ids)
                 for c in state.clients}
        return {c: s for c, s in stale.items() if s}

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error):
        # an xdist worker's part of the shard (the controller collects nothing itself)
        shard = getattr(node, "workeroutput", {}).get("comet_shard")
        if shard and self.state.shard_meta is None:
            self.state.shard_meta = shard

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session, exitstatus):
        config = self.config
        state = self.state
        state.close()
        if hasattr(config, "workerinput"):
            config.workeroutput["comet_shard"] = state.shard_meta
            return
        if state.shard is not None and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED \
                and state.shard_meta and state.shard_meta["of"]:
            # a shard the partition left empty (more shards than runs): not an error
            session.exitstatus = exitstatus = pytest.ExitCode.OK
        if config.getoption("no_reports") or config.getoption("collectonly"):
            return
        if not state.records and not state.collect_errors and state.shard is None:
            # a pytest run with no scenario in it (the plugin is autoloaded once installed):
            # nothing to report, and nothing written into the caller's folder (a shard
            # writes its reports even when empty: make merge expects them)
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
            junit.add_property(config, "harness.version", state.harness_version)
        self.meta = {
            "started": state.started_at, "finished": time.time(),
            "clients": [state.clients_info.get(c, {"name": c}) for c in state.clients],
            "harness_version": state.harness_version, "exitstatus": int(exitstatus),
            "collect_errors": state.collect_errors, "shard": state.shard_meta,
            "stale_expectations": self.stale_expectations(),
            "report_url": config.getoption("report_url")}
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
