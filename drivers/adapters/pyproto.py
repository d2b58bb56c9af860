"""pyproto.py — the adapter side of the adapter protocol (docs/adapters.md), for the
adapters written in Python (python_requests.py, python_httpx.py, python_aiohttp.py,
python_websocket_client.py, python_websockets.py, curl.py).

    from pyproto import Adapter, Run, serve

    class MyRun(Run):
        def execute(self):          # in the run's own thread; record with event()/set()
            ...

    serve(Adapter(name=..., version=..., implementation=..., capabilities=["http"],
                  run_class=MyRun, lacks=lambda action, spec: None))

What it does, so that each adapter only has to make its library do one action:

- stdout carries only protocol messages: a private handle on the original stdout is kept
  and sys.stdout is pointed at stderr, so that a stray print() cannot corrupt the stream.
- The loop reads newline-delimited JSON from stdin; a bad line or an unknown message type
  is answered with an error and the loop goes on. `start` is answered `started`; each
  `run` is checked (exactly one action key, a declared capability, a string `url`, and
  the adapter's `lacks(action, spec)` which names a missing sub-feature: `unsupported`)
  and then carried out by a Run in a thread of its own, concurrently with the others;
  `stop` abandons the runs in flight (answered `error`), answers `stopped` and exits 0;
  end of stdin does the same quietly.
- Deadlines: Run.answer() waits for the run until deadline_ms; when it passes, nothing
  more is recorded, the observations so far are answered with "deadline": true, and the
  run is cancelled: every socket the run's thread connected is shut down (the connect()
  of socket.socket is wrapped to note them; nothing else about the libraries is changed),
  which unblocks the library, and Run.cancel() may do more (AsyncRun cancels its task,
  curl.py kills its process).
- A failure of the adapter's own code in a run is answered `error` for that run; the
  library's failures are observations, recorded by each adapter as it sees fit.
- Client scripts (`steps`): ScriptRun, the one step loop of every Python adapter, with
  the in-page runner's semantics (browser/runner.js): each request step a run of the
  adapter's Run class, waits, journal waits, do steps through Run.perform() (the verbs in
  Run.do_verbs; others are unsupported), `on` bindings, events tagged by step.
- What every HTTP adapter records alike: http_request_body(spec) (the body to send),
  Run.http_response() (the head of the response) and Run.http_body() (an HttpBody: the
  chunks and responseText). What every WebSocket adapter records alike: Run.ws_connecting,
  ws_opened, ws_handshake_failed, ws_message, ws_closed, and the send script through
  ws_steps / ws_step_messages / ws_close_request.
"""
import asyncio
import base64
import codecs
import concurrent.futures
import json
import os
import socket
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request

PROTOCOL_VERSION = 1
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

_current = threading.local()  # .run: the Run whose action this thread carries out
_orig_connect = socket.socket.connect


def _tracking_connect(self, address):
    run = getattr(_current, "run", None)
    if run is not None:
        run.sockets.append(self)
    return _orig_connect(self, address)


socket.socket.connect = _tracking_connect


# ------------------------------------------------- TLS: the CA and the *.localhost names

# The harness's CA (docs/adapters.md, "TLS"): the driver starts every adapter with the path
# of the PEM file in COMET_TLS_CA. Each adapter hands it to its library the way the
# library's documentation says (requests verify=, an ssl context, curl --cacert); nothing
# ever turns verification off. Without it, https works against the system's CAs only.
TLS_CA_ENV = "COMET_TLS_CA"
# The harness's "insecure" origin (harness/src/origins.h, ORIGIN_INSECURE_HOST): loopback
# for the browsers only, for mixed content (webkit.py maps it in a private /etc/hosts).
INSECURE_HOST = "insecure.test"
_ssl_context = None
_ssl_lock = threading.Lock()


def tls_ca():
    """The CA file the run's certificates chain to, or None."""
    return os.environ.get(TLS_CA_ENV) or None


def ssl_context():
    """One ssl.SSLContext for the client side: the default (verification and host name
    checks on) with the harness's CA added to the system's. Shared, made once."""
    global _ssl_context
    import ssl
    with _ssl_lock:
        if _ssl_context is None:
            ctx = ssl.create_default_context()
            if tls_ca():
                ctx.load_verify_locations(cafile=tls_ca())
            _ssl_context = ctx
        return _ssl_context


