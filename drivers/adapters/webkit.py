#!/usr/bin/python3
"""webkit.py — the adapter for WebKitGTK (docs/adapters.md), driven over WebDriver classic.

    /usr/bin/python3 drivers/adapters/webkit.py

Debian's webkit2gtk-driver gives /usr/bin/WebKitWebDriver, which drives WebKitGTK's
MiniBrowser (`--automation`). MiniBrowser needs an X display, so the adapter starts an
Xvfb of its own (`Xvfb -displayfd FD -screen 0 1280x1024x24 -nolisten tcp`: Xvfb picks a
free display number itself and tells it on FD, so two adapters started at once never
race for one), then WebKitWebDriver on a free port, then one WebDriver session, which
lives as long as the adapter. Session creation hangs silently without a working display,
so it always has a timeout (SESSION_TIMEOUT_S). Every process the adapter starts stays in
its process group (the driver kills the group when the adapter dies) and is killed, with
its children, when the adapter stops.

Each run: the session loads the harness page (run.page), deletes the cookies, evaluates
the shared in-page runner (browser/runner.js, the very file Chromium and Firefox run) and
calls `cometRun(client, deadline)` through Execute Async Script; its answer is the
observations. The runner answers by the deadline itself. If the page stops answering (a
synchronous XHR to a server that never replies blocks its only thread), the adapter gives
up UNRESPONSIVE_S after the deadline, answers {"events": [], "deadline": true,
"pageUnresponsive": true} and replaces the session (a new MiniBrowser; the whole
WebKitWebDriver if that fails) before the next run.

Runs are carried out one at a time, in arrival order (one session, one page): runs sent
together are answered one after the other, each within its own deadline counted from the
moment it starts. The driver sends one run at a time to an adapter, so this costs nothing
there. Capabilities: xhr, fetch, eventsource, websocket, jsonp, image.

WebDriver is plain HTTP+JSON (urllib); the protocol loop is pyproto.py's.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from pyproto import Adapter, Run, deadline_ms, log, serve

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, "browser", "runner.js")
NAME = "webkit"
CAPABILITIES = ["xhr", "fetch", "eventsource", "websocket", "jsonp", "image"]
SESSION_TIMEOUT_S = 45   # POST /session (hangs without a display)
UNRESPONSIVE_S = 3.0     # after the deadline: the page is unresponsive
NAVIGATE_TIMEOUT_S = 15
WEBDRIVER = shutil.which("WebKitWebDriver") or "/usr/bin/WebKitWebDriver"
XVFB = shutil.which("Xvfb") or "/usr/bin/Xvfb"


class PageUnresponsive(Exception):
    pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def descendants(pid):
    """The pids of pid's children, grandchildren… (from /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as f:
                stat = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_tree(proc, sig=signal.SIGKILL):
    """Kill a process we started and everything it started."""
    if proc is None:
        return
    pids = descendants(proc.pid) if proc.poll() is None else []
    for pid in [proc.pid] + pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


