"""The plugin end to end: pytest run in a subprocess (pytester) on the scenarios of
drivers/tests/scenarios/, with the harness binary and the fake clients of
drivers/tests/fakes/ (clients.yaml there).

What it proves: collection through `harness check --json` (names, markers, -k, -m,
--client, invalid files as collection errors with file:line:col); verdicts (a conforming
client passes, the deliberately wrong one fails exactly the scenarios it should, a
SHOULD-level check gives non-strict, a missing capability is unsupported); adapters that
crash, hang or babble give an error for that one test and the run goes on; known failures
are xfail and an unexpected pass fails the run; the JUnit XML is valid against the Jenkins
schema; the reports are written; `-n 2` gives the same verdicts.
"""
import json
import os
import re
import shutil
import subprocess
import textwrap

import pytest
from lxml import etree

from helpers import (CONFORMING, FAKE_CLIENTS as CLIENTS, JENKINS_XSD as XSD, DRIVERS,
                     SCENARIOS, WRONG_FAILS, per_client)


@pytest.fixture
def cometrun(pytester, harness_bin, monkeypatch):
    """Run pytest with the plugin on a copy of the test scenarios; returns (result, outcomes)."""
    shutil.copytree(SCENARIOS, str(pytester.path / "scenarios"))
    monkeypatch.setenv("PYTHONPATH", DRIVERS)

    def run(*args, clients="fake-conforming"):
        result = pytester.runpytest_subprocess(
            "-p", "comet_harness.plugin", "-p", "no:cacheprovider", "--rootdir", str(pytester.path),
            "--harness-bin", harness_bin,
            "--clients-file", CLIENTS, "--client", clients, "--results", "results",
            "--adapter-grace", "1", *args, "scenarios", timeout=300)
        path = pytester.path / "results" / "results.json"
        outcomes = {}
        if path.exists() and "--collect-only" not in args:
            doc = json.loads(path.read_text())
            outcomes = {(r["id"], r["client"]): r["outcome"] for r in doc["results"]}
            path.unlink()
        return result, outcomes

    return run


# ------------------------------------------------------------------------ collection

def test_collection_names_markers(cometrun):
    result, _ = cometrun("--collect-only", "-q", clients="fake-conforming,fake-wrong")
    ids = [l for l in result.outlines if "::" in l]
    assert len(ids) == 14
    assert "scenarios/http/basic-get.yaml::http.basic.get[fake-conforming]" in ids
    assert "scenarios/sse/open.yaml::sse.basic.open[fake-wrong]" in ids
    assert result.ret == 0


@pytest.mark.parametrize("args, expected", [
    (["-k", "timeout"], ["http.timeout.read[fake-conforming]"]),
    (["-k", "headers and not should"], ["http.headers.custom[fake-conforming]"]),
    (["-m", "sse"], ["sse.basic.open[fake-conforming]"]),                  # area
    (["-m", "smoke"], ["http.basic.get[fake-conforming]"]),                # tag
    (["-m", "http and (timeout or status)"], ["http.status.not-found[fake-conforming]",
                                              "http.timeout.read[fake-conforming]"]),
    (["-m", "eventsource", "--strict-markers"], ["sse.basic.open[fake-conforming]"]),
])
def test_k_and_m_select(cometrun, args, expected):
    result, _ = cometrun("--collect-only", "-q", *args)
    got = sorted(l.split("::")[1] for l in result.outlines if "::" in l)
    assert got == expected


def test_client_option(cometrun):
    result, _ = cometrun("--collect-only", "-q", clients="fake-wrong, fake-conforming")
    names = [l.split("::")[1] for l in result.outlines if "::" in l]
    assert names[:2] == ["http.basic.get[fake-wrong]", "http.basic.get[fake-conforming]"]
    result, _ = cometrun("--collect-only", clients="nobody")
    assert result.ret == 2  # a usage error (pytest's own status for one is 4)
    result.stderr.fnmatch_lines(["*unknown client(s): nobody (known: *fake-conforming*"])


