"""The pytest items: one ScenarioFile per scenario file, one ScenarioItem per scenario ×
client.

A ScenarioItem's setup is the run: load the scenario as an instance of its own, prepare the
client part, send `run` to the client's adapter, read the journal, unload (carry_out; done
ahead of pytest, in a thread, when runahead.py runs this process's items concurrently, and
then setup takes its outcome). A failing adapter or harness raises there, so pytest
reports an *error*; an unsupported action is a *skip*. Its call is the grading (grader.py): a failed strict check raises ScenarioFailure.
"""
import os
import re
import time

import pytest

from . import expectations as expectations_mod
from . import grader, prepare, report
from .clients import AdapterError
from .runahead import perform
from .server import HarnessError
from .session import state_of


_LINES = {}
SETTLE_S = 1.0  # the longest wait for a WebSocket session's entry to end (grader.needs_settled)


def scenario_line(path, scenario_id):
    """The line of a scenario's `id:` in its file (1 when not found)."""
    key = (path, scenario_id)
    if key not in _LINES:
        _LINES[key] = 1
        pattern = re.compile(r"^\s*id:\s*[\"']?%s[\"']?\s*(#.*)?$" % re.escape(str(scenario_id)))
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for n, line in enumerate(f, 1):
                    if pattern.match(line):
                        _LINES[key] = n
                        break
        except OSError:
            pass
    return _LINES[key]


class ScenarioFailure(AssertionError):
    """The client did not do what the scenario expects (a failed strict check)."""


def marker_name(text):
    return "".join(c if (c.isalnum() or c in "_-") else "_" for c in str(text))


class ScenarioFile(pytest.File):
    """One scenario file: one item per selected client."""

    def collect(self):
        state = state_of(self.config)
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
            marks = [marker_name(area)] + [marker_name(t) for t in scenario.get("tags") or []]
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
        state = state_of(self.config)
        done = state.runahead.take(self) if state.runahead is not None else None
        if done is None:  # not run ahead (runahead.py): now
            done = perform(self)
        self.run_duration = done.duration
        if done.error is not None:
            raise done.error

    def carry_out(self):
        """The run (in a thread of runahead.py, or in setup): sets this item's facts, raises
        what setup must raise (an error, a skip)."""
        state = state_of(self.config)
        try:
            server = state.get_server()
        except HarnessError:
            self.error_kind = "harness"
            raise
        try:
            adapter = state.pool.acquire(self.client)
        except AdapterError as err:
            self.error_kind = "adapter " + err.kind
            self.stderr_tail = err.stderr
            raise
        try:
            self._with_adapter(state, server, adapter)
        finally:
            state.pool.release(adapter)

    def _with_adapter(self, state, server, adapter):
        self.client_info = dict(adapter.started or {})
        client_part = self.scenario.get("client") or {}
        action = prepare.action_of(client_part)
        declared = (adapter.started or {}).get("capabilities", [])
        missing = [c for c in prepare.needed_capabilities(client_part) if c not in declared]
        if missing:
            self.unsupported = "%s has no %s capability" % (self.client, ", ".join(missing))
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
        except prepare.NotServed as err:
            self.unsupported = str(err)
            pytest.skip("unsupported: " + self.unsupported)
        except prepare.PrepareError:
            self.error_kind = "scenario"
            raise
        mark = adapter.stderr_mark()
        run_id = adapter.new_id()
        try:
            origins = prepare.origins_of(self.instance, server.origins)
            kind, payload = adapter.run(self.scenario["id"], client_part, origins,
                                        prepare.page_of(self.instance, server.origins),
                                        deadline_ms, state.grace_s, run_id=run_id)
        except AdapterError as err:
            self.error_kind = "adapter " + err.kind
            if err.fatal:
                state.pool.discard_process(adapter)
            raise
        finally:
            # a process that takes several runs at once tags their lines with the run's id
            self.stderr_tail = adapter.stderr_since(
                mark, run=run_id if adapter.spec.per_process > 1 else None)
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
        if grader.needs_settled(self.expect):
            end = time.monotonic() + SETTLE_S
            while any(e.get("ended") is None for e in journal.get("entries") or []) and \
                    time.monotonic() < end:
                time.sleep(0.02)
                journal = server.journal(instance_id)
        return journal

    # -- grading (call) ----------------------------------------------------------------

    def runtest(self):
        state = state_of(self.config)
        entry = state.registry.get(self.client)
        client = {"name": self.client, "kind": getattr(entry, "kind", None),
                  "capabilities": self.client_info.get("capabilities")
                  or getattr(entry, "capabilities", [])}
        self.verdict = grader.grade(self.expect, self.observations, self.journal, client)
        if self.verdict.outcome == grader.FAIL:
            raise ScenarioFailure(self.failure_text())

    def failure_text(self):
        return grader.format_failure(self.verdict, self.scenario_meta(), self.client_meta(),
                                     self.journal, self.stderr_tail)

    def scenario_meta(self):
        s = self.scenario
        path = s.get("file", str(self.path))
        return {"id": s.get("id"), "title": s.get("title"), "spec": s.get("spec"),
                "file": os.path.relpath(path, str(self.config.invocation_params.dir)),
                "line": s.get("line") or scenario_line(path, s.get("id"))}

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
        # The head line of a failure (`____ ID[CLIENT] (FILE:LINE) ____`). The name alone
        # would end the node id, and pytest -v would then show it as http::basic::get.
        meta = self.scenario_meta()
        return self.path, meta["line"] - 1, "%s (%s:%d)" % (self.name, meta["file"], meta["line"])

    # -- the record for the reports ---------------------------------------------------

    def record(self, outcome, message, duration):
        s = self.scenario
        info = self.client_info
        rec = {
            "nodeid": self.nodeid, "id": s.get("id"), "title": s.get("title"),
            "spec": s.get("spec"), "area": s.get("id", "").split(".")[0],
            "tags": list(s.get("tags") or []), "description": s.get("description"),
            "file": self.scenario_meta()["file"], "line": self.scenario_meta()["line"],
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
            "timeline": grader.timeline(self.observations or {}, self.journal)[:400],
            # the entries themselves (headers, websocket events...), bounded: a question about
            # a header needs no rerun
            "journal_entries": report.trim(
                ((self.journal or {}).get("entries") or [])[:JOURNAL_ENTRIES_KEPT], 2000),
            "stderr": self.stderr_tail[-6000:],
            "expect": report.trim(self.expect),
        }
        return rec


JOURNAL_ENTRIES_KEPT = 50


def _check_dict(check):
    return {"path": check.path, "ok": check.ok, "strict": check.strict, "level": check.level,
            "unsupported": check.unsupported,
            "expected": grader.render(check.expected), "observed": grader.render(check.observed),
            "message": check.message, "detail": check.detail}