# RFC 6761 reserves .localhost for loopback; browsers and curl resolve *.localhost
# themselves, glibc here does not (Name or service not known). Every Python library
# resolves through socket.getaddrinfo (aiohttp and websockets through the event loop's,
# which calls it): names under .localhost are answered as 127.0.0.1. The name itself is
# untouched: the library still sends it as Host and SNI and checks it in the certificate.
_orig_getaddrinfo = socket.getaddrinfo


def is_localhost_name(host):
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    return isinstance(host, str) and host.lower().rstrip(".").endswith(".localhost")


def _localhost_getaddrinfo(host, *args, **kwargs):
    if is_localhost_name(host):
        host = "127.0.0.1"
    return _orig_getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _localhost_getaddrinfo


# --------------------------------------------------------------------------- helpers

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


STEP_ACTIONS = ("xhr", "fetch", "eventsource", "websocket", "jsonp", "image", "http")
# What a library without DOM events cannot report (observations.unobserved): checks on them
# are unsupported for it, not failed.
UNOBSERVED = ("bubbles", "cancelable", "initialReadyState", "interface")


def script_requests(client):
    """The request steps of a client script (docs/scenarios.md, "Client scripts") as
    (action, spec) pairs."""
    out = []
    for step in client.get("steps") or []:
        action = next((k for k in step if k in STEP_ACTIONS), None) \
            if isinstance(step, dict) else None
        if action:
            out.append((action, step[action]))
    return out


def deadline_ms(msg):
    d = msg.get("deadline_ms")
    if isinstance(d, (int, float)) and not isinstance(d, bool) and d > 0:
        return d
    client = msg.get("client") or {}
    action = client if "steps" in client else next(iter(client.values()), None) or {}
    d = action.get("deadline") if isinstance(action, dict) else None
    if isinstance(d, (int, float)) and not isinstance(d, bool) and d > 0:
        return d
    return 10000


def header_pairs(headers):
    """Scenario headers (a mapping, or a list of one-entry mappings) → [(name, value)], in
    order, names possibly repeated."""
    out = []
    if not headers:
        return out
    entries = headers if isinstance(headers, list) else [headers]
    for entry in entries:
        pairs = [entry] if isinstance(entry, list) else list(entry.items())
        for name, value in pairs:
            out.append((str(name), str(value)))
    return out


def header_dict(headers):
    """Scenario headers → a dict; a name given twice is sent once, its values joined with
    ", " (for libraries that take a mapping)."""
    out = {}
    for name, value in header_pairs(headers):
        key = next((k for k in out if k.lower() == name.lower()), None)
        if key is None:
            out[name] = value
        else:
            out[key] = out[key] + ", " + value
    return out


def lower_headers(pairs):
    """Response header pairs → {lower-case name: value}, repeated names joined with ", "."""
    out = {}
    for name, value in pairs:
        key = name.lower()
        out[key] = out[key] + ", " + value if key in out else value
    return out


def charset_of(content_type, default="utf-8"):
    """The charset parameter of a Content-Type value, else default."""
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return default


def error_info(err):
    return {"name": type(err).__name__, "message": str(err)}


def text_decoder(encoding):
    """An incremental decoder for encoding (bad bytes become U+FFFD); UTF-8 when the
    encoding is unknown to Python."""
    try:
        return codecs.getincrementaldecoder(encoding or "utf-8")(errors="replace")
    except LookupError:
        return codecs.getincrementaldecoder("utf-8")(errors="replace")


def decode_text(data, encoding):
    """data decoded as a whole, as text_decoder() would."""
    decoder = text_decoder(encoding)
    return decoder.decode(data, final=True)


# ---------------------------------------------------------------------- HTTP helpers

def http_request_body(spec):
    """What client.http sends, for every HTTP adapter alike: ("form", {name: value}) for
    `form` (multipart/form-data, as FormData would send it), ("data", bytes) for
    `body_base64` (decoded) or `body` (text, sent as UTF-8 as fetch() does), else
    (None, None). form wins over a body, body_base64 over body."""
    if spec.get("form") is not None:
        return "form", {str(k): str(v) for k, v in spec["form"].items()}
    if spec.get("body_base64") is not None:
        return "data", base64.b64decode(spec["body_base64"])
    if spec.get("body") is not None:
        return "data", str(spec["body"]).encode("utf-8")
    return None, None


