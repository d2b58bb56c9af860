"""The adapter protocol loop and a small real HTTP client, shared by the fake adapters.

A fake adapter is a real adapter process (newline-delimited JSON on stdin/stdout, see
docs/adapters.md) whose client is http.client: it makes the request the run asks for
against the harness and reports `http` observations (events response / chunk / done /
error, status, statusText, headers, responseText), so the journal and the grading are
real. Each fake changes one thing: how the client behaves (wrong.py) or how the adapter
misbehaves on one scenario (crashing.py, hanging.py, babbling.py).
"""
import http.client
import json
import os
import socket
import sys
import time
import urllib.parse

_out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
sys.stdout = sys.stderr


def write(msg):
    _out.write(json.dumps(msg) + "\n")
    _out.flush()


def write_raw(text):
    _out.write(text + "\n")
    _out.flush()


def headers_of(h):
    if isinstance(h, dict):
        return list(h.items())
    out = []
    for item in h or []:
        out += list(item.items())
    return out


def http_run(client, drop_headers=False, ignore_timeout=False):
    """Carry out client.http with http.client; the observations."""
    c = client["http"]
    url = urllib.parse.urlsplit(c["url"])
    events, obs = [], {"events": []}
    t0 = time.monotonic()

    def event(kind, **fields):
        events.append(dict(type=kind, t=round((time.monotonic() - t0) * 1000, 3), **fields))

    timeout = None if ignore_timeout or c.get("timeout") is None else c["timeout"] / 1000.0
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    target = url.path + ("?" + url.query if url.query else "")
    headers = {} if drop_headers else dict(headers_of(c.get("headers")))
    try:
        conn.request(c.get("method", "GET"), target, body=c.get("body"), headers=headers)
        resp = conn.getresponse()
        event("response", status=resp.status)
        body = resp.read()
        if body:
            event("chunk", length=len(body), text=body.decode("utf-8", "replace"))
        event("done")
        obs.update(status=resp.status, statusText=resp.reason,
                   headers={k.lower(): v for k, v in resp.getheaders()},
                   responseURL=c["url"], responseText=body.decode("utf-8", "replace"))
    except socket.timeout as err:
        event("error", name="ReadTimeout", message=str(err))
    except OSError as err:
        event("error", name="ConnectionError", message=str(err))
    finally:
        conn.close()
    obs["events"] = events
    return obs


def serve(name, run, capabilities=("http",), version="1.0"):
    """The protocol loop: run(msg) returns the answer's fields (or None to answer nothing)."""
    print("%s: ready" % name)  # goes to stderr: stdout is the protocol's
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
            write({"id": msg["id"], "type": "started", "protocol": 1, "name": name,
                   "version": version, "implementation": "fake http.client on Python",
                   "capabilities": list(capabilities)})
        elif kind == "stop":
            write({"id": msg["id"], "type": "stopped"})
            return 0
        elif kind == "run":
            action = next(iter(msg["client"]))
            if action not in capabilities:
                write({"id": msg["id"], "type": "unsupported", "reason": "no " + action})
                continue
            print("%s: run %s %s" % (name, msg["scenario"], msg["client"][action].get("url")))
            answer = run(msg)
            if answer is not None:
                write(dict(answer, id=msg["id"]))
        else:
            write({"id": msg.get("id"), "type": "error", "message": "unknown type %r" % kind})
    return 0


def conforming(msg):
    return {"type": "result", "observations": http_run(msg["client"])}


def on_scenario(argv):
    """The scenario id given as --on ID (the one a misbehaving fake misbehaves on)."""
    return argv[argv.index("--on") + 1] if "--on" in argv else None
