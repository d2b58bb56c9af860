"""Runs carried out ahead and several at once (runahead.py), the plan that spreads them
over the xdist workers (plan.py), and the adapter pool under several runs at once
(clients.py): each client's and the process's limits hold, every run is done once and its
outcome (an error, a skip) reaches its item; a crash of a library adapter fails only its
own run; answers reach their own run when several share a process, and so do the stderr
lines tagged with their run.

    /usr/bin/python3 -m pytest -q -p no:cacheprovider drivers/tests/test_runahead.py
"""
import os
import threading
import time

import pytest

from comet_harness import clients as registry
from comet_harness import plan
from comet_harness.runahead import RunAhead

from helpers import ROOT

PY = "/usr/bin/python3"
ORIGINS = {"main": "http://127.0.0.1:9", "cross": "http://127.0.0.1:9",
           "alt": "http://127.0.0.1:9"}


# ------------------------------------------------------------------------------ run-ahead

class FakeItem:
    """What RunAhead needs of an item: nodeid, client, carry_out()."""

    running = {}
    peak = {}
    lock = threading.Lock()

    def __init__(self, n, client, seconds=0.05, error=None):
        self.nodeid = "f.yaml::s%d[%s]" % (n, client)
        self.client = client
        self.seconds = seconds
        self.error = error
        self.runs = 0

    def carry_out(self):
        cls = FakeItem
        with cls.lock:
            self.runs += 1
            cls.running[self.client] = cls.running.get(self.client, 0) + 1
            cls.running["*"] = cls.running.get("*", 0) + 1
            for key in (self.client, "*"):
                cls.peak[key] = max(cls.peak.get(key, 0), cls.running[key])
        try:
            time.sleep(self.seconds)
            if self.error is not None:
                raise self.error
        finally:
            with cls.lock:
                cls.running[self.client] -= 1
                cls.running["*"] -= 1


def test_run_ahead_keeps_the_limits_and_runs_each_once():
    FakeItem.running.clear()
    FakeItem.peak.clear()
    parallel = {"a": 3, "b": 1, "c": 2}
    items = [FakeItem(n, client) for n in range(12) for client in parallel]
    items[4].error = ValueError("adapter trouble")
    ahead = RunAhead(items, parallel.get, limit=5)
    t0 = time.monotonic()
    done = [ahead.take(item) for item in items]
    elapsed = time.monotonic() - t0
    assert all(item.runs == 1 for item in items)
    assert isinstance(done[4].error, ValueError) and done[4].duration >= 0.05
    assert all(d.error is None for n, d in enumerate(done) if n != 4)
    for client, limit in parallel.items():
        assert FakeItem.peak[client] <= limit
    assert FakeItem.peak["b"] == 1 and FakeItem.peak["*"] == 5  # the process limit reached
    # b's 12 runs one at a time are the longest chain: the rest went on beside them
    assert elapsed < 12 * 3 * 0.05
    ahead.close()


def test_run_ahead_leaves_an_item_it_was_not_given():
    items = [FakeItem(n, "a") for n in range(3)]
    ahead = RunAhead(items[:2], lambda c: 2)
    assert ahead.take(items[2]) is None and items[2].runs == 0
    assert ahead.take(items[0]).error is None
    ahead.close()
    assert ahead.take(items[1]) is None  # closed: pytest runs it itself


def test_nothing_runs_before_the_first_take():
    items = [FakeItem(n, "a") for n in range(3)]
    ahead = RunAhead(items, lambda c: 2)
    time.sleep(0.1)
    assert [i.runs for i in items] == [0, 0, 0]
    ahead.close()


# ---------------------------------------------------------------------------------- plan

def test_plan_spreads_each_client_and_takes_the_costliest_first():
    runs, durations = [], {}
    for n in range(20):
        for client, seconds in (("slow", 3.0 + n), ("fast", 0.1)):
            runs.append(("f::s%d[%s]" % (n, client), "s%d" % n, client, True))
            durations[("s%d" % n, client)] = seconds
    runs.append(("f::u[fast]", "u", "fast", False))
    parts = plan.assign(runs, durations, 2)
    assert sorted(i for part in parts for i in part) == list(range(len(runs)))
    assert parts == plan.assign(runs, durations, 2)  # the same for every process
    for client in ("slow", "fast"):
        loads = [sum(durations.get(runs[i][1:3], 0) for i in part if runs[i][2] == client)
                 for part in parts]
        assert abs(loads[0] - loads[1]) <= max(durations[(r[1], r[2])] for r in runs
                                               if r[2] == client and r[3])
    for part in parts:
        costs = [durations.get(runs[i][1:3], 0.0) for i in part]
        assert costs[0] == max(costs) and runs[part[0]][2] == "slow"


def test_worker_numbers():
    assert plan.worker_number("gw0") == 0 and plan.worker_number("gw12") == 12
    assert plan.worker_number("master") is None


# ------------------------------------------------------------------- the adapter pool

def fake(name, *args, parallel=1, per_process=1):
    return registry.ClientSpec(name, [PY, "drivers/tests/fakes/%s.py" % name] + list(args),
                               start_timeout=15, parallel=parallel, per_process=per_process)


def run_args(scenario):
    return (scenario, {"http": {"url": "http://127.0.0.1:9/none"}}, ORIGINS,
            ORIGINS["main"] + "/p", 3000)


