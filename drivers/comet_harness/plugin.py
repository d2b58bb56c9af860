"""The pytest plugin: scenario files in, one test per scenario × client, verdicts out.

    PYTHONPATH=drivers /usr/bin/python3 -m pytest -p comet_harness.plugin scenarios/ \\
        [--client chromium,python-requests] [-k reconnect] [-m sse] [-n auto] \\
        [--junitxml results/junit.xml] [/path/to/my/scenarios ...]

Options, outcomes and exit statuses: drivers/comet_harness/README.md.

Collection: every *.yaml / *.yml under --scenarios, under a folder named on the command
line or named itself there is validated by `harness check --json` (the one parser and
validator); an invalid file is a collection error with its file:line:col messages. A
valid scenario gives one item per client, named `ID[CLIENT]`, marked with its area (the
first segment of the id: `-m sse`) and its tags.

Running an item (per pytest process, so per xdist worker: one `harness serve`, one adapter
per client, each started on first use): its setup is the run and its call the grading
(items.py). Known failures (drivers/expectations/CLIENT.yaml) are marked xfail(strict): a
listed failure does not fail the run, an unexpected pass does.

The modules, by job: session.py (the state of the process), items.py (collection and the
run), outcome.py (a pytest report → the Comet outcome and record), recorder.py (records,
reports, progress.py's lines), junit.py (the JUnit XML), clients.py (the registry and the
adapter processes), report.py (results.json, summary.md, report.html). This one holds the
hooks.
"""
import sys

import pytest

from . import plan, session
from . import shard as shard_mod
from .clients import DEFAULT_GRACE_S
from .items import ScenarioFile, ScenarioItem
from .junit import JunitSuites
from .outcome import decorate
from .recorder import Recorder
from .runahead import DEFAULT_LIMIT, RunAhead
from .session import state_of

# Exit statuses (pytest's, but for a usage error): documented in README.md.
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


# ------------------------------------------------------------------------------ options

def pytest_addoption(parser, pluginmanager):
    if pluginmanager.get_plugin("comet-exit-status") is None:
        pluginmanager.register(ExitStatus(), "comet-exit-status")
    group = parser.getgroup("comet", "Comet Harness conformance "
                                     "(drivers/comet_harness/README.md)")
    group.addoption("--client", action="append", default=[], metavar="NAME[,NAME]",
                    help="clients to run the scenarios against (repeatable, comma separated; "
                         "default: the default clients of the registry)")
    group.addoption("--scenarios", default="scenarios", metavar="DIR",
                    help="the scenario catalogue: YAML files under it are collected "
                         "(default: scenarios). A folder or YAML file named as an argument "
                         "is collected too, and alone when it is the only argument")
    group.addoption("--harness-bin", default=None, metavar="PATH",
                    help="the harness binary (default: $HARNESS_BIN, else build/harness)")
    group.addoption("--results", default="results", metavar="DIR",
                    help="where results.json, summary.md and report.html go (default: results)")
    group.addoption("--no-reports", action="store_true",
                    help="write no results.json / summary.md / report.html")
    group.addoption("--report-url", default="report.html", metavar="URL",
                    help="where summary.md links to the full report (default: report.html, "
                         "beside it; in CI, the artifact's URL)")
    group.addoption("--adapter-grace", type=float, default=DEFAULT_GRACE_S, metavar="SECONDS",
                    help="how long past a run's deadline an adapter may take to answer before "
                         "it counts as hung (default: %(default)s)")
    group.addoption("--clients-file", default=None, metavar="PATH",
                    help="more clients, or other settings of some (the shape of "
                         "drivers/clients.yaml, which it updates)")
    group.addoption("--expectations", default=None, metavar="DIR",
                    help="known failures, one CLIENT.yaml per client (default: drivers/expectations)")
    group.addoption("--progress", type=float, default=30.0, metavar="SECONDS",
                    help="a progress line per client every SECONDS (done/total, failing, time "
                         "left), and when a client is done; 0: none (default: %(default)s)")
    group.addoption("--junit-locations", action="store_true",
                    help="add file and line attributes to the JUnit testcases (GitLab shows "
                         "them; outside Jenkins' junit-10 schema)")
    group.addoption("--shard", default=None, metavar="K/N",
                    help="run the K-th of N balanced slices of the scenario × client runs "
                         "(make merge puts the N results together)")
    group.addoption("--shard-durations", default=None, metavar="FILE",
                    help="the results.json whose run durations balance the shards (default: "
                         "%s when it exists; every shard must read the same file)"
                         % shard_mod.DURATIONS_DEFAULT)
    group.addoption("--parallel", type=int, default=DEFAULT_LIMIT, metavar="N",
                    help="runs at once in one pytest process (each client's own limit is its "
                         "`parallel` in the registry); 1: one at a time, in pytest's order "
                         "(default: %(default)s)")
    group.addoption("--list-clients", action="store_true",
                    help="list the known clients and exit")


def pytest_configure(config):
    state = session.from_config(config)
    config.stash[session.STATE] = state
    config.addinivalue_line("markers", "comet: a Comet Harness scenario run against one client")
    config.pluginmanager.register(Recorder(config), "comet-recorder")
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(JunitSuites(config, state), "comet-junit")