class HttpBody:
    """A response body as the library yields it: piece(data) keeps each piece and, when
    the run streams (client.http.stream), records it as a "chunk" event {length, text}
    (text decoded incrementally, bad bytes as U+FFFD); finish() sets responseText from
    what was read. encoding may be set late (before the first piece): curl learns it
    from a header block read by another thread."""

    def __init__(self, run, stream, encoding=None):
        self.run = run
        self.stream = stream
        self.encoding = encoding
        self.pieces = []
        self._decoder = None

    def piece(self, data):
        if not data:
            return
        self.pieces.append(data)
        if self.stream:
            if self._decoder is None:
                self._decoder = text_decoder(self.encoding)
            self.run.event("chunk", length=len(data), text=self._decoder.decode(data))

    def data(self):
        return b"".join(self.pieces)

    def finish(self, text=None):
        """responseText: text, else what was read decoded with the encoding."""
        self.run.set(responseText=decode_text(self.data(), self.encoding) if text is None else text)


# --------------------------------------------------------------------------- a run

class Run:
    """One run: the action in a worker thread, the observations, the deadline.

    Subclasses implement execute() (blocking, in the worker thread) and may extend
    cancel(). self.spec is the action's part of the client part, self.action its key.
    """

    # The do verbs (docs/scenarios.md, "Client scripts") the library can perform on this
    # run's object, through perform(): a script asking another one is unsupported.
    do_verbs = ()
    # True when the run carries out a whole script itself (a browser's page runs the
    # in-page runner): pyproto's ScriptRun is not used.
    runs_scripts = False
    # True when the adapter calls object_ready() itself (once its library object exists, as
    # a browser's constructor returns); else the object is "ready" as the action starts.
    signals_ready = False

    def __init__(self, msg, adapter, parent=None, step=None):
        self.msg = msg
        self.adapter = adapter
        self.parent = parent  # the ScriptRun this run is a request step of, or None
        self.step = step      # ... and the step's id
        self.started = threading.Event()  # the object exists: a do may act on it
        # a request step goes on (connects, sends) once its script yields (its next wait,
        # or its end), as a page's request goes on only once the script awaits: a do right
        # after the step acts on an object that is still CONNECTING
        self.go = threading.Event()
        if parent is None:
            self.go.set()
        self.id = msg.get("id")
        script = "steps" in msg["client"]
        self.action = "steps" if script else next(iter(msg["client"]))
        self.spec = msg["client"] if script else msg["client"][self.action] or {}
        self.deadline_s = deadline_ms(msg) / 1000.0
        # no DOM events here: what a page would show of them is not observable
        self.obs = {"events": [], "unobserved": list(UNOBSERVED)}
        self.lock = threading.Lock()
        self._frozen = False  # the deadline hit (or stop): nothing more is recorded
        self.stopped = False  # the adapter is stopping: the run is answered as an error
        self.sockets = []
        self.done = threading.Event()
        self.failure = None   # an exception of the adapter's own code
        self.t0 = time.monotonic()

    # A request step is frozen with its script.
    @property
    def frozen(self):
        return self._frozen or (self.parent is not None and self.parent.frozen)

    @frozen.setter
    def frozen(self, value):
        self._frozen = value

    # -- recording (from the worker thread)

    def now(self):
        """ms since the run started; a request step's t counts from its script's start
        (whatever the adapter sets its own t0 to)."""
        t0 = self.parent.t0 if self.parent is not None else self.t0
        return round(max(0.0, (time.monotonic() - t0) * 1000.0), 3)

    def event(self, type_, **fields):
        if self.parent is not None:  # a request step: the script's one list, tagged
            if not self._frozen:
                self.parent.step_event(self, type_, fields)
            return
        with self.lock:
            if not self.frozen:
                self.obs["events"].append(dict({"type": type_, "t": self.now()}, **fields))

    def set(self, **fields):
        with self.lock:
            if self.frozen:
                return
            self.obs.update(fields)
        if self.parent is not None and isinstance(fields.get("exception"), dict):
            # what the library threw ends this step: an event of the script too (the runner's)
            self.parent.step_event(self, "exception", dict(fields["exception"]))

    def object_ready(self):
        """The library object exists (a do step may act on it now): adapters with
        signals_ready call it as soon as they have one, before it connects. In a script it
        returns once the script has yielded (self.go)."""
        self.started.set()
        while not self.go.wait(0.05):
            if self.frozen:
                return

    def perform(self, verb, do, failed):
        """A do step on this run's object (verb: abort, close, send, call, set; do: the
        step's `do`). Returns a value to record (call) or None; raises what the library
        raised (recorded as the do step's exception), or CannotDo when the library has no
        way to do it now (the run is then unsupported). failed(err) is for a failure that
        comes later (a do scheduled on an event loop)."""
        raise CannotDo("%s cannot %s" % (self.adapter.name, verb))

    def library_failed(self, err, library_errors):
        """Record what the library call raised: its own failure (an instance of
        library_errors: a timeout, a refused connection, a protocol error) is the client's
        "error" event {name, message}; anything else it raised (a ValueError for a bad
        header, say) is the "exception"."""
        if isinstance(err, library_errors):
            self.event("error", **error_info(err))
        else:
            self.set(exception=error_info(err))

    def http_response(self, status, status_text, header_pairs, url=None):
        """An HTTP response's head arrived: the "response" event, then status, statusText,
        headers ({lower-case name: value}) and responseURL (when url is given). Returns
        the headers."""
        headers = lower_headers(header_pairs)
        self.event("response", status=status)
        fields = {"status": status, "statusText": status_text or "", "headers": headers}
        if url is not None:
            fields["responseURL"] = str(url)
        self.set(**fields)
        return headers

    def http_body(self, stream, encoding=None):
        """A reader of the response body: HttpBody."""
        return HttpBody(self, stream, encoding)

    # -- WebSocket recording (the observations every WebSocket adapter gives)

    def ws_connecting(self, url):
        """The connection starts: url, binaryType (bytes: arraybuffer), readyState 0."""
        self.set(url=url, binaryType="arraybuffer", readyState=0)

    def ws_opened(self, protocol, extensions):
        """The handshake succeeded: readyState 1, then the "open" event."""
        protocol, extensions = protocol or "", extensions or ""
        self.set(readyState=1, protocol=protocol, extensions=extensions)
        self.event("open", protocol=protocol, extensions=extensions)

    def ws_handshake_failed(self):
        """The connection failed before it opened: "error", then "close" 1006, as a
        browser's WebSocket reports it."""
        self.event("error")
        self.event("close", code=1006, reason="", wasClean=False)
        self.set(readyState=3, protocol="", extensions="")

    def ws_message(self, data):
        """A message received: text (str) or binary (bytes, recorded as base64)."""
        if isinstance(data, str):
            self.event("message", data=data, binary=False)
        else:
            self.event("message", data_base64=base64.b64encode(data).decode(), binary=True)

    def ws_closed(self, code, reason, clean, error=False):
        """The connection closed (after an "error" event when error): "close", readyState 3."""
        if error:
            self.event("error")
        self.event("close", code=code, reason=reason or "", wasClean=clean)
        self.set(readyState=3)

    @property
    def ended(self):
        return self.frozen

    # -- running

    def answer(self):
        """Carries out the run and returns the answer message (without the id)."""
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
        cannot = getattr(self, "cannot", None)
        if cannot:
            return {"type": "unsupported", "reason": cannot}
        with self.lock:
            return {"type": "result", "observations": json.loads(json.dumps(self.final_obs()))}

    def final_obs(self):
        return self.obs

    def abandon(self):
        """The adapter is stopping: record nothing more, unblock the worker, answer error."""
        with self.lock:
            self.frozen = True
            self.stopped = True
        self.cancel()
        self.done.set()

    def cancel(self):
        """Stop the action: shut down the run's sockets so a blocking call returns."""
        for sock in list(self.sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def work(self):
        _current.run = self
        try:
            if not self.signals_ready:
                self.object_ready()
                if self.frozen:
                    return
            self.execute()
        except BaseException as err:  # the adapter's own code failed
            if not self.frozen:
                self.failure = err
            else:
                log("run %s: after its end: %s: %s" % (self.id, type(err).__name__, err))
        finally:
            _current.run = None
            self.started.set()
            self.done.set()

    def execute(self):
        raise NotImplementedError


class AsyncRun(Run):
    """A run whose action is a coroutine (asyncio libraries): aexecute() runs in an event
    loop of the run's own thread; cancel() cancels it."""

    loop = None
    task = None

    def execute(self):
        self.loop = asyncio.new_event_loop()
        self.loop_thread = threading.current_thread()
        try:
            self.task = self.loop.create_task(self.aexecute())
            try:
                self.loop.run_until_complete(self.task)
            except asyncio.CancelledError:
                pass
            if self.parent is not None:  # a request step: its object stays for later do steps
                self.loop.run_until_complete(self.linger())
        finally:
            try:
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            except Exception:  # noqa: BLE001 - closing anyway
                pass
            self.loop.close()

    def cancel(self):
        loop, task = self.loop, self.task
        if loop is not None and task is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:
                pass  # the loop has just closed
        super().cancel()

    async def aexecute(self):
        raise NotImplementedError

    async def linger(self):
        """A request step's loop runs on until its script is over, so that a do step after
        the connection closed still asks the library (which answers as it does)."""
        while not (self.parent.script_over or self.frozen):
            await asyncio.sleep(0.02)

    def perform(self, verb, do, failed):
        """A do step, carried out by aperform(verb, do) on the run's event loop: waited for
        from another thread; from the loop's own thread (a do bound to an event, `on`) it
        is scheduled, and what it raises is given to failed(err)."""
        if verb not in self.do_verbs:
            raise CannotDo("%s cannot %s" % (self.adapter.name, verb))
        loop = self.loop
        if loop is None or loop.is_closed():
            # not started yet: there is no library object before the handshake
            raise CannotDo("%s has no object to %s before its connection starts"
                           % (self.adapter.name, verb))
        if threading.current_thread() is getattr(self, "loop_thread", None):
            task = loop.create_task(self.aperform(verb, do))

            def done(t):
                if not t.cancelled() and t.exception() is not None:
                    failed(t.exception())
            task.add_done_callback(done)
            return None
        fut = asyncio.run_coroutine_threadsafe(self.aperform(verb, do), loop)
        while True:  # until it is done, or the run is (its loop then drops the task)
            try:
                return fut.result(0.05)
            except concurrent.futures.TimeoutError:
                if self.done.is_set() or self.frozen:
                    fut.cancel()
                    return None

    async def aperform(self, verb, do):
        raise CannotDo("%s cannot %s" % (self.adapter.name, verb))

    async def ws_drive(self):
        """An open WebSocket's run: the scenario's script (self.script()) and the reader
        (self.read()) side by side. A step that raises ends the run at once; otherwise, once
        the script is over, the reader runs on until the close."""
        script = asyncio.ensure_future(self.script())
        reader = asyncio.ensure_future(self.read())
        try:
            await asyncio.wait({script, reader}, return_when=asyncio.FIRST_COMPLETED)
            if not reader.done():
                if script.exception() is not None or "exception" in self.obs:
                    reader.cancel()  # a step raised: the run ends there
                else:
                    await reader  # the script is over: wait for the close
            if script.done() and script.exception() is not None:
                raise script.exception()
        finally:
            for task in (script, reader):
                task.cancel()


# ------------------------------------------------------------------- client scripts

class CannotDo(Exception):
    """A do step the library has no way to perform (now): the run is unsupported."""


SETTLE_S = 0.025  # the runner's SETTLE_MS: stray events after the end are seen too


def step_id(step, i):
    """A step's id: its own, or step-N (N from 1), as the loader names it."""
    return step["id"] if isinstance(step.get("id"), str) else "step-%d" % (i + 1)


def step_action(step):
    return next((k for k in step if k in STEP_ACTIONS), None) if isinstance(step, dict) else None


def do_verb(do):
    """The verb of a do step: abort, close, send (a string or {send|close: ...}), call, set."""
    if isinstance(do, str):
        return do
    return next((k for k in ("call", "set", "send", "close") if k in (do or {})), None)


def do_send_data(do):
    """What `do: {send: DATA}` sends: a string as it is, anything else as JSON (the
    runner's rule); None for a bare `do: send`."""
    if not isinstance(do, dict):
        return None
    return do["send"] if isinstance(do["send"], str) else json.dumps(do["send"])


def do_close_args(do):
    """`do: close` or {close: {code, reason}} → (code, reason), either None when not given."""
    c = do.get("close") if isinstance(do, dict) else None
    c = c if isinstance(c, dict) else {}
    return (int(c["code"]) if c.get("code") is not None else None,
            str(c["reason"]) if c.get("reason") is not None else None)


class ScriptRun(Run):
    """A client script (docs/scenarios.md, "Client scripts"), with the semantics of the
    in-page runner's loop (browser/runner.js, runScript) and so of the Node libraries':

    - a request step starts a run of the adapter's run_class in a thread of its own (its
      parent is this script, its step id tags its events, its t counts from the script's
      start) and the script goes on once the step's object exists (object_ready()); the
      request itself goes on when the script next yields (a wait, a wait_for, its end),
      so that do steps right after it meet the object before it connects, as in a page;
    - `wait` sleeps; `wait_for: {event}` waits until that step fired the event (the nth,
      with that readyState); `wait_for: {journal}` asks the instance's journal wait (the
      driver gives its URL; docs/control-api.md); one that times out records wait_timeout;
    - `do` calls the step run's perform(): what it raises is an event {type: exception,
      step, target, name, message}, a value it returns {type: return, ...}; CannotDo ends
      the run as unsupported;
    - `do` with `on` is bound before anything runs and performed inside the recording of
      that event (the thread that recorded it);
    - the run ends when the script is over and every request step has ended, SETTLE_S
      later; at the deadline every step is cancelled.
    """

    def __init__(self, msg, adapter):
        super().__init__(msg, adapter)
        self.obs = {"events": [], "steps": {}, "unobserved": list(UNOBSERVED)}
        self.children = {}   # step id → its Run
        self.handlers = {}   # step id → [{"step", "id", "count", "fired"}] (on)
        self.changed = threading.Condition(self.lock)
        self.cannot = None   # why the library cannot run this script (unsupported)
        self.script_over = False
        self.epoch_ms = time.time() * 1000.0

    # -- events of the steps

    def step_event(self, child, type_, fields):
        fire = []
        with self.lock:
            if self.frozen:
                return
            e = dict({"type": type_, "t": self.now(), "step": child.step}, **fields)
            self.obs["events"].append(e)
            self.changed.notify_all()
            for h in self.handlers.get(child.step, []):
                if h["fired"] or not self.matches(child, e, h["step"]["on"]):
                    continue
                h["count"] += 1
                if h["count"] >= (h["step"]["on"].get("nth") or 1):
                    h["fired"] = True
                    fire.append(h)
        for h in fire:  # inside the "listener": the thread that recorded the event
            target = h["step"].get("step", h["step"]["on"]["step"])
            self.do_step(h["step"], h["id"], self.children.get(target))

    def record(self, sid, type_, **fields):
        with self.lock:
            if not self.frozen:
                self.obs["events"].append(dict({"type": type_, "t": self.now(), "step": sid},
                                               **fields))

    @staticmethod
    def matches(child, e, cond):
        if e["type"] != cond.get("event"):
            return False
        if cond.get("readyState") is not None:
            rs = e.get("readyState", child.obs.get("readyState"))
            if rs != cond["readyState"]:
                return False
        return True

    # -- the loop

    def execute(self):
        steps = self.spec.get("steps") or []
        for i, step in enumerate(steps):
            if step.get("do") is not None and step.get("on"):
                self.handlers.setdefault(step["on"]["step"], []).append(
                    {"step": step, "id": step_id(step, i), "count": 0, "fired": False})
        for i, step in enumerate(steps):
            if self.frozen:
                return
            sid = step_id(step, i)
            action = step_action(step)
            if action:
                self.start_step(sid, action, step[action])
            elif step.get("wait") is not None:
                self.yield_to_steps()
                self.sleep(duration_ms(step["wait"]) / 1000.0)
            elif step.get("wait_for") is not None:
                self.yield_to_steps()
                if not self.wait_for(step["wait_for"]) and not self.frozen:
                    self.record(sid, "wait_timeout")
            elif step.get("do") is not None and not step.get("on"):
                self.do_step(step, sid, self.children.get(step.get("step")))
        self.yield_to_steps()
        self.script_over = True  # the steps' objects may go (AsyncRun.linger)
        for child in list(self.children.values()):
            while not child.done.wait(0.05):
                if self.frozen:
                    return
        self.sleep(SETTLE_S)
        for child in self.children.values():
            if child.failure is not None and self.failure is None:
                raise child.failure

    def start_step(self, sid, action, spec):
        msg = {"id": "%s/%s" % (self.id, sid), "client": {action: spec},
               "deadline_ms": self.deadline_s * 1000.0}
        child = self.adapter.run_class(msg, self.adapter, parent=self, step=sid)
        with self.lock:
            self.children[sid] = child
            self.obs["steps"][sid] = child.obs
        threading.Thread(target=child.work, name="run-%s-%s" % (self.id, sid),
                         daemon=True).start()
        # the script goes on once the object exists (after send(), new WebSocket(), ...)
        while not child.started.wait(0.05):
            if self.frozen:
                return

    def yield_to_steps(self):
        """The script awaits: the request steps started since go on (Run.go)."""
        for child in list(self.children.values()):
            child.go.set()

    def sleep(self, seconds):
        end = time.monotonic() + seconds
        with self.lock:
            while not self.frozen:
                left = end - time.monotonic()
                if left <= 0:
                    return
                self.changed.wait(left)

    def wait_for(self, w):
        limit = duration_ms(w["timeout"]) / 1000.0 if w.get("timeout") is not None else None
        if w.get("journal") is not None:
            return self.journal_wait(w["journal"], limit)
        cond = w.get("event") or {}
        child = self.children.get(cond.get("step"))
        if child is None:
            raise ValueError('wait_for: no request step "%s" has run' % cond.get("step"))
        end = time.monotonic() + (limit if limit is not None else self.deadline_s)
        with self.lock:
            while not self.frozen:
                seen = [e for e in self.obs["events"]
                        if e.get("step") == child.step and self.matches(child, e, cond)]
                if len(seen) >= (cond.get("nth") or 1):
                    return True
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
        return False

    def journal_wait(self, j, limit):
        """The instance's journal wait (/s/ID/_harness/wait, its URL from the driver):
        200 once the journal has the entries, 408 at the timeout."""
        timeout_ms = max(1, round((limit if limit is not None else self.deadline_s) * 1000))
        url = j["url"] + ("&" if "?" in j["url"] else "?") + "timeout=%d" % timeout_ms
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=ssl_context()))
        try:
            with opener.open(url, timeout=timeout_ms / 1000.0 + 5) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False  # 408 (an HTTPError), or the server is gone

    def do_step(self, step, sid, child):
        if child is None or self.frozen:
            return
        do = step["do"]
        verb = do_verb(do)

        def failed(err):
            if isinstance(err, CannotDo):
                self.cannot_do(str(err))
            else:
                self.record(sid, "exception", target=child.step, **error_info(err))
        try:
            value = child.perform(verb, do, failed)
        except CannotDo as err:
            self.cannot_do(str(err))
            return
        except Exception as err:  # noqa: BLE001 - what the library threw: an observation
            failed(err)
            return
        if value is not None:
            self.record(sid, "return", target=child.step, method=do.get("call"), value=value)

    def cannot_do(self, reason):
        """The library cannot do what the script asks: the run is unsupported."""
        with self.lock:
            if self.cannot is None:
                self.cannot = reason
            self.frozen = True
            self.changed.notify_all()
        self.cancel()

    def cancel(self):
        with self.lock:
            self.changed.notify_all()
        for child in list(self.children.values()):
            try:
                child.cancel()
            except Exception as err:  # noqa: BLE001 - stopping is best effort
                log("run %s: cancel %s: %s" % (self.id, child.step, err))
        super().cancel()

    def final_obs(self):
        out = dict(self.obs)
        steps = {}
        for sid, child in self.children.items():
            with child.lock:
                steps[sid] = {k: v for k, v in child.obs.items()
                              if k not in ("events", "unobserved")}
        out["steps"] = steps
        out["clock"] = {"epoch_ms": round(self.epoch_ms, 3)}
        return out


