#!/usr/bin/python3
"""webkit.py — the adapter for WebKitGTK (docs/adapters.md), driven over WebDriver classic.

    /usr/bin/python3 drivers/adapters/webkit.py

Debian's webkit2gtk-driver gives WebKitWebDriver, which drives WebKitGTK's MiniBrowser.
MiniBrowser needs an X display: the adapter starts its own Xvfb on a free display number
(without a display, session creation hangs silently, so it always has a timeout). Then it
starts WebKitWebDriver on a free port and opens one session (`--automation`), which lives
as long as the adapter.

Each run: the session loads the harness page (run.page), deletes the cookies, installs the
shared in-page runner (browser/runner.js, the same file Chromium and Firefox run) and calls
`cometRun(client, deadline)` through Execute Async Script; its answer is the observations.
Runs are carried out one at a time (one page), in arrival order; the driver sends one run
at a time per adapter anyway. Capabilities: xhr, fetch, eventsource, websocket, jsonp, image.

WebDriver is plain HTTP+JSON (urllib); nothing else beyond the standard library.
"""
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, "browser", "runner.js")
NAME = "webkit"
CAPABILITIES = ["xhr", "fetch", "eventsource", "websocket", "jsonp", "image"]
SESSION_TIMEOUT_S = 60

_out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
sys.stdout = sys.stderr
_lock = threading.Lock()


def write(msg):
    with _lock:
        try:
            _out.write(json.dumps(msg, ensure_ascii=False) + "\n")
            _out.flush()
        except (BrokenPipeError, ValueError):
            pass


def log(*args):
    print("webkit:", *args, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class WebKit:
    """Xvfb + WebKitWebDriver + one WebDriver session."""

    def __init__(self):
        self.procs = []
        self.display = self._start_xvfb()
        env = dict(os.environ, DISPLAY=self.display, NO_AT_BRIDGE="1")
        env.pop("WAYLAND_DISPLAY", None)
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.procs.append(subprocess.Popen(
            [shutil.which("WebKitWebDriver") or "/usr/bin/WebKitWebDriver",
             "--port=%d" % self.port], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, start_new_session=True))
        self._wait_port(self.port, 20)
        caps = {"capabilities": {"alwaysMatch": {
            "webkitgtk:browserOptions": {"args": ["--automation"]},
            "pageLoadStrategy": "normal"}}}
        answer = self.call("POST", "/session", caps, timeout=SESSION_TIMEOUT_S)
        self.session = answer["sessionId"]
        self.version = answer["capabilities"].get("browserVersion", "?")
        self.browser = answer["capabilities"].get("browserName", "MiniBrowser")
        with open(RUNNER, encoding="utf-8") as f:
            self.runner_src = f.read()

    def _start_xvfb(self):
        for n in range(90, 190):
            if os.path.exists("/tmp/.X11-unix/X%d" % n) or os.path.exists("/tmp/.X%d-lock" % n):
                continue
            p = subprocess.Popen(["Xvfb", ":%d" % n, "-screen", "0", "1280x1024x24",
                                  "-nolisten", "tcp"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
            for _ in range(50):
                if os.path.exists("/tmp/.X11-unix/X%d" % n):
                    self.procs.append(p)
                    return ":%d" % n
                if p.poll() is not None:
                    break
                time.sleep(0.1)
            if p.poll() is None:
                p.kill()
        raise RuntimeError("cannot start Xvfb")

    @staticmethod
    def _wait_port(port, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("WebKitWebDriver did not listen on port %d" % port)

    def call(self, method, path, body=None, timeout=30):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=timeout) as resp:
                return json.loads(resp.read() or b"{}").get("value")
        except urllib.error.HTTPError as err:
            detail = err.read().decode("utf-8", "replace")
            raise RuntimeError("WebDriver %s %s: %s %s" % (method, path, err.code, detail[:500]))

    def s(self, method, path, body=None, timeout=30):
        return self.call(method, "/session/%s%s" % (self.session, path), body, timeout)

    def run(self, msg):
        deadline = int(msg.get("deadline_ms") or 10000)
        self.s("POST", "/url", {"url": msg["page"]})
        self.s("DELETE", "/cookie")
        self.s("POST", "/execute/sync", {
            "script": self.runner_src + "\nwindow.cometRun = cometRun; return true;",
            "args": []})
        self.s("POST", "/timeouts", {"script": deadline + 5000})
        script = ("const done = arguments[arguments.length - 1];"
                  "window.cometRun(arguments[0], arguments[1]).then("
                  "  (obs) => done({ok: obs}),"
                  "  (err) => done({err: String(err && err.stack || err)}));")
        answer = self.s("POST", "/execute/async", {"script": script,
                                                    "args": [msg["client"], deadline]},
                        timeout=deadline / 1000.0 + 10)
        if not isinstance(answer, dict) or "ok" not in answer:
            raise RuntimeError("the in-page runner failed: %s" % (answer or {}).get("err"))
        return answer["ok"]

    def close(self):
        try:
            self.call("DELETE", "/session/%s" % self.session, timeout=5)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        for p in reversed(self.procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass


def main():
    browser = None
    runs = queue.Queue()

    def worker():
        while True:
            msg = runs.get()
            if msg is None:
                return
            try:
                obs = browser.run(msg)
                write({"id": msg["id"], "type": "result", "observations": obs})
            except Exception as err:  # noqa: BLE001 - the adapter's fault: an error answer
                log("run %s failed: %s" % (msg.get("scenario"), err))
                write({"id": msg["id"], "type": "error", "message": str(err)[:2000]})

    thread = threading.Thread(target=worker, daemon=True)
    for raw in sys.stdin:
        line = raw.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
        except ValueError as err:
            write({"id": None, "type": "error", "message": "not JSON: %s" % err})
            continue
        kind = msg.get("type")
        if kind == "start":
            try:
                browser = WebKit()
            except Exception as err:  # noqa: BLE001
                write({"id": msg.get("id"), "type": "error",
                       "message": "cannot start WebKit: %s" % err})
                return 1
            thread.start()
            write({"id": msg["id"], "type": "started", "protocol": 1, "name": NAME,
                   "version": browser.version,
                   "implementation": "WebKitGTK %s (%s) over WebKitWebDriver" % (
                       browser.version, browser.browser),
                   "capabilities": CAPABILITIES})
        elif kind == "run":
            client = msg.get("client")
            if not isinstance(client, dict) or len(client) != 1:
                write({"id": msg.get("id"), "type": "error",
                       "message": "the client part must have exactly one action key"})
                continue
            action = next(iter(client))
            if action not in CAPABILITIES:
                write({"id": msg["id"], "type": "unsupported", "reason": "no " + action})
            else:
                runs.put(msg)
        elif kind == "stop":
            runs.put(None)
            if browser:
                browser.close()
            write({"id": msg["id"], "type": "stopped"})
            return 0
        else:
            write({"id": msg.get("id"), "type": "error", "message": "unknown type %r" % kind})
    if browser:
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
