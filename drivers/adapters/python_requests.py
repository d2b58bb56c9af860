#!/usr/bin/python3
"""python_requests.py — the adapter for Python `requests` (docs/adapters.md). Capability: http.

    /usr/bin/python3 drivers/adapters/python_requests.py

Uses Debian's python3-requests (and its urllib3); run it with /usr/bin/python3, whose
dist-packages hold them. Standard library otherwise.

Each run makes one request with a fresh requests.Session, the way an application would:

    session.request(method, url, headers=..., data=..., timeout=..., stream=True,
                    allow_redirects=...)

(with session.trust_env off: the harness is on loopback, and a proxy from the environment
must not come between them; the browsers are launched without proxies too.)

and then reads the body — with response.iter_content(chunk_size) when client.http.stream
is true, reporting every chunk the library yields as a "chunk" event, or with
response.content otherwise. `stream=True` is always passed so that the "response" event
marks the moment the headers arrived; response.content then reads the body exactly as
requests does for stream=False. chunk_size is client.http.chunk_size, default None (which
requests documents as "as the data arrives"; for a body that is not chunked, urllib3 then
reads it to its end in one go — a property of the library the scenarios may observe).

A requests exception (requests.exceptions.RequestException: ConnectTimeout, ReadTimeout,
ConnectionError, ChunkedEncodingError, TooManyRedirects…) is the client's failure and is
recorded as an "error" event {name, message}; any other exception raised by the library
call (a ValueError for a bad header, say) is recorded as "exception". Only a failure of the
adapter's own code is answered as an "error" message.

Runs go on concurrently, each in its own thread. A run never outlives its deadline: the run
answers what it saw plus {"deadline": true} and the sockets its request opened are shut
down, which unblocks the library. To find those sockets, urllib3's
HTTPConnection._new_conn is wrapped to note each new socket for the run whose thread made
it; nothing else about the library is changed.

stdout carries only protocol messages: the adapter keeps a private handle on the original
stdout and points sys.stdout at stderr, so a stray print() cannot corrupt the stream.
"""
import base64
import codecs
import json
import os
import platform
import socket
import sys
import threading
import time
import traceback

import requests
import urllib3
import urllib3.connection

PROTOCOL_VERSION = 1
NAME = "python-requests"
CAPABILITIES = ["http"]
STOP_GRACE_S = 3.0

# --------------------------------------------------------------------- protocol output

_out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
sys.stdout = sys.stderr
_out_lock = threading.Lock()


def write(msg):
    line = json.dumps(msg, ensure_ascii=False, allow_nan=False)
    with _out_lock:
        try:
            _out.write(line + "\n")
            _out.flush()
        except (BrokenPipeError, ValueError):
            pass  # the driver went away


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# ------------------------------------------------------------- sockets of each run

_current = threading.local()  # .run: the Run whose request this thread makes
_orig_new_conn = urllib3.connection.HTTPConnection._new_conn


def _tracking_new_conn(self):
    sock = _orig_new_conn(self)
    run = getattr(_current, "run", None)
    if run is not None:
        run.sockets.append(sock)
    return sock


urllib3.connection.HTTPConnection._new_conn = _tracking_new_conn


# --------------------------------------------------------------------------- a run

def header_dict(headers):
    """Scenario headers (a mapping, or a list of one-entry mappings) → a dict; a name
    given twice is sent once, its values joined with ", " (requests takes a dict)."""
    out = {}
    if not headers:
        return out
    entries = headers if isinstance(headers, list) else [headers]
    for entry in entries:
        pairs = [entry] if isinstance(entry, list) else list(entry.items())
        for name, value in pairs:
            name, value = str(name), str(value)
            key = next((k for k in out if k.lower() == name.lower()), None)
            if key is None:
                out[name] = value
            else:
                out[key] = out[key] + ", " + value
    return out