def test_list_clients(cometrun):
    result, _ = cometrun("--list-clients")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["client *default *kind *capabilities *description",
                                 "fake-conforming *yes *program *http *conforming fake*",
                                 "*$ /usr/bin/python3 drivers/tests/fakes/conforming.py",
                                 "python-requests *python *http,steps *Python `requests`*",
                                 "python-websocket-client *python *websocket,steps *",
                                 "33 clients, 1 run by default"])
    # the columns line up, however long a name is
    rows = [l for l in result.outlines if l and not l.startswith(" ")][:-1]
    header = rows[0]
    starts = [0] + [header.index(w) for w in ("default", "kind", "capabilities", "description")]
    for line in rows[1:]:
        line = line.ljust(len(header))
        cells = [line[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]
        assert all(line[col - 1] == " " for col in starts[1:]), line
        assert cells[1] in ("yes", "") and cells[2] in ("browser", "node", "python", "program")
        assert cells[3] and " " not in cells[3], line
    assert len(rows) == 1 + 33  # the built-in clients and the fakes


def test_when_client_names_a_client_of_the_registry(cometrun, pytester):
    """when: {client: NAME} is checked against the registry the run uses (clients.yaml and
    --clients-file, through harness check --clients): a typo is a collection error at its
    file:line:column; a client of the --clients-file is known."""
    bad = pytester.path / "scenarios" / "http" / "typo.yaml"
    bad.write_text(textwrap.dedent("""\
        id: http.typo.when
        title: A typo in when.client
        spec: https://example.org/spec
        client:
          http: {url: /x}
        expect:
          client:
            status: {equals: 404, when: {client: [fake-conforming, fake-conformnig]}}
        """))
    result, _ = cometrun("-q")
    out = "\n".join(result.outlines)
    assert re.search(r"scenarios/http/typo\.yaml:8:60: when\.client: no client "
                     r"'fake-conformnig'", out), out
    assert "'fake-conforming'" not in out
    assert result.ret == 2


def test_invalid_scenario_is_a_collection_error(cometrun, pytester):
    bad = pytester.path / "scenarios" / "http" / "bad.yaml"
    bad.write_text(textwrap.dedent("""\
        id: http.bad.one
        title: An unknown key
        tags: [x]
        colour: red
        client:
          http: {url: /x}
        expect: {}
        """))
    result, _ = cometrun("-q", "--junitxml", "junit.xml")
    out = "\n".join(result.outlines)
    assert "ERROR collecting scenarios/http/bad.yaml" in out
    assert re.search(r"scenarios/http/bad\.yaml:\d+:\d+: .*colour", out), out
    assert result.ret == 2  # pytest stops on collection errors, as for Python tests
    doc = etree.parse(str(pytester.path / "junit.xml"))
    schema = etree.XMLSchema(etree.parse(XSD))
    assert schema.validate(doc), schema.error_log
    case = doc.find(".//testcase")
    assert case.get("classname") == "collection" and "bad.yaml" in case.get("name")
    assert re.search(r"bad\.yaml:\d+:\d+: .*colour", case.find("error").text)
    md = (pytester.path / "results" / "summary.md").read_text()
    assert re.search(r"### Invalid scenario files\n\n- `.*bad\.yaml:\d+:\d+`: .*colour", md), md


# ------------------------------------------------------------------------ verdicts

def test_conforming_client(cometrun):
    result, outcomes = cometrun("-v")
    assert per_client(outcomes, "fake-conforming") == CONFORMING
    result.stdout.fnmatch_lines(["scenarios/http/should-header.yaml::http.headers.should"
                                 "[[]fake-conforming[]] NON-STRICT*",
                                 "*5 passed, 1 skipped, 1 non-strict*"])
    assert result.ret == 0


def test_wrong_client_fails_exactly_what_it_should(cometrun):
    result, outcomes = cometrun("-rs", clients="fake-wrong")
    wrong = per_client(outcomes, "fake-wrong")
    assert {s for s, o in wrong.items() if o == "fail"} == WRONG_FAILS
    assert {s: o for s, o in wrong.items() if s not in WRONG_FAILS} == \
        {s: o for s, o in CONFORMING.items() if s not in WRONG_FAILS}
    assert result.ret == 1
    out = "\n".join(result.outlines)
    # the failure text: scenario, spec link, expected vs observed, the journal line
    assert "http.headers.custom [fake-wrong 1.0]: FAIL" in out
    assert "spec: https://httpwg.org/specs/rfc9110.html#fields" in out
    assert "server.requests[echo].headers.X-Comet" in out and "X-Comet: <absent>" in out
    assert "- {type: error, name: one of [ReadTimeout, Timeout, ConnectTimeout]}" in out
    assert "client.status: expected absent, observed 200" in out
    result.stdout.fnmatch_lines(["SKIPPED *unsupported: fake-wrong has no eventsource capability"])


def test_misbehaving_adapters_are_errors_and_the_run_goes_on(cometrun):
    result, outcomes = cometrun(clients="fake-crashing,fake-hanging,fake-babbling")
    errors = {(s, c) for (s, c), o in outcomes.items() if o == "error"}
    assert errors == {("http.basic.get", "fake-crashing"), ("http.timeout.read", "fake-hanging"),
                      ("http.headers.custom", "fake-babbling")}
    for client in ("fake-crashing", "fake-hanging", "fake-babbling"):
        others = {s: o for s, o in per_client(outcomes, client).items() if (s, client) not in errors}
        assert others == {s: o for s, o in CONFORMING.items() if s in others}, client
        assert len(others) == len(CONFORMING) - 1
    out = "\n".join(result.outlines)
    assert "ERROR (adapter crash, not the client's failure)" in out
    assert "fake-crashing: about to crash in the middle of http.basic.get" in out  # stderr tail
    assert "did not answer run http.timeout.read within 6.0 s (hung)" in out
    assert "wrote a line that is not the protocol" in out and "debug build" in out
    result.assert_outcomes(errors=3, passed=12, skipped=3)  # and 3 non-strict


def test_known_failures_xfail_and_unexpected_pass(cometrun, pytester):
    folder = pytester.path / "expectations"
    folder.mkdir()
    (folder / "fake-wrong.yaml").write_text(textwrap.dedent("""\
        http.headers.custom: https://bugs.example/1 drops the headers it is given
        http.basic.get: https://bugs.example/2 listed, but it passes
        """))
    result, outcomes = cometrun("--expectations", str(folder), clients="fake-wrong")
    wrong = per_client(outcomes, "fake-wrong")
    assert wrong["http.headers.custom"] == "xfail"
    assert wrong["http.basic.get"] == "xpass"
    assert wrong["http.timeout.read"] == "fail"
    # (the non-strict pass is counted apart: "1 non-strict")
    result.assert_outcomes(failed=2, passed=2, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines(["*XPASS(strict)*https://bugs.example/2*"])


# ------------------------------------------------------------------------ outputs

def test_junit_xml_is_valid_for_jenkins(cometrun, pytester):
    result, _ = cometrun("--junitxml", "junit.xml",
                         clients="fake-conforming,fake-wrong,fake-crashing")
    schema = etree.XMLSchema(etree.parse(XSD))
    doc = etree.parse(str(pytester.path / "junit.xml"))
    assert schema.validate(doc), schema.error_log
    cases = doc.findall(".//testcase")
    assert len(cases) == 21
    keys = [(c.get("classname"), c.get("name")) for c in cases]
    assert len(set(keys)) == len(keys)
    assert ("fake-wrong.http", "http.headers.custom[fake-wrong]") in keys
    assert all(float(c.get("time")) >= 0 for c in cases)
    # one testsuite per client, each with its counts and its client's properties
    suites = {s.get("name"): s for s in doc.getroot().findall("testsuite")}
    assert list(suites) == ["fake-conforming", "fake-wrong", "fake-crashing"]
    counts = {n: (s.get("tests"), s.get("failures"), s.get("errors"), s.get("skipped"))
              for n, s in suites.items()}
    assert counts == {"fake-conforming": ("7", "0", "0", "1"), "fake-wrong": ("7", "2", "0", "1"),
                      "fake-crashing": ("7", "0", "1", "1")}
    root = doc.getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("21", "2", "1")
    for client, suite in suites.items():
        props = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
        assert props["client.%s.version" % client] == "1.0"
        assert "harness.version" in props
        assert not any(n.startswith("client.") and not n.startswith("client.%s." % client)
                       for n in props), props
        assert all(c.get("classname").startswith(client + ".") for c in suite.findall("testcase"))
    props = [(p.get("name"), p.get("value")) for p in suites["fake-wrong"].iter("property")]
    assert ("client.fake-wrong.implementation", "fake http.client on Python") in props
    # a non-strict pass is marked with a property of its suite
    non_strict = [v for n, v in props if n == "non-strict"]
    assert len(non_strict) == 1 and non_strict[0].startswith("http.headers.should[fake-wrong]: ")
    # failure and error messages are one line; the text keeps the whole report
    by_key = dict(zip(keys, cases))
    err = by_key[("fake-crashing.http", "http.basic.get[fake-crashing]")].find("error")
    assert "about to crash" in err.text
    assert "\n" not in err.get("message") and "exited" in err.get("message")
    failure = by_key[("fake-wrong.http", "http.headers.custom[fake-wrong]")].find("failure")
    assert failure.get("message") == ("server.requests[echo].headers.X-Comet: 1 of 1 route "
                                      "echo requests: X-Comet: expected yes, not observed")
    assert "expected vs observed" in failure.text
    assert gitlab_shape_problems(doc) == []
    assert all(c.get("file") is None for c in cases)  # not in Jenkins' junit-10


def gitlab_shape_problems(doc):
    """What GitLab's JUnit reader (Gitlab::Ci::Parsers::Test::Junit) would not take: the
    root is <testsuites> (or one <testsuite>), suites hold testcases, a testcase has a name
    and a classname, a numeric time, at most one of failure / error / skipped, whose
    message is one line; file, when given, is a relative path."""
    problems = []
    root = doc.getroot()
    if root.tag not in ("testsuites", "testsuite"):
        problems.append("root " + root.tag)
    for suite in root.iter("testsuite"):
        if not suite.get("name"):
            problems.append("a suite without a name")
        for case in suite.findall("testcase"):
            where = "%s/%s" % (case.get("classname"), case.get("name"))
            if not case.get("name") or not case.get("classname"):
                problems.append("name/classname missing: " + where)
            try:
                float(case.get("time", "0"))
            except ValueError:
                problems.append("time: " + where)
            outcomes = [e for e in case if e.tag in ("failure", "error", "skipped")]
            if len(outcomes) > 1:
                problems.append("%d outcomes: %s" % (len(outcomes), where))
            for e in outcomes:
                if "\n" in (e.get("message") or ""):
                    problems.append("a multi-line message: " + where)
            if case.get("file") is not None and (case.get("file").startswith("/")
                                                 or not case.get("file")):
                problems.append("file: " + where)
    return problems


def test_junit_locations_for_gitlab(cometrun, pytester):
    cometrun("--junitxml", "junit.xml", "--junit-locations", clients="fake-wrong")
    doc = etree.parse(str(pytester.path / "junit.xml"))
    assert gitlab_shape_problems(doc) == []
    cases = {c.get("name"): c for c in doc.iter("testcase")}
    case = cases["http.headers.custom[fake-wrong]"]
    assert (case.get("file"), case.get("line")) == ("scenarios/http/custom-header.yaml", "1")
    assert all(c.get("file").startswith("scenarios/") for c in cases.values())


def test_reports_written(cometrun, pytester):
    result, outcomes = cometrun(clients="fake-conforming,fake-wrong")
    results = pytester.path / "results"
    assert {p.name for p in results.iterdir()} == {"summary.md", "report.html",
                                                   "report-details"}  # json read
    md = (results / "summary.md").read_text()
    assert "14 runs, 7 scenarios × 2 clients" in md and "**2 failures**" in md
    assert "| fake-wrong | 1.0 | 3 | 1 | 2 |" in md
    html = (results / "report.html").read_text()
    assert html.count('class="cell"') == 14 and "http.timeout.read" in html
    result.stdout.fnmatch_lines(["*= Comet Harness =*", "fake-conforming *5 pass*",
                                 "wrote results/report.html"])
    assert len(outcomes) == 14


def test_xdist_gives_the_same_verdicts(cometrun):
    _, serial = cometrun(clients="fake-conforming,fake-wrong")
    result, parallel = cometrun("-n", "2", clients="fake-conforming,fake-wrong")
    assert parallel == serial and len(serial) == 14
    result.stdout.fnmatch_lines(["gw0 [[]14[]] / gw1 [[]14[]]"])


# ------------------------------------------------------------------------ everyday use

def test_help_shows_the_options(cometrun):
    result, _ = cometrun("--help")
    assert result.ret == 0, result.stderr.str()
    out = result.stdout.str()
    assert "Comet Harness conformance (drivers/comet_harness/README.md)" in out
    for option in ("--client=NAME[,NAME]", "--scenarios=DIR", "--progress=SECONDS",
                   "--junit-locations", "--list-clients", "--report-url=URL"):
        assert option in out, option


def test_a_folder_of_ones_own_runs_exactly_its_scenarios(cometrun, pytester, harness_bin):
    mine = pytester.path / "elsewhere" / "mine"
    mine.mkdir(parents=True)
    for name, new in (("basic-get", "mine.basic.get"), ("not-found", "mine.status.not-found")):
        text = open(os.path.join(SCENARIOS, "http", name + ".yaml")).read()
        (mine / (name + ".yaml")).write_text(re.sub(r"(?m)^id: .*$", "id: " + new, text))
    # as a plain pytest argument: exactly its scenarios (not the catalogue's)
    result = pytester.runpytest_subprocess(
        "-p", "comet_harness.plugin", "-p", "no:cacheprovider", "--rootdir", str(pytester.path),
        "--harness-bin", harness_bin, "--clients-file", CLIENTS, "--results", "results",
        "--scenarios", "scenarios", "-q", str(mine), timeout=300)
    assert result.ret == 0, result.stdout.str()
    doc = json.loads((pytester.path / "results" / "results.json").read_text())
    assert sorted(r["id"] for r in doc["results"]) == ["mine.basic.get", "mine.status.not-found"]
    # a file of one's own beside the catalogue
    result, outcomes = cometrun("-q", str(mine / "basic-get.yaml"))
    assert per_client(outcomes, "fake-conforming") == dict(CONFORMING, **{"mine.basic.get": "pass"})
    assert result.ret == 0


def test_make_conformance_variables():
    """make conformance SCENARIOS=… RESULTS=… JOBS=… CONFORMANCE_ARGS=…: each reaches the
    command (make -n prints it; the recursive make prints only too)."""
    root = os.path.dirname(DRIVERS)
    make = ["make", "-n", "--no-print-directory", "-C", root, "conformance"]
    out = subprocess.run(make + ["SCENARIOS=/tmp/mine x.yaml", "RESULTS=/tmp/res", "JOBS=3",
                                 "CONFORMANCE_ARGS=--client curl -m sse"],
                         capture_output=True, text=True, timeout=60).stdout
    command = out[out.index("-m pytest"):].replace("\\\n", " ")
    assert "--results /tmp/res --junitxml=/tmp/res/junit.xml" in command
    assert re.search(r"-n 3 --client curl -m sse /tmp/mine x\.yaml\s*$", command.strip()), command
    out = subprocess.run(make, capture_output=True, text=True, timeout=60).stdout
    command = out[out.index("-m pytest"):].replace("\\\n", " ")
    assert re.search(r"--results results .* -n 2\s+scenarios\s*$", command.strip()), command


def test_stale_expectations_ignore_scenarios_not_selected(cometrun, pytester):
    folder = pytester.path / "expectations"
    folder.mkdir()
    (folder / "fake-wrong.yaml").write_text(textwrap.dedent("""\
        http.headers.custom: https://bugs.example/1 drops the headers it is given
        http.gone.away: https://bugs.example/3 a scenario that no longer exists
        """))
    result, _ = cometrun("-k", "timeout", "--expectations", str(folder), clients="fake-wrong")
    out = result.stdout.str()
    assert "stale expectations for fake-wrong (no such scenario): http.gone.away" in out
    assert "http.headers.custom" not in out.split("stale expectations")[1].splitlines()[0]
    md = (pytester.path / "results" / "summary.md").read_text()
    assert "Stale expectations for fake-wrong (no such scenario): `http.gone.away`" in md
    assert "`http.headers.custom`" not in md
    result, _ = cometrun("-m", "sse", "-n", "2", "--expectations", str(folder), clients="fake-wrong")
    assert "no such scenario): http.gone.away\n" in result.stdout.str() + "\n"


def test_failures_are_headed_by_the_item_and_its_file(cometrun):
    result, _ = cometrun(clients="fake-wrong")
    result.stdout.fnmatch_lines([
        "_* http.headers.custom[[]fake-wrong[]] (scenarios/http/custom-header.yaml:1) _*",
        "_* http.timeout.read[[]fake-wrong[]] (scenarios/http/read-timeout.yaml:1) _*"])
    assert "_ test session _" not in result.stdout.str()
    result, _ = cometrun("-v", clients="fake-wrong")  # -v still names the item as it is
    result.stdout.fnmatch_lines(["scenarios/http/custom-header.yaml::http.headers.custom"
                                 "[[]fake-wrong[]] FAILED*"])


@pytest.mark.parametrize("jobs", [[], ["-n", "2"]])
def test_progress_line_per_client(cometrun, jobs):
    result, _ = cometrun("--progress", "0.001", *jobs, clients="fake-conforming,fake-wrong")
    out = result.stdout.str()
    for client, failing in (("fake-conforming", 0), ("fake-wrong", 2)):
        assert re.search(r"(?m)^progress: %s 7/7, %d failing, done in \d+s" % (client, failing), out), out
    assert re.search(r"(?m)^progress: fake-\w+ [1-6]/7, \d failing, (about \d+s left|time left unknown)",
                     out), out
    result, _ = cometrun("--progress", "0", clients="fake-conforming")
    assert "progress:" not in result.stdout.str()


@pytest.mark.parametrize("case, status", [("as expected", 0), ("failures", 1),
                                          ("unknown client", 2), ("invalid scenario", 2)])
def test_exit_status(cometrun, pytester, case, status):
    """0: everything as expected; 1: failures (fail, xpass, error); 2: usage or
    collection errors (README.md, "Exit status")."""
    if case == "invalid scenario":
        (pytester.path / "scenarios" / "http" / "bad.yaml").write_text("id: x\ncolour: red\n")
    clients = {"failures": "fake-wrong", "unknown client": "nobody"}.get(case, "fake-conforming")
    result, _ = cometrun("-q", clients=clients)
    assert result.ret == status, result.stdout.str()[-2000:]
