#!/usr/bin/python3
"""webkit.py — the adapter for WebKitGTK (docs/adapters.md), driven over WebDriver classic.

    /usr/bin/python3 drivers/adapters/webkit.py

Debian's webkit2gtk-driver gives /usr/bin/WebKitWebDriver, which drives WebKitGTK's
MiniBrowser (`--automation`). MiniBrowser needs an X display, so the adapter starts an
Xvfb of its own (`Xvfb -displayfd FD …`: Xvfb picks a free display number itself and tells
it on FD, so two adapters started at once never race for one), then WebKitWebDriver on a
free port (both through procs.py), then one WebDriver session, which lives as long as the
adapter. Session creation hangs silently without a working display, so it always has a
timeout (SESSION_TIMEOUT_S). Every process the adapter starts stays in its process group
(the driver kills the group when the adapter dies) and is killed, with its children, when
the adapter stops.

The runs are wdclient.py's, shared with webdriver.py (any WebDriver endpoint): the shared
in-page runner (browser/runner.js) through Execute Async Script, one run at a time, a page
that stops answering answered {"events": [], "deadline": true, "pageUnresponsive": true}
UNRESPONSIVE_S after the deadline and its session replaced (a new MiniBrowser; the whole
WebKitWebDriver if that fails) before the next run. Capabilities: xhr, fetch, eventsource,
websocket, jsonp, image.

TLS (docs/adapters.md, "TLS"; docs/tls.md): with COMET_TLS_CA=/path/ca.pem in the
environment, WebKit checks certificates against the system's CAs plus that one, by a real
chain check: WebKitWebDriver (so MiniBrowser and its network process) runs in a mount
namespace of its own where a bundle of both is bind-mounted over the system's bundle
(procs.start_webkit_driver). No TLS errors policy "ignore", no pinned certificate.
WebKit resolves *.localhost itself; the harness's insecure.test (mixed content) is put in
a private /etc/hosts in the same namespace.

The protocol loop is pyproto.py's.
"""
import os
import shutil
import sys
import tempfile

from procs import (WEBDRIVER, XVFB, kill_tree, private_hosts, start_webkit_driver, start_xvfb,
                   trust_bundle)
from pyproto import INSECURE_HOST, Adapter, log, serve, tls_ca
from wdclient import CAPABILITIES, Browser, BrowserRun, Endpoint

NAME = "webkit"
SESSION_TIMEOUT_S = 45   # POST /session (hangs without a display)
SESSION_CAPABILITIES = {"webkitgtk:browserOptions": {"args": ["--automation"]},
                        "pageLoadStrategy": "normal"}


class WebKit(Endpoint):
    """Xvfb + WebKitWebDriver + one WebDriver session."""

    label = NAME
    default_browser = "MiniBrowser"
    session_timeout_s = SESSION_TIMEOUT_S

    def __init__(self):
        super().__init__("", SESSION_CAPABILITIES)  # the base URL: once the driver listens
        self.xvfb = self.driver = None
        self.private_dir = self.bundle = self.hosts = None
        try:
            self.private_dir = tempfile.mkdtemp(prefix="comet-webkit-")
            if tls_ca():
                self.bundle = trust_bundle(tls_ca(), self.private_dir)
            if os.geteuid() == 0:  # a private mount namespace needs root
                self.hosts = private_hosts([INSECURE_HOST], self.private_dir)
            else:
                log("%s: not root: %s is not mapped (no private /etc/hosts)" % (NAME, INSECURE_HOST))
            self.xvfb, self.display = start_xvfb()
            self._start_driver()
            self.new_session()
        except BaseException:
            self.close()
            raise

    def _start_driver(self):
        self.driver, self.port = start_webkit_driver(self.display, ca_bundle=self.bundle,
                                                     hosts=self.hosts)
        self.base = "http://127.0.0.1:%d" % self.port

    def hang_hint(self):
        return "no working display?"

    def recover(self):
        log("%s: restarting WebKitWebDriver" % NAME)
        kill_tree(self.driver)
        self._start_driver()

    def alive(self):
        return self.driver is not None and self.driver.poll() is None

    def close(self):
        super().close()
        kill_tree(self.driver)
        kill_tree(self.xvfb)
        if self.private_dir:
            shutil.rmtree(self.private_dir, ignore_errors=True)


BROWSER = Browser(WebKit)


class WebKitRun(BrowserRun):
    browser = BROWSER
    what = "WebKit"


class WebKitAdapter(Adapter):
    has_page = True

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