class Run:
    """One run: the request in a worker thread, the observations, the deadline."""

    def __init__(self, msg):
        self.msg = msg
        self.id = msg.get("id")
        self.spec = msg["client"]["http"] or {}
        self.deadline_s = deadline_ms(msg) / 1000.0
        self.obs = {"events": []}
        self.lock = threading.Lock()
        self.frozen = False  # the deadline hit (or stop): nothing more is recorded
        self.stopped = False  # the adapter is stopping: the run is answered as an error
        self.sockets = []
        self.done = threading.Event()
        self.failure = None  # an exception of the adapter's own code
        self.t0 = None

    # -- recording (from the worker thread)

    def now(self):
        return round((time.monotonic() - self.t0) * 1000.0, 3)

    def event(self, type_, **fields):
        with self.lock:
            if not self.frozen:
                self.obs["events"].append(dict({"type": type_, "t": self.now()}, **fields))

    def set(self, **fields):
        with self.lock:
            if not self.frozen:
                self.obs.update(fields)

    # -- running

    def answer(self):
        """Runs the request and returns the answer message (without the id)."""
        worker = threading.Thread(target=self.work, name="run-%s" % self.id, daemon=True)
        worker.start()
        finished = self.done.wait(self.deadline_s)
        if not finished:
            with self.lock:
                self.frozen = True
                self.obs["deadline"] = True
            self.cancel()
        if self.stopped:
            return {"type": "error", "message": "the adapter was stopped before the run finished"}
        if self.failure is not None:
            err = self.failure
            return {"type": "error", "message": "%s: %s" % (type(err).__name__, err),
                    "stack": "".join(traceback.format_exception(err))}
        with self.lock:
            return {"type": "result", "observations": json.loads(json.dumps(self.obs))}

    def abandon(self):
        """The adapter is stopping: record nothing more, unblock the worker, answer error."""
        with self.lock:
            self.frozen = True
            self.stopped = True
        self.cancel()
        self.done.set()

    def cancel(self):
        """Shut down the run's sockets so the worker's blocking call returns."""
        for sock in list(self.sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def work(self):
        _current.run = self
        try:
            self.request()
        except BaseException as err:  # the adapter's own code failed
            self.failure = err
        finally:
            _current.run = None
            self.done.set()

    def request(self):
        s = self.spec
        kwargs = {"headers": header_dict(s.get("headers")), "stream": True}
        if s.get("form") is not None:
            # multipart/form-data, as FormData would send it
            kwargs["files"] = {str(k): (None, str(v)) for k, v in s["form"].items()}
        elif s.get("body_base64") is not None:
            kwargs["data"] = base64.b64decode(s["body_base64"])
        elif s.get("body") is not None:
            kwargs["data"] = s["body"]
        if s.get("timeout") is not None:
            kwargs["timeout"] = duration_ms(s["timeout"]) / 1000.0
        if s.get("redirect") == "manual":
            kwargs["allow_redirects"] = False
        method = s.get("method") or "GET"
        stream = bool(s.get("stream"))
        chunk_size = s.get("chunk_size")

        session = requests.Session()
        # The harness is on loopback: no proxy from the environment (nor .netrc).
        session.trust_env = False
        response = None
        self.t0 = time.monotonic()
        try:
            try:
                response = session.request(method, s["url"], **kwargs)
            except requests.exceptions.RequestException as err:
                self.event("error", name=type(err).__name__, message=str(err))
                return
            except Exception as err:  # the library refused the call
                self.set(exception={"name": type(err).__name__, "message": str(err)})
                return
            self.event("response", status=response.status_code)
            self.set(status=response.status_code,
                     statusText=response.reason if response.reason is not None else "",
                     headers=lower_headers(response.headers),
                     responseURL=response.url)
            try:
                if stream:
                    self.read_stream(response, chunk_size)
                else:
                    response.content  # reads the body as requests does for stream=False
                    self.set(responseText=response.text)
            except requests.exceptions.RequestException as err:
                self.event("error", name=type(err).__name__, message=str(err))
                return
            except Exception as err:
                self.set(exception={"name": type(err).__name__, "message": str(err)})
                return
            self.event("done")
        finally:
            if response is not None:
                response.close()
            session.close()

    def read_stream(self, response, chunk_size):
        encoding = response.encoding or "utf-8"
        try:
            decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        except LookupError:
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces = []
        try:
            for chunk in response.iter_content(chunk_size=chunk_size):
                if not chunk:
                    continue
                pieces.append(chunk)
                self.event("chunk", length=len(chunk), text=decoder.decode(chunk))
        finally:
            # responseText as response.text gives it, from what was read so far.
            response._content = b"".join(pieces)
            response._content_consumed = True
            self.set(responseText=response.text)


def lower_headers(headers):
    # urllib3 already joined repeated fields with ", "
    out = {}
    for name, value in headers.items():
        key = name.lower()
        out[key] = out[key] + ", " + value if key in out else value
    return out


def duration_ms(v):
    """A duration in ms: a number, or "500", "500ms", "1.5s" as the scenario format writes
    them (the driver sends numbers; strings are accepted too)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    text = str(v).strip()
    if text.endswith("ms"):
        return float(text[:-2])
    if text.endswith("s"):
        return float(text[:-1]) * 1000.0
    return float(text)


def deadline_ms(msg):
    d = msg.get("deadline_ms")
    if isinstance(d, (int, float)) and not isinstance(d, bool) and d > 0:
        return d
    action = next(iter((msg.get("client") or {}).values()), None) or {}
    d = action.get("deadline") if isinstance(action, dict) else None
    if isinstance(d, (int, float)) and not isinstance(d, bool) and d > 0:
        return d
    return 10000


# ------------------------------------------------------------------------ the loop

class Adapter:
    def __init__(self):
        self.inflight = {}  # id → Run
        self.answered = set()
        self.lock = threading.Lock()
        self.stopping = False

    def started(self, msg):
        return {
            "id": msg.get("id"), "type": "started", "protocol": PROTOCOL_VERSION,
            "name": NAME, "version": requests.__version__,
            "implementation": "requests %s (urllib3 %s) on %s %s" % (
                requests.__version__, urllib3.__version__,
                platform.python_implementation(), platform.python_version()),
            "capabilities": CAPABILITIES,
            "details": {"python": sys.executable, "urllib3": urllib3.__version__},
        }

    def start_run(self, msg):
        rid = msg.get("id")
        client = msg.get("client")
        if not isinstance(client, dict) or len(client) != 1:
            write({"id": rid, "type": "error",
                   "message": "run.client must be an object with exactly one action key"})
            return
        action = next(iter(client))
        if action not in CAPABILITIES:
            write({"id": rid, "type": "unsupported",
                   "reason": '%s has no "%s" capability' % (NAME, action)})
            return
        spec = client[action]
        if not isinstance(spec, dict) or not isinstance(spec.get("url"), str):
            write({"id": rid, "type": "error", "message": "client.http.url must be a string"})
            return
        if spec.get("redirect") == "error":
            write({"id": rid, "type": "unsupported",
                   "reason": "requests cannot treat a redirect as an error (redirect: error)"})
            return
        run = Run(msg)
        with self.lock:
            self.inflight[rid] = run
        threading.Thread(target=self.finish_run, args=(run,), name="answer-%s" % rid,
                         daemon=True).start()

    def finish_run(self, run):
        try:
            answer = run.answer()
        except Exception as err:
            answer = {"type": "error", "message": "%s: %s" % (type(err).__name__, err),
                      "stack": traceback.format_exc()}
        with self.lock:
            if self.inflight.pop(run.id, None) is None:
                return  # already answered by stop
        write(dict({"id": run.id}, **answer))

    def stop(self, rid):
        with self.lock:
            self.stopping = True
            runs = list(self.inflight.values())
        for run in runs:
            run.abandon()
        end = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < end:
            with self.lock:
                if not self.inflight:
                    break
            time.sleep(0.02)
        with self.lock:
            left = list(self.inflight)
            self.inflight.clear()
        for run_id in left:
            write({"id": run_id, "type": "error",
                   "message": "the adapter was stopped before the run finished"})
        return left

    def handle(self, msg):
        rid = msg.get("id")
        kind = msg.get("type")
        if kind == "start":
            write(self.started(msg))
        elif kind == "run":
            if self.stopping:
                write({"id": rid, "type": "error", "message": "the adapter is stopping"})
            else:
                self.start_run(msg)
        elif kind == "stop":
            self.stop(rid)
            write({"id": rid, "type": "stopped"})
            return False
        else:
            write({"id": rid, "type": "error", "message": "unknown message type %r" % (kind,)})
        return True

    def serve(self):
        for raw in sys.stdin.buffer:
            line = raw.decode("utf-8", errors="replace").strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError as err:
                write({"id": None, "type": "error", "message": "not a JSON line: %s" % err})
                continue
            if not isinstance(msg, dict):
                write({"id": None, "type": "error", "message": "a message must be a JSON object"})
                continue
            try:
                if not self.handle(msg):
                    return
            except Exception as err:
                write({"id": msg.get("id"), "type": "error",
                       "message": "%s: %s" % (type(err).__name__, err),
                       "stack": traceback.format_exc()})
        # end of stdin: stop quietly
        self.stop(None)


def main():
    try:
        Adapter().serve()
    except KeyboardInterrupt:
        pass
    try:
        _out.flush()
    except (BrokenPipeError, ValueError):
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