# ------------------------------------------------------------------------ the loop

# Origins that mean something only to a page (mixed content): unsupported without one.
PAGE_ONLY_ORIGINS = ("insecure",)


class Adapter:
    has_page = False  # a browser adapter runs the action in a page (webkit.py, webdriver.py)

    def __init__(self, name, version, implementation, capabilities, run_class, details=None,
                 lacks=None, on_stop=None):
        self.name = name
        self.version = version
        self.implementation = implementation
        self.capabilities = list(capabilities)
        self.run_class = run_class
        self.details = details
        self.lacks = lacks or (lambda action, spec: None)
        self.on_stop = on_stop
        self.inflight = {}  # id → Run
        self.lock = threading.Lock()
        self.stopping = False

    def started(self, msg):
        answer = {"id": msg.get("id"), "type": "started", "protocol": PROTOCOL_VERSION,
                  "name": self.name, "version": self.version,
                  "implementation": self.implementation, "capabilities": self.capabilities}
        if self.details:
            answer["details"] = self.details
        return answer

    def start_run(self, msg):
        rid = msg.get("id")
        client = msg.get("client")
        script = isinstance(client, dict) and isinstance(client.get("steps"), list)
        if not isinstance(client, dict) or (len(client) != 1 and not script):
            write({"id": rid, "type": "error",
                   "message": "run.client must be an object with exactly one action key"})
            return
        # a client script (steps): each request step is checked as a single action would be
        requests = script_requests(client) if script else [(next(iter(client)), None)]
        if script and "steps" not in self.capabilities:
            write({"id": rid, "type": "unsupported",
                   "reason": '%s has no "steps" capability (client scripts)' % self.name})
            return
        for action, spec in requests:
            if action not in self.capabilities:
                write({"id": rid, "type": "unsupported",
                       "reason": '%s has no "%s" capability' % (self.name, action)})
                return
            spec = client[action] if spec is None else spec
            if not isinstance(spec, dict) or not isinstance(spec.get("url"), str):
                write({"id": rid, "type": "error",
                       "message": "client.%s.url must be a string" % action})
                return
            reason = self.lacks(action, spec)
            if not reason and not self.has_page and spec.get("origin") in PAGE_ONLY_ORIGINS:
                reason = ("no page here: a request to the %s origin is like any other (mixed "
                          "content is a page's rule)" % spec["origin"])
            if reason:
                write({"id": rid, "type": "unsupported", "reason": reason})
                return
        own_loop = script and not getattr(self.run_class, "runs_scripts", False)
        if own_loop:
            reason = self.script_lack(client)
            if reason:
                write({"id": rid, "type": "unsupported", "reason": reason})
                return
        run = (ScriptRun if own_loop else self.run_class)(msg, self)
        with self.lock:
            self.inflight[rid] = run
        threading.Thread(target=self.finish_run, args=(run,), name="answer-%s" % rid,
                         daemon=True).start()

    def script_lack(self, client):
        """Why a script asks what this library cannot do (a do verb it has no operation
        for), or None."""
        verbs = self.run_class.do_verbs
        for step in client.get("steps") or []:
            if not isinstance(step, dict) or step.get("do") is None:
                continue
            verb = do_verb(step["do"])
            if verb not in verbs:
                return ("%s has no operation for a script's `do: %s` (it can: %s)"
                        % (self.name, verb, ", ".join(verbs) or "none"))
        return None

    def finish_run(self, run):
        try:
            answer = run.answer()
        except Exception as err:  # noqa: BLE001 - the adapter's fault: an error answer
            answer = {"type": "error", "message": "%s: %s" % (type(err).__name__, err),
                      "stack": traceback.format_exc()}
        with self.lock:
            if self.inflight.pop(run.id, None) is None:
                return  # already answered by stop
        write(dict({"id": run.id}, **answer))

    def stop(self):
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
        if self.on_stop is not None:
            try:
                self.on_stop()
            except Exception as err:  # noqa: BLE001 - stopping anyway
                log("%s: stop: %s" % (self.name, err))

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
            self.stop()
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
            except Exception as err:  # noqa: BLE001 - never die on a message
                write({"id": msg.get("id"), "type": "error",
                       "message": "%s: %s" % (type(err).__name__, err),
                       "stack": traceback.format_exc()})
        # end of stdin: stop quietly
        self.stop()


