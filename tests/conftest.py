"""Fixtures for the integration tests: the real `harness` binary, started per test module.

    harness_bin    the binary (HARNESS_BIN, else build/harness)
    server         a running `harness serve --port 0 --root REPO` with helpers to load
                   scenarios from YAML text and read journals (class Server below)

Every control call goes to the ready line's `control` URL with its `token`: use
Server.api() (or Server.control_headers() for a request made by hand).

Only Debian's /usr/bin/python3 runs these (make integration-tests).
"""
import json
import os
import select
import signal
import subprocess
import textwrap
import time

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def harness_bin():
    path = os.environ.get("HARNESS_BIN") or os.path.join(ROOT, "build", "harness")
    if not os.path.exists(path):
        pytest.fail("no harness binary at %s (make harness)" % path)
    return path


def scenario_text(body, sid="t.case"):
    """A whole scenario from the server part (YAML text), with a placeholder identity."""
    head = ("id: %s\ntitle: integration test\nspec: https://example.org/spec\n"
            "client:\n  http: {url: /}\n" % sid)
    return head + textwrap.dedent(body)


class Server:
    """A running `harness serve` and its control API (on its own port, with the token).

    roots: the --root folders (default: the repository, so base_dir=ROOT and the
    fixtures load)."""

    def __init__(self, binary, args=(), roots=(ROOT,)):
        roots_args = [a for r in roots for a in ("--root", str(r))]
        self.proc = subprocess.Popen([binary, "serve", "--port", "0", *roots_args, *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        assert ready, "no ready line"
        self.ready = json.loads(self.proc.stdout.readline())
        self.main, self.cross, self.alt = (self.ready[k] for k in ("main", "cross", "alt"))
        self.control, self.token = self.ready["control"], self.ready["token"]
        self.session = requests.Session()  # scenario requests: no token
        self.session.trust_env = False
        self.control_session = requests.Session()
        self.control_session.trust_env = False
        self.control_session.headers.update(self.control_headers())
        self.n = 0

    def control_headers(self):
        return {"X-Harness-Token": self.token}

    def api(self, method, path, **kw):
        """A control call: path is under /_harness."""
        kw.setdefault("timeout", 30)
        return self.control_session.request(method, self.control + "/_harness" + path, **kw)

    def load(self, server_yaml, **kw):
        """Load a scenario (the server part as YAML text); returns the instance base URL."""
        self.n += 1
        r = self.api("POST", "/instances",
                     json={"yaml": scenario_text(server_yaml, "t.case%d" % self.n),
                           "base_dir": kw.get("base_dir", ROOT)})
        assert r.status_code == 201, r.text
        self.last = r.json()
        return self.main + self.last["base"]

    def journal(self, instance=None):
        r = self.api("GET", "/instances/%s/journal" % (instance or self.last["instance"]))
        assert r.status_code == 200, r.text
        return r.json()

    def entries(self, instance=None):
        return self.journal(instance)["entries"]

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.session.close()
        self.control_session.close()
        self.stderr = self.proc.stderr.read().decode("utf-8", "replace")
        self.proc.stderr.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def server(harness_bin):
    s = Server(harness_bin, ["--quiet"])
    yield s
    assert s.stop() == 0, s.stderr


@pytest.fixture
def http():
    s = requests.Session()
    s.trust_env = False
    yield s
    s.close()


# Timing checks judge each event against the absolute schedule -- its due time from one
# origin, such as when the request was sent -- never against the event before it (a late
# first event would make the next look early). Early is a bug, beyond the clock's grain;
# late is allowed up to LATE_S: room for a loaded machine (make check passes beside
# `stress-ng --cpu 4` on two cores).
EARLY_S = 0.02
LATE_S = 0.5


def machine_lag(samples=20):
    """How late this machine wakes a sleeping thread right now, in seconds: the worst
    oversleep of `samples` sleeps of 5 ms. About 0.1 ms on an idle machine, tens of ms beside
    a CPU hog. A bound on lateness adds LAG_FACTOR times it, so that it stays tight when the
    machine is idle and means "late by the server, not by the machine" when it is not."""
    worst = 0.0
    for _ in range(samples):
        t = time.monotonic()
        time.sleep(0.005)
        worst = max(worst, time.monotonic() - t - 0.005)
    return worst


LAG_FACTOR = 4


def on_schedule(t, due, lag=0.0):
    """Did an event seen at t (seconds from the origin) happen on time for due? lag: the
    machine's (machine_lag()), when the bound is to hold on a loaded machine."""
    return due - EARLY_S <= t <= due + LATE_S + LAG_FACTOR * lag


def wait_until(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()