def test_a_crash_fails_only_its_own_run():
    """Two runs of a library client at once go to two processes (per_process 1): the
    crash of one is that run's error; the other run and the next ones are not touched."""
    spec = fake("crashing", "--on", "x.crash", parallel=2)
    pool = registry.AdapterPool({spec.name: spec}, ROOT, 1)
    try:
        first, second = pool.acquire(spec.name), pool.acquire(spec.name)
        assert first is not second and first.inflight == second.inflight == 1
        outcome = {}

        def run(proc, scenario):
            try:
                outcome[scenario] = proc.run(*run_args(scenario))[0]
            except registry.AdapterError as err:
                outcome[scenario] = err.kind
                pool.discard_process(proc)
            finally:
                pool.release(proc)

        threads = [threading.Thread(target=run, args=(first, "x.crash")),
                   threading.Thread(target=run, args=(second, "x.fine"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert outcome == {"x.crash": "crash", "x.fine": "result"}
        assert not first.alive() and second.alive()
        third = pool.acquire(spec.name)
        assert third is second  # the live one, free again
        assert third.run(*run_args("x.next"))[0] == "result"
        pool.release(third)
    finally:
        pool.close()


def test_runs_sharing_a_process_each_get_their_answer():
    spec = fake("conforming", parallel=3, per_process=3)
    pool = registry.AdapterPool({spec.name: spec}, ROOT, 1)
    try:
        procs = [pool.acquire(spec.name) for _ in range(3)]
        assert procs[0] is procs[1] is procs[2] and procs[0].inflight == 3
        answers = {}

        def run(n):
            answers[n] = procs[n].run(*run_args("x.%d" % n), run_id="r%d" % n)
        threads = [threading.Thread(target=run, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(answers) == [0, 1, 2] and all(a[0] == "result" for a in answers.values())
        for p in procs:
            pool.release(p)
        assert procs[0].inflight == 0
    finally:
        pool.close()


def stderr_until(p, pred, timeout=10):
    """The adapter process p's stderr once pred(text) holds (or the timeout has passed)."""
    deadline = time.monotonic() + timeout
    while not pred(p.stderr_since(0)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return p.stderr_since(0)


def test_stderr_of_a_run_leaves_out_the_lines_of_other_runs():
    spec = registry.ClientSpec("talker", [PY, "-c", (
        "import sys, time\n"
        "sys.stderr.write('[run 1] mine\\n[run 2] theirs\\nthe browser\\n[run 1] mine too')\n"
        "sys.stderr.flush(); time.sleep(30)")])
    p = registry.AdapterProcess(spec)
    try:
        # (the last line has no newline: it is read at the end)
        stderr_until(p, lambda text: "the browser" in text)
        assert p.stderr_since(0, run=1) == "[run 1] mine\nthe browser"
        assert "[run 2] theirs" in p.stderr_since(0)
    finally:
        p.kill()
    assert p.stderr_since(0, run=1) == "[run 1] mine\nthe browser\n[run 1] mine too"


def test_kill_ends_the_processes_started_in_groups_of_their_own():
    """puppeteer starts a browser as the leader of a process group of its own: killing the
    adapter's group alone would leave it running."""
    spec = registry.ClientSpec("parent", [PY, "-c", (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen(['sleep', '60'], start_new_session=True)\n"
        "print(p.pid, file=sys.stderr, flush=True); time.sleep(60)")])
    p = registry.AdapterProcess(spec)
    try:
        child = int(stderr_until(p, lambda text: text.strip()).strip())
    finally:
        p.kill()
    for _ in range(50):
        if not os.path.exists("/proc/%d" % child) or \
                open("/proc/%d/stat" % child).read().rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.1)
    else:
        pytest.fail("the grandchild %d outlived the adapter" % child)


def test_registry_parallel_fields(tmp_path):
    path = tmp_path / "clients.yaml"
    path.write_text("clients:\n  x:\n    command: [true]\n    parallel: 0\n")
    with pytest.raises(registry.RegistryError, match="parallel must be a whole number"):
        registry.load_registry(str(path))
    clients, _ = registry.load_registry()
    assert clients["chromium"].parallel >= 1 and clients["curl"].per_process == 1


# ------------------------------------------------------------ a settled journal

class _SessionEndsLate:
    """A harness whose WebSocket entry records its end on the third journal read, as the
    server does a moment after the client saw the close."""

    def __init__(self):
        self.reads = 0

    def journal(self, instance_id):
        self.reads += 1
        return {"entries": [{"route": "ws", "ended": 12.5 if self.reads >= 3 else None}]}


def test_the_journal_is_read_once_a_websocket_session_has_ended():
    """With no pause between a run and its grading (run-ahead), a WebSocket session's end
    may not be in the journal yet: the driver reads it again until every entry has ended,
    when expect.server grades a session (grader.needs_settled) -- and only then."""
    from types import SimpleNamespace
    from comet_harness import grader
    from comet_harness.items import ScenarioItem
    ws = {"server": {"websocket": {"end": "closed_by_server"}}}
    assert grader.needs_settled(ws) and not grader.needs_settled({"server": {"requests": []}})
    server = _SessionEndsLate()
    item = SimpleNamespace(instance={"instance": "i"}, expect=ws)
    journal = ScenarioItem._journal(item, server)
    assert journal["entries"][0]["ended"] == 12.5 and server.reads == 3
    server = _SessionEndsLate()
    item = SimpleNamespace(instance={"instance": "i"}, expect={"client": {"status": 200}})
    assert ScenarioItem._journal(item, server)["entries"][0]["ended"] is None
    assert server.reads == 1
