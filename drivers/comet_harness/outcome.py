"""A pytest report → the Comet outcome of its item (report.py lists them), its one-line
message and the record the reports are made of.

pytest decides in phases: an item's setup (the run) may be an error or a skip
(unsupported); its call (the grading) a failure, a pass, an xfail or an xpass.
"""
from . import grader, prepare, report
from .clients import AdapterError
from .items import ScenarioFailure
from .server import HarnessError


def comet_outcome(item, rep, call):
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


def message_of(item, rep, call, comet):
    """What the outcome comes down to, in words (the reports keep its first line)."""
    if comet == report.NON_STRICT:
        return "; ".join("%s: %s" % (c.path, c.message) for c in item.verdict.soft_failures)
    if comet == report.FAIL:
        return "; ".join("%s: %s" % (c.path, c.message) for c in item.verdict.failures)
    if comet in (report.UNSUPPORTED, report.SKIPPED):
        return item.unsupported or (rep.longrepr[2] if isinstance(rep.longrepr, tuple) else "")
    if comet == report.ERROR:
        return str(call.excinfo.value) if call.excinfo else "error"
    if comet == report.XFAIL:
        return "known failure: %s" % item.known_failure
    if comet == report.XPASS:
        return "passed, but listed as a known failure (%s): remove it from " \
               "drivers/expectations/%s.yaml" % (item.known_failure, item.client)
    return ""


def decorate(item, rep, call):
    """Attach to a report what the Comet hooks need: comet_classname, and comet (the
    record) when the phase decided the outcome."""
    rep.comet_classname = "%s.%s" % (item.client, item.scenario["id"].split(".")[0])
    comet = comet_outcome(item, rep, call)
    if rep.when == "setup":
        if rep.failed and call.excinfo is not None and call.excinfo.errisinstance(
                (AdapterError, HarnessError, prepare.PrepareError)):
            # pytest shows a traceback for errors outside the call phase: show the facts
            rep.longrepr = item.error_text(call.excinfo.value)
    if comet is None:
        return
    message = message_of(item, rep, call, comet)
    # the run's own time (not pytest's wait for a run done ahead), and the grading's
    duration = item.run_duration + (call.duration if rep.when == "call" else 0.0)
    rec = item.record(comet, message.splitlines()[0][:500] if message else "", duration)
    if comet == report.ERROR:
        rec["details"] = item.error_text(call.excinfo.value) if call.excinfo else message
    elif item.verdict is not None and comet != report.PASS:
        rec["details"] = item.failure_text()
    rep.comet = rec