class WebKit:
    """Xvfb + WebKitWebDriver + one WebDriver session."""

    def __init__(self):
        self.xvfb = self.driver = None
        self.session = None
        with open(RUNNER, encoding="utf-8") as f:
            self.runner_src = f.read()
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            self.display = self._start_xvfb()
            self._start_driver()
            self.new_session()
        except BaseException:
            self.close()
            raise

    # -- processes

    def _start_xvfb(self):
        r, w = os.pipe()
        try:
            self.xvfb = subprocess.Popen(
                [XVFB, "-displayfd", str(w), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                pass_fds=(w,))
        finally:
            os.close(w)
        threading.Thread(target=self._drain, args=(self.xvfb.stderr, "Xvfb"), daemon=True).start()
        number = b""
        end = time.monotonic() + 15
        with os.fdopen(r, "rb", buffering=0) as f:
            os.set_blocking(r, False)
            while time.monotonic() < end and not number.endswith(b"\n"):
                try:
                    data = f.read(16)
                except BlockingIOError:
                    data = None
                if data == b"":
                    break
                if data:
                    number += data
                elif self.xvfb.poll() is not None:
                    break
                else:
                    time.sleep(0.05)
        if not number.strip().isdigit():
            raise RuntimeError("Xvfb did not start (exit status %s)" % self.xvfb.poll())
        return ":" + number.strip().decode()

    def _start_driver(self):
        env = dict(os.environ, DISPLAY=self.display, NO_AT_BRIDGE="1", GDK_BACKEND="x11")
        env.pop("WAYLAND_DISPLAY", None)
        for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                    "ALL_PROXY"):
            env.pop(var, None)  # the harness is on loopback
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.driver = subprocess.Popen([WEBDRIVER, "--port=%d" % self.port], env=env,
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE)
        threading.Thread(target=self._drain, args=(self.driver.stderr, "WebKitWebDriver"),
                         daemon=True).start()
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if self.driver.poll() is not None:
                raise RuntimeError("WebKitWebDriver exited with status %s" % self.driver.poll())
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("WebKitWebDriver did not listen on port %d" % self.port)

    @staticmethod
    def _drain(stream, what):
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                log("%s: %s" % (what, line))

    # -- WebDriver

    def call(self, method, path, body=None, timeout=30):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with self.opener.open(req, timeout=timeout) as resp:
                return json.loads(resp.read() or b"{}").get("value")
        except urllib.error.HTTPError as err:
            detail = err.read().decode("utf-8", "replace")
            raise RuntimeError("WebDriver %s %s: %s %s" % (method, path, err.code, detail[:500]))

    def s(self, method, path, body=None, timeout=30):
        return self.call(method, "/session/%s%s" % (self.session, path), body, timeout)

    def new_session(self):
        caps = {"capabilities": {"alwaysMatch": {
            "webkitgtk:browserOptions": {"args": ["--automation"]},
            "pageLoadStrategy": "normal"}}}
        try:
            answer = self.call("POST", "/session", caps, timeout=SESSION_TIMEOUT_S)
        except (socket.timeout, TimeoutError):
            raise RuntimeError("WebDriver session creation timed out after %d s (no working "
                               "display?)" % SESSION_TIMEOUT_S) from None
        self.session = answer["sessionId"]
        caps = answer.get("capabilities") or {}
        self.version = caps.get("browserVersion") or "?"
        self.browser = caps.get("browserName") or "MiniBrowser"
        self.s("POST", "/timeouts", {"pageLoad": NAVIGATE_TIMEOUT_S * 1000})
        self.user_agent = self.s("POST", "/execute/sync",
                                 {"script": "return navigator.userAgent", "args": []})

    def reset_session(self):
        """A new session (after an unresponsive page); a new WebKitWebDriver if need be."""
        old, self.session = self.session, None
        try:
            self.call("DELETE", "/session/%s" % old, timeout=5)
        except Exception as err:  # noqa: BLE001 - replaced anyway
            log("webkit: closing the stuck session: %s" % err)
        try:
            self.new_session()
            return
        except Exception as err:  # noqa: BLE001
            log("webkit: a new session failed (%s): restarting WebKitWebDriver" % err)
        kill_tree(self.driver)
        self._start_driver()
        self.new_session()

    def run(self, msg):
        deadline = int(deadline_ms(msg))
        self.s("POST", "/url", {"url": msg["page"]}, timeout=NAVIGATE_TIMEOUT_S + 5)
        self.s("DELETE", "/cookie")
        self.s("POST", "/execute/sync", {
            "script": self.runner_src + "\nwindow.cometRun = cometRun; return true;", "args": []})
        self.s("POST", "/timeouts", {"script": deadline + int(UNRESPONSIVE_S * 1000) + 2000})
        script = ("const done = arguments[arguments.length - 1];"
                  "window.cometRun(arguments[0], arguments[1]).then("
                  "  (obs) => done({ok: obs}),"
                  "  (err) => done({err: String(err && err.stack || err)}));")
        try:
            answer = self.s("POST", "/execute/async",
                            {"script": script, "args": [msg["client"], deadline]},
                            timeout=deadline / 1000.0 + UNRESPONSIVE_S)
        except (socket.timeout, TimeoutError):
            raise PageUnresponsive() from None
        except RuntimeError as err:
            if "script timeout" in str(err):
                raise PageUnresponsive() from None
            raise
        if not isinstance(answer, dict) or "ok" not in answer:
            raise RuntimeError("the in-page runner failed: %s" % (answer or {}).get("err"))
        return answer["ok"]

    def close(self):
        if self.session and self.driver is not None and self.driver.poll() is None:
            try:
                self.call("DELETE", "/session/%s" % self.session, timeout=5)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        self.session = None
        kill_tree(self.driver)
        kill_tree(self.xvfb)


