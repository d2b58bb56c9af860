"""wdclient.py — a browser behind a W3C WebDriver (classic) endpoint, running the shared
in-page runner: the part the WebDriver browser adapters share (webkit.py: a WebKitWebDriver
of its own; webdriver.py: any endpoint, a Selenium Grid say).

WebDriver is plain HTTP+JSON (urllib, no proxy). An Endpoint holds one session, which
lives as long as the adapter. Each run: the session loads the harness page (run.page),
deletes the cookies, evaluates the shared in-page runner (browser/runner.js, the very file
Chromium and Firefox run under puppeteer) and calls `cometRun(client, deadline)` through
Execute Async Script; its answer is the observations. The runner answers by the deadline
itself. If the page stops answering (a synchronous XHR to a server that never replies
blocks its only thread), the adapter gives up UNRESPONSIVE_S after the deadline, answers
{"events": [], "deadline": true, "pageUnresponsive": true} and replaces the session
before the next run (Endpoint.recover() may do more: webkit.py restarts its driver). A
session the endpoint dropped meanwhile ("invalid session id": a grid ends a session idle
for too long) is replaced before the run starts.

Runs are carried out one at a time, in arrival order (one session, one page): runs sent
together are answered one after the other, each within its own deadline counted from the
moment it starts. The driver sends one run at a time to an adapter, so this costs nothing.
"""
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request

from pyproto import Run, deadline_ms, log

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, "browser", "runner.js")
CAPABILITIES = ["xhr", "fetch", "eventsource", "websocket", "jsonp", "image", "steps"]
UNRESPONSIVE_S = 3.0     # after the deadline: the page is unresponsive
NAVIGATE_TIMEOUT_S = 15
DELETE_TIMEOUT_S = 5
LINGER_DELETE_S = 120    # how long a stuck session is still asked to close, in the background
STOPPED = {"type": "error", "message": "the adapter was stopped before the run finished"}
RUN_SCRIPT = ("const done = arguments[arguments.length - 1];"
              "window.cometRun(arguments[0], arguments[1]).then("
              "  (obs) => done({ok: obs}),"
              "  (err) => done({err: String(err && err.stack || err)}));")


class PageUnresponsive(Exception):
    pass


class WebDriverError(RuntimeError):
    """An error answer of the endpoint: status (HTTP), error (the W3C error code)."""

    def __init__(self, text, status=None, error=None):
        super().__init__(text)
        self.status = status
        self.error = error