def list_clients(state, out=None):
    """The registry as a table: name, default, kind, capabilities, description; the command
    on the line below. Returns the lines."""
    rows = [("client", "default", "kind", "capabilities", "description")]
    for name, spec in sorted(state.registry.items()):
        rows.append((name, "yes" if name in state.default else "", spec.kind,
                     ",".join(spec.capabilities) or "?", spec.description))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[4])
        if n:
            spec = state.registry[row[0]]
            lines.append(" " * (widths[0] + 2) + "$ " + " ".join(spec.command))
    count = len(state.registry)
    lines.append("%d client%s, %d run by default" % (count, "" if count == 1 else "s",
                                                     len(state.default)))
    return [l.rstrip() for l in lines]


class ExitStatus:
    """A usage error exits 2 (pytest's own status for it is 4), with pytest's message.
    A plugin object of its own, registered with the options, so that it wraps the whole
    of pytest_cmdline_main (the configuration is done inside it)."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_cmdline_main(self, config):
        outcome = yield
        excinfo = outcome.excinfo
        if excinfo is not None and isinstance(excinfo[1], pytest.UsageError):
            for msg in excinfo[1].args:
                sys.stderr.write("ERROR: %s\n\n" % msg)
            outcome.force_result(EXIT_USAGE)
        elif excinfo is None and outcome.get_result() == pytest.ExitCode.USAGE_ERROR:
            outcome.force_result(EXIT_USAGE)


def pytest_cmdline_main(config):
    if config.getoption("list_clients"):
        config._do_configure()  # as pytest's own --markers does
        try:
            for line in list_clients(config.stash[session.STATE]):
                print(line)
        finally:
            config._ensure_unconfigure()
        return EXIT_OK
    return None


def pytest_unconfigure(config):
    state = config.stash.get(session.STATE, None)
    if state is not None:
        state.close()


# ---------------------------------------------------------------------------- collection

def pytest_collect_file(file_path, parent):
    state = session.state_of(parent.config)
    if file_path.suffix in (".yaml", ".yml") and state.is_scenario_file(file_path):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(trylast=True)  # after -k and -m deselected theirs
def pytest_collection_modifyitems(config, items):
    """--shard K/N: keep this shard's runs (in every xdist worker alike), in their order.
    Then, in a process that runs them all (no xdist) and runs them ahead: costliest first
    (plan.py; under xdist the controller's scheduler gives the order).

    (The shard is not reordered itself: xdist's own scheduler, under another --dist, hands
    each worker a first chunk of a quarter of its share, so one worker would get the long
    runs, the other the short ones and then everything else, and be left alone at the
    end. In the collection's order every chunk is a mix.)"""
    state = session.state_of(config)
    if state.shard is not None:
        runs = plan.runs_of(state, [item.nodeid for item in items], config.rootpath)
        cost = shard_mod.costs(runs, state.durations)
        k, n = state.shard
        where = shard_mod.partition(cost, n)
        keep = [item for item in items if where[item.nodeid] == k - 1]
        dropped = [item for item in items if where[item.nodeid] != k - 1]
        state.shard_meta = {
            "index": k, "count": n, "runs": len(keep), "of": len(items),
            "partition": shard_mod.fingerprint(where, n),
            "balanced_by": "durations" if state.durations else "count",
            "cost": round(sum(cost[i.nodeid] for i in keep), 3)}
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    if run_ahead(config) and not hasattr(config, "workerinput"):
        order = plan.part_of(state, [item.nodeid for item in items], config.rootpath, 0, 1)
        items[:] = [items[i] for i in order]


# ------------------------------------------------------------------------------ running

def run_ahead(config):
    """Whether runs are carried out ahead, several at once (--parallel above 1)."""
    return config.getoption("parallel") > 1


def planned(config):
    """Whether the xdist controller hands out the plan (plan.py): under --dist load."""
    return run_ahead(config) and config.getoption("dist", default="no") == "load"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    if planned(node.config):
        node.workerinput[plan.PLAN_KEY] = True


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if planned(config):
        return plan.make_scheduler(config, log, session.state_of(config))
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    """The runs this process will be asked for, to run ahead (runahead.py)."""
    config = session.config
    if not run_ahead(config) or config.pluginmanager.has_plugin("dsession") or \
            config.getoption("collectonly"):
        return None  # one at a time; or the xdist controller, which runs nothing
    state = state_of(config)
    items = session.items
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        if not workerinput.get(plan.PLAN_KEY):
            return None  # xdist's own scheduler: which runs will come is not known
        number = plan.worker_number(workerinput.get("workerid"))
        order = plan.part_of(state, [item.nodeid for item in items], config.rootpath,
                             -1 if number is None else number, workerinput["workercount"])
        items = [items[i] for i in order]
    state.runahead = RunAhead(
        [item for item in items if isinstance(item, ScenarioItem)],
        lambda client: state.registry[client].parallel if client in state.registry else 1,
        config.getoption("parallel"))
    return None


# ------------------------------------------------------------------------------ reports

@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if isinstance(item, ScenarioItem):
        decorate(item, outcome.get_result(), call)


def pytest_report_teststatus(report, config):
    comet = getattr(report, "comet", None)
    if comet and report.when == "call" and comet["outcome"] == "non-strict":
        return "non-strict", "n", ("NON-STRICT", {"yellow": True})
    return None
