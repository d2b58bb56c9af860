"""The JUnit XML of a run (--junitxml): pytest writes it; this module sets what pytest
cannot and, at the end, regroups it.

While the run goes on: each testcase's classname is CLIENT.AREA (pytest's default is the
file path), and each client's name, version and implementation are properties.

At the end (JunitSuites, after pytest wrote the file), the one <testsuite> pytest writes
becomes one per client (named after it; an invalid scenario file's testcase goes to a
suite "collection"), each with its own counts, its client's properties, the run's own
(harness.version), and a `non-strict` property per result that passed with failed
`strict: false` checks (junit-10 allows no properties on a testcase). The `message` of a
failure, error or skip is its first line, as the outcome's one-line message; the text
keeps the whole report. --junit-locations adds `file` and `line` to every testcase (GitLab
links them; Jenkins' junit-10 schema has no such attributes, so it is off by default).

The result stays valid against drivers/schema/junit-jenkins.xsd (Jenkins) and has the
shape GitLab reads (drivers/tests/test_plugin.py checks both).
"""
import os
import xml.etree.ElementTree as ET
from collections import OrderedDict

import pytest

from . import report

OUTCOME_TAGS = ("failure", "error", "skipped")


def _logxml(config):
    try:
        from _pytest.junitxml import xml_key
        return config.stash.get(xml_key, None)
    except ImportError:
        return None


def add_property(config, name, value):
    """A <testsuite> property (where junit-10.xsd allows properties), once per name."""
    xml = _logxml(config)
    if xml is not None and all(n != name for n, _ in xml.global_properties):
        xml.add_global_property(name, str(value))


def set_classname(config, report_, classname):
    """Set a testcase's classname to CLIENT.AREA (pytest's default is the file path).

    Called after the junitxml plugin saw the setup report; pytest keeps attributes set
    this way when it records the later phases.
    """
    xml = _logxml(config)
    try:
        if xml is not None:
            xml.node_reporter(report_).add_attribute("classname", classname)
    except AttributeError:
        pass  # pytest internals changed: keep pytest's classname


def first_line(text, limit=500):
    text = str(text or "").strip()
    return text.splitlines()[0][:limit] if text else ""


def regroup(tree, records, clients=(), locations=False):
    """One <testsuite> per client in the JUnit tree pytest wrote (in place)."""
    root = tree.getroot()
    old = root.find("testsuite") if root.tag == "testsuites" else root
    if old is None:
        return
    if root.tag != "testsuites":
        root = ET.Element("testsuites")
        root.append(old)
        tree._setroot(root)
    by_case = {(r["client"] + "." + r["area"], r["nodeid"].split("::")[-1]): r for r in records}
    props = [(p.get("name"), p.get("value")) for p in old.iterfind("properties/property")]
    suites = OrderedDict((c, []) for c in clients)
    for case in old.findall("testcase"):
        rec = by_case.get((case.get("classname"), case.get("name")))
        suites.setdefault(rec["client"] if rec else case.get("classname") or "collection",
                          []).append((case, rec))
    root.remove(old)
    totals = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
    for name, cases in suites.items():
        if not cases:
            continue
        suite = ET.SubElement(root, "testsuite", {"name": name})
        prefix = "client.%s." % name
        own = [(n, v) for n, v in props if n.startswith(prefix) or not n.startswith("client.")]
        for case, rec in cases:
            if rec and rec["outcome"] == report.NON_STRICT:
                own.append(("non-strict", "%s: %s" % (case.get("name"), rec["message"])))
        if own:
            p = ET.SubElement(suite, "properties")
            for n, v in own:
                ET.SubElement(p, "property", {"name": n, "value": v})
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0.0}
        for case, rec in cases:
            counts["tests"] += 1
            counts["time"] += float(case.get("time") or 0)
            for tag in OUTCOME_TAGS:
                for el in case.findall(tag):
                    counts[{"failure": "failures", "error": "errors",
                            "skipped": "skipped"}[tag]] += 1
                    message = rec["message"] if rec and rec.get("message") else el.get("message")
                    if message is not None:
                        el.set("message", first_line(message))
            if locations:
                file = rec["file"] if rec else case.get("name", "").split("::")[0]
                case.set("file", file)
                case.set("line", str(rec.get("line") or 1) if rec else "0")
            suite.append(case)
        for key in ("tests", "failures", "errors", "skipped"):
            suite.set(key, str(counts[key]))
        suite.set("time", "%.3f" % counts["time"])
        for key in ("timestamp", "hostname"):
            if old.get(key):
                suite.set(key, old.get(key))
        for key in totals:
            totals[key] += counts[key]
    root.set("name", old.get("name") or "comet-harness")
    for key in ("tests", "failures", "errors"):
        root.set(key, str(totals[key]))
    root.set("time", "%.3f" % totals["time"])


class JunitSuites:
    """Regroups the JUnit file at the end of the session (controller only)."""

    def __init__(self, config, state):
        self.config = config
        self.state = state

    @pytest.hookimpl(trylast=True)  # after pytest's junitxml wrote the file
    def pytest_sessionfinish(self, session):
        xml = _logxml(self.config)
        path = getattr(xml, "logfile", None)
        if not path or not os.path.exists(path):
            return
        tree = ET.parse(path)
        regroup(tree, self.state.records, self.state.clients,
                self.config.getoption("junit_locations"))
        tmp = path + ".tmp"
        tree.write(tmp, encoding="utf-8", xml_declaration=True)
        os.replace(tmp, path)