class Endpoint:
    """A WebDriver endpoint (base URL) and the one session of the adapter in it."""

    label = "webdriver"    # for logs
    default_browser = "?"  # when the session does not name its browser
    session_timeout_s = 45  # POST /session (may hang: no display, a full grid queue)

    def __init__(self, base, capabilities):
        self.base = base.rstrip("/")
        self.capabilities = capabilities
        self.session = None
        self.session_s = None  # how long the last session creation took
        with open(RUNNER, encoding="utf-8") as f:
            self.runner_src = f.read()
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # -- WebDriver

    def call(self, method, path, body=None, timeout=30):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json; charset=utf-8"})
        try:
            with self.opener.open(req, timeout=timeout) as resp:
                return json.loads(resp.read() or b"{}").get("value")
        except urllib.error.HTTPError as err:
            detail = err.read().decode("utf-8", "replace")
            try:
                code = (json.loads(detail).get("value") or {}).get("error")
            except (ValueError, AttributeError):
                code = None
            raise WebDriverError("WebDriver %s %s: %s %s" % (method, path, err.code, detail[:500]),
                                 err.code, code) from None

    def s(self, method, path, body=None, timeout=30):
        return self.call(method, "/session/%s%s" % (self.session, path), body, timeout)

    def new_session(self):
        caps = {"capabilities": {"alwaysMatch": self.capabilities}}
        t0 = time.monotonic()
        try:
            answer = self.call("POST", "/session", caps, timeout=self.session_timeout_s)
        except (socket.timeout, TimeoutError):
            raise RuntimeError("WebDriver session creation timed out after %d s (%s)"
                               % (self.session_timeout_s, self.hang_hint())) from None
        self.session_s = time.monotonic() - t0
        self.session = answer["sessionId"]
        caps = answer.get("capabilities") or {}
        self.session_caps = caps
        self.version = caps.get("browserVersion") or "?"
        self.browser = caps.get("browserName") or self.default_browser
        self.s("POST", "/timeouts", {"pageLoad": NAVIGATE_TIMEOUT_S * 1000})
        self.user_agent = self.s("POST", "/execute/sync",
                                 {"script": "return navigator.userAgent", "args": []})

    def hang_hint(self):
        return "is the endpoint's queue full?"

    def drop_session(self):
        """Close the session. One that does not close within DELETE_TIMEOUT_S (its page is
        stuck: Chromium closes it only once the page's thread is free again) is asked once
        more in the background, for up to LINGER_DELETE_S, so that it frees its slot."""
        old, self.session = self.session, None
        if old is None:
            return
        try:
            self.call("DELETE", "/session/%s" % old, timeout=DELETE_TIMEOUT_S)
            return
        except Exception as err:  # noqa: BLE001 - replaced anyway
            log("%s: closing the stuck session: %s" % (self.label, err))

        def linger():
            try:
                self.call("DELETE", "/session/%s" % old, timeout=LINGER_DELETE_S)
            except Exception:  # noqa: BLE001 - gone already, or the endpoint ends it later
                pass
        threading.Thread(target=linger, daemon=True).start()

    def recover(self):
        """After a failed session creation, before the second try (webkit.py: a new
        WebKitWebDriver)."""

    def reset_session(self):
        """A new session (after an unresponsive page); recover() and a second try if that
        fails."""
        self.drop_session()
        try:
            self.new_session()
            return
        except Exception as err:  # noqa: BLE001
            log("%s: a new session failed (%s): recovering" % (self.label, err))
        self.recover()
        self.new_session()

    def navigate(self, url):
        try:
            self.s("POST", "/url", {"url": url}, timeout=NAVIGATE_TIMEOUT_S + 5)
        except WebDriverError as err:
            if err.error != "invalid session id":
                raise
            log("%s: the endpoint dropped the session: a new one" % self.label)
            self.session = None
            self.new_session()
            self.s("POST", "/url", {"url": url}, timeout=NAVIGATE_TIMEOUT_S + 5)

    def run(self, msg):
        deadline = int(deadline_ms(msg))
        self.navigate(msg["page"])
        self.s("DELETE", "/cookie")
        self.s("POST", "/execute/sync", {
            "script": self.runner_src + "\nwindow.cometRun = cometRun; return true;", "args": []})
        self.s("POST", "/timeouts", {"script": deadline + int(UNRESPONSIVE_S * 1000) + 2000})
        try:
            answer = self.s("POST", "/execute/async",
                            {"script": RUN_SCRIPT, "args": [msg["client"], deadline]},
                            timeout=deadline / 1000.0 + UNRESPONSIVE_S)
        except (socket.timeout, TimeoutError):
            raise PageUnresponsive() from None
        except WebDriverError as err:
            if err.error == "script timeout" or "script timeout" in str(err):
                raise PageUnresponsive() from None
            raise
        if not isinstance(answer, dict) or "ok" not in answer:
            raise RuntimeError("the in-page runner failed: %s" % (answer or {}).get("err"))
        return answer["ok"]

    def alive(self):
        """Whether the endpoint can still be asked to close the session."""
        return True

    def close(self):
        if self.session and self.alive():
            try:
                self.call("DELETE", "/session/%s" % self.session, timeout=DELETE_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        self.session = None


class Browser:
    """The one Endpoint of an adapter: made on first need by factory(), one run at a time."""

    def __init__(self, factory):
        self.factory = factory
        self.lock = threading.Lock()
        self.endpoint = None
        self.closed = False
        self.needs_reset = False

    def get(self):
        """The ready Endpoint (the caller holds the lock)."""
        if self.closed:
            raise RuntimeError("the adapter is stopping")
        if self.endpoint is None:
            self.endpoint = self.factory()
        elif self.needs_reset:
            self.endpoint.reset_session()
        self.needs_reset = False
        return self.endpoint

    def close(self):
        self.closed = True
        endpoint, self.endpoint = self.endpoint, None
        if endpoint is not None:
            endpoint.close()


class BrowserRun(Run):
    """A run in the adapter's Browser (the class attribute `browser`, set by a subclass)."""

    browser = None
    what = "the browser"   # in "… did not answer the run"
    runs_scripts = True    # the in-page runner carries out client scripts (runner.js)

    def answer(self):
        browser = self.browser
        # One run at a time; a stop ends the wait.
        while not browser.lock.acquire(timeout=0.1):
            if self.stopped:
                return dict(STOPPED)
        try:
            if self.stopped:
                return dict(STOPPED)
            self.result = None
            worker = threading.Thread(target=self.work, name="run-%s" % self.id, daemon=True)
            worker.start()
            # The page answers by the deadline; the WebDriver call itself times out
            # UNRESPONSIVE_S later. The margin covers starting the browser and the page load.
            finished = self.done.wait(self.deadline_s + UNRESPONSIVE_S + NAVIGATE_TIMEOUT_S + 20)
            if self.stopped:
                return dict(STOPPED)
            if not finished:
                self.cancel()
                self.failure = RuntimeError("%s did not answer the run" % self.what)
            if isinstance(self.failure, PageUnresponsive):
                browser.needs_reset = True
                return {"type": "result", "observations": {
                    "events": [], "deadline": True, "pageUnresponsive": True}}
            if self.failure is not None:
                browser.needs_reset = True  # start the next run from a fresh session
                err = self.failure
                return {"type": "error", "message": "%s: %s" % (type(err).__name__, err)}
            return {"type": "result", "observations": self.result}
        finally:
            browser.lock.release()

    def execute(self):
        self.result = self.browser.get().run(self.msg)
