#!/usr/bin/python3
"""webdriver.py — the adapter for a browser behind any W3C WebDriver endpoint (a Selenium
Grid, a chromedriver, a WebKitWebDriver someone else runs), docs/adapters.md.

    /usr/bin/python3 drivers/adapters/webdriver.py --url URL --capabilities JSON [--name NAME]

    --url           the endpoint (http://127.0.0.1:4444 for `make grid`); default
                    $COMET_WEBDRIVER_URL
    --capabilities  the session's alwaysMatch capabilities, a JSON object, e.g.
                    '{"browserName": "chrome", "goog:chromeOptions": {"args": ["--headless=new"]}}';
                    default $COMET_WEBDRIVER_CAPABILITIES
    --name          the client name reported at start (default: the session's browserName)
    --session-timeout  seconds allowed for a session to be created (a grid queues the
                    request until a slot is free; default 60)

drivers/clients.yaml registers grid-chrome and grid-webkit this way. The adapter starts
nothing: it opens one session at start (reporting the remote browser's name and version,
and how long the session took to create) and runs every run in it exactly as webkit.py
does (wdclient.py: the shared in-page runner browser/runner.js, one run at a time, the
same deadlines and pageUnresponsive answer, a session lost or stuck replaced). The browser
must reach the harness, which listens on loopback: the endpoint's browsers run on this
machine.
"""
import argparse
import json
import os
import re
import sys

from pyproto import Adapter, serve
from wdclient import CAPABILITIES, Browser, BrowserRun, Endpoint, WebDriverError

DEFAULT_SESSION_TIMEOUT_S = 60


class Remote(Endpoint):
    """An endpoint someone else runs: nothing to start, nothing to restart."""

    def __init__(self, url, capabilities, session_timeout_s):
        super().__init__(url, capabilities)
        self.session_timeout_s = session_timeout_s
        self.label = "webdriver %s" % url
        try:
            self.status = self.call("GET", "/status", timeout=10)
        except WebDriverError:
            self.status = {}  # an endpoint without /status: the session will tell
        except OSError as err:
            raise RuntimeError("no WebDriver endpoint answers at %s (%s); `make grid` starts "
                               "the Selenium Grid of grid-chrome and grid-webkit"
                               % (self.base, getattr(err, "reason", err))) from None
        if not isinstance(self.status, dict):
            self.status = {}
        self.new_session()


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="webdriver.py", description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("COMET_WEBDRIVER_URL"))
    parser.add_argument("--capabilities", default=os.environ.get("COMET_WEBDRIVER_CAPABILITIES"))
    parser.add_argument("--name", default=None)
    parser.add_argument("--session-timeout", type=float, default=DEFAULT_SESSION_TIMEOUT_S)
    args = parser.parse_args(argv)
    if not args.url or not re.match(r"^https?://", args.url):
        parser.error("--url (or $COMET_WEBDRIVER_URL): the endpoint's http:// URL is needed")
    try:
        args.capabilities = json.loads(args.capabilities or "{}")
    except ValueError as err:
        parser.error("--capabilities is not JSON: %s" % err)
    if not isinstance(args.capabilities, dict):
        parser.error("--capabilities must be a JSON object")
    if args.name is not None and not re.match(r"^[a-z0-9.-]+$", args.name):
        parser.error("--name: lower case letters, digits, dots and dashes only")
    return args


def client_name(args, browser_name):
    if args.name:
        return args.name
    return re.sub(r"[^a-z0-9.-]+", "-", (browser_name or "webdriver").lower()).strip("-") or "webdriver"


def main():
    args = parse_args(sys.argv[1:])
    browser = Browser(lambda: Remote(args.url, args.capabilities, args.session_timeout))

    class RemoteRun(BrowserRun):
        what = "the remote browser"

    RemoteRun.browser = browser

    class RemoteAdapter(Adapter):
        has_page = True

        def started(self, msg):
            with browser.lock:
                remote = browser.get()
            status = remote.status
            caps = remote.session_caps
            return {
                "id": msg.get("id"), "type": "started", "protocol": 1,
                "name": client_name(args, remote.browser), "version": remote.version,
                "implementation": "%s %s over WebDriver at %s (%s)" % (
                    remote.browser, remote.version, remote.base,
                    status.get("message") or "an endpoint"),
                "capabilities": CAPABILITIES,
                "details": {"userAgent": remote.user_agent, "endpoint": remote.base,
                            "requested": args.capabilities,
                            "browserName": remote.browser,
                            "platformName": caps.get("platformName"),
                            "sessionSeconds": round(remote.session_s or 0.0, 3),
                            "endpointStatus": status.get("message")}}

    serve(RemoteAdapter(name=args.name or "webdriver", version="", implementation="",
                        capabilities=CAPABILITIES, run_class=RemoteRun, on_stop=browser.close))


if __name__ == "__main__":
    main()