def serve(adapter):
    """Serve the protocol until stop or end of stdin, then exit 0."""
    try:
        adapter.serve()
    except KeyboardInterrupt:
        pass
    try:
        _out.flush()
    except (BrokenPipeError, ValueError):
        pass
    os._exit(0)


# ------------------------------------------------------------------ WebSocket helpers

def ws_protocols(spec):
    """client.websocket.protocols as a list (None when not given)."""
    p = spec.get("protocols")
    if p is None:
        return None
    return [p] if isinstance(p, str) else [str(x) for x in p]


def ws_steps(spec):
    """The send script as a list of step objects, with client.websocket.close appended as a
    last {close: ...} step (the runner's order)."""
    steps = [{"text": raw} if isinstance(raw, str) else dict(raw) for raw in spec.get("send") or []]
    if spec.get("close") is not None:
        steps.append({"close": spec["close"]})
    return steps


def ws_step_messages(step):
    """What one script step sends, in the runner's order: text (str), then binary (bytes:
    binary_base64 decoded, binary as UTF-8)."""
    out = []
    if step.get("text") is not None:
        out.append(str(step["text"]))
    if step.get("binary_base64") is not None:
        out.append(base64.b64decode(step["binary_base64"]))
    if step.get("binary") is not None:
        out.append(str(step["binary"]).encode("utf-8"))
    return out


def ws_close_request(step):
    """A step's close as (code, reason), either None when not given; None when the step
    does not close (`close: true` is a close with the library's defaults)."""
    close = step.get("close")
    if close is None or close is False:
        return None
    c = {} if close is True else close
    return (int(c["code"]) if c.get("code") is not None else None,
            str(c["reason"]) if c.get("reason") is not None else None)


def ws_lacks(action, spec):
    if spec.get("binary_type") not in (None, "arraybuffer"):
        return "no binaryType %r in Python: binary messages are bytes" % spec.get("binary_type")
    return None


def close_payload_fields(data):
    """A received close frame's payload → (code, reason): 1005 when it has no code."""
    if not data or len(data) < 2:
        return 1005, ""
    return int.from_bytes(data[:2], "big"), data[2:].decode("utf-8", errors="replace")
