#!/usr/bin/python3
"""A stand-in for the `harness` binary, for developing the plugin before the server exists.

    HARNESS_BIN=drivers/tests/fakes/fake_harness.py /usr/bin/python3 -m pytest drivers/tests

It implements only what the plugin uses, and only roughly: `check --json` (YAML syntax,
required keys), `serve --port 0` with the ready line and the control API on a port of its
own with a token (instances, journal, wait, delete, version; the page on the other ports), routes matched on method and exact path, one or a
sequence of responses (status, headers, body, delay) and a few placeholders. The tests
use the real binary by default; this file is never what a verdict rests on.
"""
import json
import os
import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

TOP = {"id", "title", "spec", "tags", "description", "server", "client", "expect"}


def find(paths):
    out = []
    for p in paths:
        if os.path.isdir(p):
            for d, _, files in os.walk(p):
                out += [os.path.join(d, f) for f in files if f.endswith((".yaml", ".yml"))]
        else:
            out.append(p)
    return sorted(out)


def load(path):
    """(scenario, errors) of one file."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as err:
        return None, [{"file": path, "line": 0, "col": 0, "message": str(err)}]
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        return None, [{"file": path, "line": mark.line + 1 if mark else 0,
                       "col": mark.column + 1 if mark else 0,
                       "message": "YAML: %s" % getattr(err, "problem", err)}]
    errors = []
    if not isinstance(doc, dict):
        return None, [{"file": path, "line": 1, "col": 1, "message": "expected a mapping"}]
    for key in sorted(set(doc) - TOP):
        errors.append({"file": path, "line": 1, "col": 1, "message": "unknown key '%s'" % key})
    for key in ("id", "client"):
        if key not in doc:
            errors.append({"file": path, "line": 1, "col": 1, "message": "missing '%s'" % key})
    if errors:
        return None, errors
    doc = dict(doc, file=os.path.abspath(path))
    doc.setdefault("tags", [])
    doc.setdefault("server", {"routes": []})
    doc.setdefault("expect", {})
    return doc, []


def cmd_check(args):
    paths = [a for a in args if a != "--json"]
    scenarios, errors = [], []
    for p in find(paths):
        s, e = load(p)
        if s:
            scenarios.append(s)
        errors += e
    print(json.dumps({"scenarios": scenarios, "errors": errors}))
    return 1 if errors else 0


def ms(v):
    if isinstance(v, str):
        m = re.match(r"^([0-9.]+)\s*(ms|s)?$", v.strip())
        return float(m.group(1)) * (1000 if m.group(2) == "s" else 1)
    return float(v or 0)


def headers_of(h):
    if isinstance(h, dict):
        return list(h.items())
    out = []
    for item in h or []:
        out += list(item.items())
    return out


class State:
    def __init__(self):
        self.lock = threading.Condition()
        self.instances = {}
        self.origins = {}
        self.seq = 0
        self.control_server = None
        self.token = None


STATE = State()


def expand(text, inst, req):
    def sub(m):
        key = m.group(1)
        if key.startswith("origin."):
            return STATE.origins[key[7:]]
        if key == "base":
            return "/s/" + inst["id"]
        if key == "instance":
            return inst["id"]
        if key == "request.method":
            return req["method"]
        if key == "request.path":
            return req["path"]
        if key == "request.body":
            return req["body"]
        if key == "request.count":
            return str(req["count"])
        if key.startswith("request.header."):
            name = key[15:].lower()
            return ", ".join(v for n, v in req["headers"] if n.lower() == name)
        if key.startswith("request.query."):
            return (req["query"].get(key[14:]) or [""])[0]
        return m.group(0)
    return re.sub(r"\{\{\s*([a-zA-Z0-9_.-]+)\s*\}\}", sub, str(text))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _send(self, status, body=b"", ctype="application/json", headers=()):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        names = {n.lower() for n, _ in headers}
        for n, v in headers:
            self.send_header(n, v)
        if "content-type" not in names and ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def handle_any(self):
        url = urllib.parse.urlsplit(self.path)
        body = self._body()
        if self.server is STATE.control_server:
            if self.headers.get("X-Harness-Token") != STATE.token:
                return self._send(401, {"error": "the control API needs the token"})
            return self.control(url, body)
        if url.path == "/_harness/page":
            return self._send(200, "<!DOCTYPE html><title>harness</title>", "text/html")
        m = re.match(r"^/s/([^/]+)(/.*)?$", url.path)
        inst = STATE.instances.get(m.group(1)) if m else None
        if not inst:
            return self._send(404, "no such instance", "text/plain")
        return self.serve(inst, m.group(2) or "/", url, body)

    do_GET = do_POST = do_PUT = do_DELETE = do_OPTIONS = do_HEAD = do_PATCH = handle_any

    def control(self, url, body):
        parts = url.path.split("/")[2:]
        q = urllib.parse.parse_qs(url.query)
        if parts == ["version"]:
            return self._send(200, {"version": "fake-0"})
        if parts == ["instances"] and self.command == "POST":
            req = json.loads(body or b"{}")
            s, errors = load(req["file"])
            if not s:
                return self._send(400, {"errors": errors})
            with STATE.lock:
                iid = req.get("id") or "i%d" % (len(STATE.instances) + 1)
                if iid in STATE.instances:
                    return self._send(409, {"error": "id in use"})
                STATE.instances[iid] = {"id": iid, "scenario": s, "journal": [], "counts": {},
                                       "t0": time.monotonic()}
            base = "/s/" + iid
            return self._send(201, {"instance": iid, "scenario": s["id"], "base": base,
                                    "urls": {k: v + base for k, v in STATE.origins.items()},
                                    "client": s.get("client"), "expect": s.get("expect")})
        if len(parts) >= 2 and parts[0] == "instances":
            inst = STATE.instances.get(parts[1])
            if not inst:
                return self._send(404, {"error": "no such instance"})
            if len(parts) == 2 and self.command == "DELETE":
                STATE.instances.pop(parts[1], None)
                return self._send(204, b"")
            if parts[2:] == ["journal"]:
                with STATE.lock:
                    entries = list(inst["journal"])
                return self._send(200, {"total": len(entries), "dropped": 0, "entries": entries})
            if parts[2:] == ["wait"]:
                count = int(q.get("count", ["1"])[0])
                route = q.get("route", [None])[0]
                end = time.monotonic() + int(q.get("timeout", ["1000"])[0]) / 1000
                with STATE.lock:
                    while True:
                        n = sum(1 for e in inst["journal"] if route is None or e["route"] == route)
                        if n >= count or time.monotonic() >= end:
                            break
                        STATE.lock.wait(max(0.01, end - time.monotonic()))
                return self._send(200 if n >= count else 408, {"count": n})
        return self._send(404, {"error": "unknown control path"})

    def serve(self, inst, path, url, body):
        s = inst["scenario"]
        headers = [[n, v] for n, v in self.headers.items()]
        req = {"method": self.command, "path": path, "headers": headers,
               "body": body.decode("utf-8", "replace"),
               "query": urllib.parse.parse_qs(url.query)}
        route = None
        for n, r in enumerate((s.get("server") or {}).get("routes") or []):
            match = r.get("match") or {}
            methods = match.get("method")
            if methods and self.command not in ([methods] if isinstance(methods, str) else methods):
                continue
            if "path" in match and match["path"] != path:
                continue
            route = dict(r, name=r.get("name") or "route-%d" % (n + 1))
            break
        with STATE.lock:
            STATE.seq += 1
            seq = STATE.seq
            if route:
                inst["counts"][route["name"]] = inst["counts"].get(route["name"], 0) + 1
                req["count"] = inst["counts"][route["name"]]
        entry = {"seq": seq, "port": self.server.server_address[1], "method": self.command,
                 "target": self.path, "path": path, "headers": headers,
                 "body": body.decode("utf-8", "replace"), "arrived": round((time.monotonic() - inst["t0"]) * 1000, 3),
                 "route": route["name"] if route else None}
        if not route:
            entry.update(status=404, response_index=None)
            self._journal(inst, entry)
            return self._send(404, "no route in instance %s" % inst["id"], "text/plain")
        responses = route.get("responses") or [route.get("response") or {}]
        idx = min(req["count"] - 1, len(responses) - 1)
        resp = responses[idx]
        entry.update(status=resp.get("status", 200), response_index=idx)
        self._journal(inst, entry)
        if resp.get("delay"):
            time.sleep(ms(resp["delay"]) / 1000)
        hs = [(n, expand(v, inst, req)) for n, v in headers_of(resp.get("headers"))]
        self._send(resp.get("status", 200), expand(resp.get("body", ""), inst, req), None, hs)

    def _journal(self, inst, entry):
        with STATE.lock:
            inst["journal"].append(entry)
            STATE.lock.notify_all()


def cmd_serve(args):
    import secrets
    main = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    cross = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    control = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    main.daemon_threads = cross.daemon_threads = control.daemon_threads = True
    p, q = main.server_address[1], cross.server_address[1]
    STATE.origins = {"main": "http://127.0.0.1:%d" % p, "cross": "http://127.0.0.1:%d" % q,
                     "alt": "http://localhost:%d" % p}
    STATE.control_server = control
    STATE.token = secrets.token_hex(32)
    for srv in (main, cross, control):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    print(json.dumps(dict(event="ready", pid=os.getpid(), token=STATE.token,
                          control="http://127.0.0.1:%d" % control.server_address[1],
                          **STATE.origins)), flush=True)
    import signal
    signal.sigwait([signal.SIGTERM, signal.SIGINT])
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(2)
    if sys.argv[1] == "check":
        sys.exit(cmd_check(sys.argv[2:]))
    if sys.argv[1] == "serve":
        import signal
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM, signal.SIGINT])
        sys.exit(cmd_serve(sys.argv[2:]))
    sys.exit(2)
