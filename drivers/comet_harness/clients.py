"""The clients: their registry (drivers/clients.yaml) and their adapter processes.

The registry maps a client name to the command that starts its adapter and what is known
about it (capabilities, kind, whether it runs by default…). drivers/clients.yaml is the one
list, the built-in clients included; --clients-file adds the clients of another file of the
same shape (and may replace some, or the default set). See that file for the fields.

An adapter is a long-lived process speaking newline-delimited JSON on stdin/stdout
(docs/adapters.md). This module starts one, does the `start` handshake (recording the
client's name, version and capabilities), sends `run`s with a deadline and reads the
answers, and captures stderr for failure reports. An adapter that crashes, hangs past the
deadline plus a grace period, or writes a line that is not protocol raises `AdapterError`
for that run and is killed; the pool starts a new one for the next run.

(The adapter programs themselves are in drivers/adapters/.)
"""
import collections
import itertools
import json
import os
import queue
import shlex
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import List

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MANIFEST = os.path.join(ROOT, "drivers", "clients.yaml")
DEFAULT_GRACE_S = 10.0
# The environment variable that carries the harness CA's path to an adapter (docs/adapters.md).
TLS_CA_ENV = "COMET_TLS_CA"
ANSWER_TYPES = {"started", "result", "unsupported", "error", "stopped"}
KINDS = ("browser", "node", "python", "program")
FIELDS = {"command", "description", "capabilities", "kind", "default", "start_timeout", "needs"}


@dataclass
class ClientSpec:
    """How to start one client's adapter, and what the registry says of it."""
    name: str
    command: List[str]
    default: bool = False
    start_timeout: float = 60.0
    description: str = ""
    capabilities: List[str] = field(default_factory=list)
    kind: str = "program"
    needs: List[str] = field(default_factory=list)

    def argv(self, root=ROOT):
        """The command with its program found on PATH (as `node`) when not a path."""
        argv = list(self.command)
        if argv and os.sep not in argv[0]:
            argv[0] = shutil.which(argv[0]) or argv[0]
        return argv


class RegistryError(ValueError):
    """A clients file is not valid."""


def _read(path):
    """(clients: {name: ClientSpec}, default: [names] or None) of one clients file."""
    with open(path, encoding="utf-8") as f:
        try:
            doc = yaml.safe_load(f) or {}
        except yaml.YAMLError as err:
            raise RegistryError("%s: %s" % (path, err)) from None
    if not isinstance(doc, dict):
        raise RegistryError("%s: expected a mapping" % path)
    unknown = set(doc) - {"default", "clients"}
    if unknown:
        raise RegistryError("%s: unknown keys %s" % (path, ", ".join(sorted(unknown))))
    entries = doc.get("clients") or {}
    if not isinstance(entries, dict):
        raise RegistryError("%s: clients must be a mapping of name to client" % path)
    clients = {}
    for name, entry in entries.items():
        where = "%s: clients.%s" % (path, name)
        if not isinstance(entry, dict) or "command" not in entry:
            raise RegistryError("%s needs a command" % where)
        unknown = set(entry) - FIELDS
        if unknown:
            raise RegistryError("%s: unknown keys %s (known: %s)" % (
                where, ", ".join(sorted(unknown)), ", ".join(sorted(FIELDS))))
        command = entry["command"]
        if isinstance(command, str):
            command = shlex.split(command)
        kind = str(entry.get("kind", "program"))
        if kind not in KINDS:
            raise RegistryError("%s: kind %s is not one of %s" % (where, kind, ", ".join(KINDS)))
        lists = {}
        for key in ("capabilities", "needs"):
            value = entry.get(key) or []
            if not isinstance(value, list):
                raise RegistryError("%s: %s must be a list" % (where, key))
            lists[key] = [str(v) for v in value]
        clients[str(name)] = ClientSpec(
            str(name), [str(c) for c in command], bool(entry.get("default", False)),
            float(entry.get("start_timeout", 60)), str(entry.get("description", "")),
            lists["capabilities"], kind, lists["needs"])
    default = None
    if "default" in doc:
        default = [str(n) for n in doc["default"] or []]
    return clients, default


def builtin_clients(manifest=MANIFEST):
    """The clients this repository ships adapters for (drivers/clients.yaml)."""
    return _read(manifest)[0]