class Browser:
    """The one WebKit of this adapter: launched on first need, one run at a time."""

    def __init__(self):
        self.lock = threading.Lock()
        self.webkit = None
        self.closed = False
        self.needs_reset = False

    def get(self):
        """The running WebKit (the caller holds the lock)."""
        if self.closed:
            raise RuntimeError("the adapter is stopping")
        if self.webkit is None:
            self.webkit = WebKit()
        elif self.needs_reset:
            self.webkit.reset_session()
        self.needs_reset = False
        return self.webkit

    def close(self):
        self.closed = True
        webkit, self.webkit = self.webkit, None
        if webkit is not None:
            webkit.close()


BROWSER = Browser()


class WebKitRun(Run):
    def answer(self):
        # One run at a time; a stop ends the wait.
        while not BROWSER.lock.acquire(timeout=0.1):
            if self.stopped:
                return {"type": "error", "message": "the adapter was stopped before the run finished"}
        try:
            if self.stopped:
                return {"type": "error", "message": "the adapter was stopped before the run finished"}
            self.result = None
            worker = threading.Thread(target=self.work, name="run-%s" % self.id, daemon=True)
            worker.start()
            # The page answers by the deadline; the WebDriver call itself times out
            # UNRESPONSIVE_S later. The margin covers starting the browser and the page load.
            finished = self.done.wait(self.deadline_s + UNRESPONSIVE_S + NAVIGATE_TIMEOUT_S + 20)
            if self.stopped:
                return {"type": "error", "message": "the adapter was stopped before the run finished"}
            if not finished:
                self.cancel()
                self.failure = RuntimeError("WebKit did not answer the run")
            if isinstance(self.failure, PageUnresponsive):
                BROWSER.needs_reset = True
                return {"type": "result", "observations": {
                    "events": [], "deadline": True, "pageUnresponsive": True}}
            if self.failure is not None:
                BROWSER.needs_reset = True  # start the next run from a fresh session
                err = self.failure
                return {"type": "error", "message": "%s: %s" % (type(err).__name__, err)}
            return {"type": "result", "observations": self.result}
        finally:
            BROWSER.lock.release()

    def execute(self):
        self.result = BROWSER.get().run(self.msg)


class WebKitAdapter(Adapter):
    def started(self, msg):
        with BROWSER.lock:
            webkit = BROWSER.get()
        answer = {"id": msg.get("id"), "type": "started", "protocol": 1, "name": NAME,
                  "version": webkit.version,
                  "implementation": "WebKitGTK %s (%s) over WebKitWebDriver %s" % (
                      webkit.version, webkit.browser, WEBDRIVER),
                  "capabilities": CAPABILITIES,
                  "details": {"userAgent": webkit.user_agent, "display": webkit.display,
                              "webdriver": WEBDRIVER, "xvfb": XVFB}}
        return answer


def main():
    if len(sys.argv) > 1:
        print("usage: webkit.py", file=sys.stderr)
        sys.exit(2)
    serve(WebKitAdapter(name=NAME, version="", implementation="", capabilities=CAPABILITIES,
                        run_class=WebKitRun, on_stop=BROWSER.close))


if __name__ == "__main__":
    main()