def load_registry(path=None, manifest=MANIFEST):
    """The client registry: drivers/clients.yaml, updated by the clients file at path
    (--clients-file; none, or a path that does not exist: the manifest alone).

    Returns (clients: {name: ClientSpec}, default: [names]).
    """
    clients, default = _read(manifest)
    sources = [manifest]
    if path and os.path.abspath(path) != os.path.abspath(manifest) and os.path.exists(path):
        extra, extra_default = _read(path)
        clients.update(extra)
        if extra_default is not None:
            default = extra_default
        sources.append(path)
    if default is None:
        default = [n for n, spec in clients.items() if spec.default]
    missing = [n for n in default if n not in clients]
    if missing:
        raise RegistryError("%s: default names unknown clients: %s"
                            % (sources[-1], ", ".join(missing)))
    return clients, default


class AdapterError(Exception):
    """The adapter failed (not the client under test): graded as an error.

    kind: start | crash | hang | protocol | error (the adapter answered `error`).
    """

    def __init__(self, message, kind="error", stderr="", fatal=False):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.stderr = stderr
        self.fatal = fatal  # the process is unusable: kill it, start another next time

    def __str__(self):
        return self.message


class AdapterProcess:
    """One running adapter process."""

    def __init__(self, spec, root=ROOT, env=None):
        self.spec = spec
        self.started = None       # the `started` answer
        self._ids = itertools.count(1)
        self._answers = queue.Queue()
        self._stderr = collections.deque(maxlen=4000)
        self._stderr_count = 0
        self._stderr_lock = threading.Lock()
        try:
            self.proc = subprocess.Popen(
                spec.argv(root), cwd=root, env=env, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        except OSError as err:
            raise AdapterError("cannot start the %s adapter (%s): %s"
                               % (spec.name, " ".join(spec.command), err), "start", fatal=True)
        threading.Thread(target=self._read_stdout, daemon=True,
                         name="adapter-%s-out" % spec.name).start()
        threading.Thread(target=self._read_stderr, daemon=True,
                         name="adapter-%s-err" % spec.name).start()

    # -- reading -----------------------------------------------------------------------

    def _read_stdout(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line.strip():
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                msg = None
            if not isinstance(msg, dict) or msg.get("type") not in ANSWER_TYPES:
                self._answers.put(("garbage", line))
            else:
                self._answers.put(("message", msg))
        self._answers.put(("eof", None))

    def _read_stderr(self):
        for raw in self.proc.stderr:
            with self._stderr_lock:
                self._stderr.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._stderr_count += 1

    def stderr_mark(self):
        """A position in the stderr log (for stderr_since)."""
        with self._stderr_lock:
            return self._stderr_count

    def stderr_since(self, mark, limit=60):
        """The stderr lines written since mark (the last `limit` of them)."""
        time.sleep(0.05)  # let the reader catch up with the last lines
        with self._stderr_lock:
            n = self._stderr_count - mark
            lines = list(self._stderr)[-n:] if n > 0 else []
        return "\n".join(lines[-limit:])

    # -- writing -----------------------------------------------------------------------

    def _send(self, msg):
        try:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode("utf-8"))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as err:
            raise AdapterError("the %s adapter is not reading its input (%s)%s"
                               % (self.spec.name, err, self._exit_text()), "crash",
                               fatal=True) from None

    def _exit_text(self):
        code = self.proc.poll()
        return "" if code is None else "; it exited with status %s" % code

    def _await(self, msg_id, timeout, what):
        """The answer to msg_id; AdapterError on crash, garbage or timeout."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AdapterError("the %s adapter did not answer %s within %.1f s (hung)"
                                   % (self.spec.name, what, timeout), "hang", fatal=True)
            try:
                kind, payload = self._answers.get(timeout=left)
            except queue.Empty:
                continue
            if kind == "eof":
                try:
                    self.proc.wait(2)
                except subprocess.TimeoutExpired:
                    pass
                raise AdapterError("the %s adapter exited during %s%s" % (
                    self.spec.name, what, self._exit_text() or " (closed its output)"),
                    "crash", fatal=True)
            if kind == "garbage":
                raise AdapterError("the %s adapter wrote a line that is not the protocol "
                                   "during %s: %.300r" % (self.spec.name, what, payload),
                                   "protocol", fatal=True)
            if payload.get("id") is None and payload.get("type") == "error":
                raise AdapterError("the %s adapter could not read a message: %s"
                                   % (self.spec.name, payload.get("message")), "protocol",
                                   fatal=True)
            if payload.get("id") == msg_id:
                return payload
            # an answer to something earlier (not waited for any more): ignore it

    # -- the protocol --------------------------------------------------------------------

    def start(self, timeout=None):
        """The start handshake; returns the `started` answer."""
        msg_id = next(self._ids)
        self._send({"id": msg_id, "type": "start"})
        answer = self._await(msg_id, timeout or self.spec.start_timeout, "start")
        if answer.get("type") == "error":
            raise AdapterError("the %s adapter could not start: %s" % (
                self.spec.name, answer.get("message")), "start", fatal=True)
        if answer.get("type") != "started" or not isinstance(answer.get("capabilities"), list):
            raise AdapterError("the %s adapter answered start with %.300r"
                               % (self.spec.name, answer), "protocol", fatal=True)
        self.started = answer
        return answer

    def run(self, scenario_id, client, origins, page, deadline_ms, grace_s=DEFAULT_GRACE_S):
        """One run. Returns ("result", observations) or ("unsupported", reason).

        Raises AdapterError when the adapter answers `error`, crashes, hangs or babbles.
        """
        msg_id = next(self._ids)
        self._send({"id": msg_id, "type": "run", "scenario": scenario_id, "client": client,
                    "origins": origins, "page": page, "deadline_ms": deadline_ms})
        answer = self._await(msg_id, deadline_ms / 1000.0 + grace_s, "run %s" % scenario_id)
        kind = answer.get("type")
        if kind == "result":
            obs = answer.get("observations")
            if not isinstance(obs, dict):
                raise AdapterError("the %s adapter's result has no observations object"
                                   % self.spec.name, "protocol", fatal=True)
            return "result", obs
        if kind == "unsupported":
            return "unsupported", str(answer.get("reason") or "unsupported by the client")
        if kind == "error":
            text = answer.get("message") or "(no message)"
            if answer.get("stack"):
                text += "\n" + str(answer["stack"])
            raise AdapterError("the %s adapter failed: %s" % (self.spec.name, text), "error")
        raise AdapterError("the %s adapter answered a run with %.300r" % (self.spec.name, answer),
                           "protocol", fatal=True)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=15.0):
        """Ask the adapter to stop; kill it if it does not exit in time."""
        if self.alive():
            try:
                msg_id = next(self._ids)
                self._send({"id": msg_id, "type": "stop"})
                self._await(msg_id, timeout, "stop")
                self.proc.wait(timeout)
            except (AdapterError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def kill(self):
        """Kill the adapter and everything it started (its process group)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        else:
            try:  # a browser the adapter left behind
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass


class AdapterPool:
    """The adapter processes of one pytest process (one per client, started lazily)."""

    MAX_START_FAILURES = 2

    def __init__(self, clients, root=ROOT, grace_s=DEFAULT_GRACE_S):
        self.clients = clients
        self.root = root
        self.grace_s = grace_s
        self._procs = {}
        self._start_failures = collections.Counter()
        self._last_start_error = {}
        self.info = {}  # name → the last `started` answer
        self.tls_ca = None  # the CA file every adapter is started with (COMET_TLS_CA)

    def set_tls_ca(self, path):
        """The harness's CA (the ready line's `ca`), handed to every adapter at its start as
        $COMET_TLS_CA (docs/adapters.md, "TLS"). Adapters started with another CA (a
        server started again makes a new one) are stopped: the next run starts them anew."""
        if path == self.tls_ca:
            return
        self.tls_ca = path
        if self._procs:
            self.close()

    def env(self):
        """The environment an adapter starts with."""
        env = dict(os.environ)
        env.pop(TLS_CA_ENV, None)
        if self.tls_ca:
            env[TLS_CA_ENV] = self.tls_ca
        return env

    def get(self, name):
        """The running adapter of a client, started if need be."""
        proc = self._procs.get(name)
        if proc is not None and proc.alive():
            return proc
        if proc is not None:
            self.discard(name)
        if self._start_failures[name] >= self.MAX_START_FAILURES:
            err = self._last_start_error[name]
            raise AdapterError("the %s adapter could not be started (%d tries); last: %s"
                               % (name, self._start_failures[name], err.message), "start",
                               stderr=err.stderr)
        spec = self.clients[name]
        proc = None
        try:
            proc = AdapterProcess(spec, self.root, env=self.env())
            proc.start()
        except AdapterError as err:
            if proc is not None:
                err.stderr = proc.stderr_since(0)
                proc.kill()
            self._start_failures[name] += 1
            self._last_start_error[name] = err
            raise
        self._start_failures[name] = 0
        self._procs[name] = proc
        self.info[name] = proc.started
        return proc

    def discard(self, name):
        """Kill a client's adapter (after a crash, a hang or garbage)."""
        proc = self._procs.pop(name, None)
        if proc is not None:
            proc.kill()

    def close(self):
        """Stop every adapter (in parallel: a browser takes a while to close)."""
        threads = [threading.Thread(target=p.stop) for p in self._procs.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for proc in self._procs.values():
            proc.kill()
        self._procs.clear()
