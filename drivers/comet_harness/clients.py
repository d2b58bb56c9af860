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

A Node library client is declared by its `library` (the npm package, the web API global it
provides, its export shape, what it lacks, per-version overrides) and runs on
drivers/adapters/node-lib.mjs, which gets the declaration as JSON on its command line.
`NAME@VERSION` (add_versioned) is such a client at another version of its package,
installed with npm into a cache of its own (build/clients-cache) and reused from there.

(The adapter programs themselves are in drivers/adapters/.)
"""
import collections
import contextlib
import copy
import fcntl
import itertools
import json
import os
import queue
import re
import select
import shlex
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import List, Optional

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MANIFEST = os.path.join(ROOT, "drivers", "clients.yaml")
DEFAULT_GRACE_S = 10.0
# The environment variable that carries the harness CA's path to an adapter (docs/adapters.md).
TLS_CA_ENV = "COMET_TLS_CA"
ANSWER_TYPES = {"started", "result", "unsupported", "error", "stopped"}
KINDS = ("browser", "node", "python", "program")
FIELDS = {"command", "description", "capabilities", "kind", "default", "start_timeout", "needs",
          "library", "parallel", "per_process"}
NODE_LIB = ["node", "drivers/adapters/node-lib.mjs"]  # the command of a `library` client
PACKAGE_JSON = os.path.join(ROOT, "drivers", "package.json")
CACHE = os.environ.get("COMET_CLIENTS_CACHE") or os.path.join(ROOT, "build", "clients-cache")
NPM_TIMEOUT_S = 300


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
    library: Optional[dict] = None    # a Node library client: its declaration (see library_argument)
    library_root: Optional[str] = None  # the folder whose node_modules holds its package
    parallel: int = 1      # runs of it at once in one pytest process (runahead.py)
    per_process: int = 1   # of those, how many one adapter process takes at once

    def argv(self, root=ROOT):
        """The command with its program found on PATH (as `node`) when not a path; a
        library client's declaration appended (`--library JSON`)."""
        argv = list(self.command)
        if argv and os.sep not in argv[0]:
            argv[0] = shutil.which(argv[0]) or argv[0]
        if self.library is not None:
            argv += ["--library", json.dumps(library_argument(self), sort_keys=True)]
        return argv


class RegistryError(ValueError):
    """A clients file is not valid."""


# ------------------------------------------------------------ Node library clients

LIBRARY_FIELDS = {"npm", "builtin", "global", "export", "lacks", "versions"}
OVERRIDE_FIELDS = {"global", "export", "lacks"}   # what `versions` may change
LACK_FIELDS = {"key", "in", "not_in", "reason"}
_COMPARATOR = re.compile(r"^(<=|>=|<|>|=)?(\d+)(?:\.(\d+))?(?:\.(\d+))?$")
EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$")


def _version_key(version):
    """(major, minor, patch) of a version; a prerelease tag is ignored."""
    m = re.match(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", str(version).strip())
    if not m:
        raise ValueError("not a version: %r" % (version,))
    return tuple(int(g or 0) for g in m.groups())


def version_matches(version, spec):
    """Whether version satisfies a range of space-separated comparators, all of them
    (`<3`, `>=2.1 <3`, `=4.1.1`, `4`: no operator is `=`). A comparator compares only the
    parts it gives, as npm's semver does (`<=3` takes in 3.9.9, `=4` any 4.x.y). The small
    part of semver that clients.yaml's `versions` needs."""
    key = _version_key(version)
    comparators = str(spec).split()
    if not comparators:
        raise ValueError("an empty version range")
    for comp in comparators:
        m = _COMPARATOR.match(comp)
        if not m:
            raise ValueError("not a version comparator: %r (use <, <=, >, >=, = and "
                             "a version such as 3 or 2.1.0)" % comp)
        parts = tuple(int(g) for g in m.groups()[1:] if g is not None)
        have = key[:len(parts)]
        ok = {"=": have == parts, "<": have < parts, "<=": have <= parts,
              ">": have > parts, ">=": have >= parts}[m.group(1) or "="]
        if not ok:
            return False
    return True


def _check_lacks(where, lacks):
    if not isinstance(lacks, list):
        raise RegistryError("%s: lacks must be a list of {key, in | not_in, reason}" % where)
    for i, rule in enumerate(lacks):
        w = "%s: lacks[%d]" % (where, i)
        if not isinstance(rule, dict) or not isinstance(rule.get("key"), str) \
                or not isinstance(rule.get("reason"), str):
            raise RegistryError("%s needs a key and a reason" % w)
        unknown = set(rule) - LACK_FIELDS
        if unknown:
            raise RegistryError("%s: unknown keys %s (known: %s)" % (
                w, ", ".join(sorted(unknown)), ", ".join(sorted(LACK_FIELDS))))
        for key in ("in", "not_in"):
            if key in rule and not isinstance(rule[key], list):
                raise RegistryError("%s: %s must be a list of values" % (w, key))
    return lacks


def _check_library(where, lib):
    """A client's `library` declaration, checked: a mapping, or the name of another client
    whose library this one shares (a string, resolved by _resolve_library_refs)."""
    if isinstance(lib, str):
        return {"like": lib}
    where += ".library"
    if not isinstance(lib, dict):
        raise RegistryError("%s must be a mapping (or the name of another client)" % where)
    unknown = set(lib) - LIBRARY_FIELDS
    if unknown:
        raise RegistryError("%s: unknown keys %s (known: %s)" % (
            where, ", ".join(sorted(unknown)), ", ".join(sorted(LIBRARY_FIELDS))))
    if ("npm" in lib) == ("builtin" in lib):
        raise RegistryError("%s needs one of npm (the package) or builtin (Node's own)" % where)
    for key in ("npm", "builtin", "global", "export"):
        if key in lib and not (isinstance(lib[key], str) and lib[key]):
            raise RegistryError("%s: %s must be a string" % (where, key))
    if "global" not in lib:
        raise RegistryError("%s needs global (the web API global it provides)" % where)
    if "npm" in lib and "export" not in lib:
        raise RegistryError("%s needs export (module, default or the export's name)" % where)
    _check_lacks(where, lib.get("lacks", []))
    versions = lib.get("versions", {})
    if not isinstance(versions, dict):
        raise RegistryError("%s: versions must be a mapping of range to overrides" % where)
    for rng, over in versions.items():
        w = "%s.versions[%r]" % (where, rng)
        try:
            version_matches("0.0.0", rng)
        except ValueError as err:
            raise RegistryError("%s: %s" % (w, err)) from None
        if not isinstance(over, dict) or set(over) - OVERRIDE_FIELDS:
            raise RegistryError("%s: a mapping of %s" % (w, ", ".join(sorted(OVERRIDE_FIELDS))))
        if "lacks" in over:
            _check_lacks(w, over["lacks"])
    return dict(lib)


def _resolve_library_refs(clients, where):
    """Replace `library: OTHER` by OTHER's library."""
    for name, spec in clients.items():
        if spec.library is not None and "like" in spec.library:
            other = clients.get(spec.library["like"])
            if other is None or other.library is None or "like" in other.library:
                raise RegistryError("%s: clients.%s.library: %s is not a library client"
                                    % (where, name, spec.library["like"]))
            spec.library = copy.deepcopy(other.library)


def installed_version(root, package):
    """The version of package installed under root/node_modules, or None."""
    try:
        with open(os.path.join(root, "node_modules", package, "package.json"),
                  encoding="utf-8") as f:
            return str(json.load(f).get("version"))
    except (OSError, ValueError):
        return None


def library_argument(spec):
    """What node-lib.mjs is told of a library client (`--library JSON`): its name and
    capabilities, the package and the folder to resolve it from (root), the global, the
    export shape and the lacks — the `versions` overrides that match the installed
    version applied, in their order."""
    lib = spec.library
    decl = {k: copy.deepcopy(v) for k, v in lib.items() if k != "versions"}
    decl["name"] = spec.name.split("@")[0]
    decl["capabilities"] = list(spec.capabilities)
    if "npm" in lib:
        root = spec.library_root or os.path.join(ROOT, "drivers")
        decl["root"] = root
        version = installed_version(root, lib["npm"])
        for rng, over in (lib.get("versions") or {}).items():
            if version is not None and version_matches(version, rng):
                decl.update(copy.deepcopy(over))
    return decl


def pinned_version(package, package_json=PACKAGE_JSON):
    """The version drivers/package.json pins package to (the one place it is written)."""
    with open(package_json, encoding="utf-8") as f:
        return json.load(f).get("dependencies", {}).get(package)


def _npm_errors(text):
    lines = [ln[len("npm error"):].strip() for ln in text.splitlines()
             if ln.startswith("npm error") and "complete log" not in ln]
    return "; ".join(ln for ln in lines if ln) or text.strip()[-500:]


def npm_install(package, version, cache=None):
    """package@version installed with npm into cache/package@version (reused when it is
    there already); returns that folder. Several processes may ask at once (pytest-xdist
    workers): a lock file makes one install and the others reuse it. RegistryError when
    npm fails (no such version, no registry)."""
    cache = cache or CACHE
    folder = os.path.join(cache, "%s@%s" % (package.replace("/", "+"), version))
    if installed_version(folder, package) == version:
        return folder
    npm = shutil.which("npm")
    if npm is None:
        raise RegistryError("%s@%s: npm is not installed (scripts/ensure-deps)" % (package, version))
    os.makedirs(cache, exist_ok=True)
    with open(folder + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed_version(folder, package) == version:
            return folder
        tmp = "%s.tmp%d" % (folder, os.getpid())
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        try:
            proc = subprocess.run(
                [npm, "install", "--prefix", tmp, "--no-save", "--no-package-lock",
                 "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel", "error",
                 "%s@%s" % (package, version)],
                cwd=tmp, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=NPM_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RegistryError("npm install %s@%s took more than %d s"
                                % (package, version, NPM_TIMEOUT_S)) from None
        got = installed_version(tmp, package)
        if proc.returncode != 0 or got != version:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RegistryError("cannot install %s@%s from npm: %s" % (
                package, version, _npm_errors(proc.stderr + proc.stdout)
                if proc.returncode else "it installed %s" % got))
        shutil.rmtree(folder, ignore_errors=True)
        os.rename(tmp, folder)
    return folder


def versioned_client(registry, name, cache=None):
    """The client NAME@VERSION: client NAME (a Node library client of an npm package) with
    that exact version of its package, installed by npm_install. RegistryError when NAME
    is unknown or not such a client, or VERSION is not an exact version npm has."""
    base, _, version = name.partition("@")
    spec = registry.get(base)
    if spec is None:
        raise RegistryError("unknown client %s (in %s; known: %s)"
                            % (base, name, ", ".join(sorted(registry))))
    if not EXACT_VERSION.match(version):
        raise RegistryError("%s: the version must be exact, as %s@2.0.2" % (name, base))
    if spec.library is None or "npm" not in spec.library:
        why = ("Python libraries come from Debian, one version each"
               if spec.kind == "python" else
               "it is Node's own" if spec.library else "it is not an npm library client")
        raise RegistryError("%s: only an npm library client runs at another version (%s)"
                            % (name, why))
    out = copy.deepcopy(spec)
    out.name = name
    out.default = False
    out.library_root = npm_install(spec.library["npm"], version, cache)
    out.needs = [n for n in out.needs if n != "node_modules"]
    return out


def add_versioned(registry, names, cache=None):
    """Add to registry the clients NAME@VERSION among names that it does not know."""
    for name in names:
        if "@" in name and name not in registry:
            registry[name] = versioned_client(registry, name, cache)
    return registry


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
        if not isinstance(entry, dict) or ("command" not in entry and "library" not in entry):
            raise RegistryError("%s needs a command (or a library)" % where)
        unknown = set(entry) - FIELDS
        if unknown:
            raise RegistryError("%s: unknown keys %s (known: %s)" % (
                where, ", ".join(sorted(unknown)), ", ".join(sorted(FIELDS))))
        command = entry.get("command", NODE_LIB)
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
        counts = {}
        for key in ("parallel", "per_process"):
            value = entry.get(key, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RegistryError("%s: %s must be a whole number of runs, at least 1"
                                    % (where, key))
            counts[key] = value
        clients[str(name)] = ClientSpec(
            str(name), [str(c) for c in command], bool(entry.get("default", False)),
            float(entry.get("start_timeout", 60)), str(entry.get("description", "")),
            lists["capabilities"], kind, lists["needs"],
            _check_library(where, entry["library"]) if "library" in entry else None,
            parallel=counts["parallel"], per_process=counts["per_process"])
    default = None
    if "default" in doc:
        default = [str(n) for n in doc["default"] or []]
    return clients, default


def builtin_clients(manifest=MANIFEST):
    """The clients this repository ships adapters for (drivers/clients.yaml)."""
    clients = _read(manifest)[0]
    _resolve_library_refs(clients, manifest)
    return clients


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
    _resolve_library_refs(clients, sources[-1])
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
    """One running adapter process. Several runs may be in flight at once (each answer is
    handed to the run that waits for its id); `inflight` counts them for the pool."""

    def __init__(self, spec, root=ROOT, env=None):
        self.spec = spec
        self.started = None       # the `started` answer
        self.inflight = 0         # runs leased to it (AdapterPool)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._waiting = {}        # message id → the queue its answer goes to
        self._broken = None       # (kind, payload): the process can answer no more
        self._stderr = collections.deque(maxlen=4000)
        self._stderr_count = 0
        self._stderr_partial = b""
        self._stderr_lock = threading.Lock()
        # Every process the adapter starts inherits this mark (ADAPTER_MARK), by which
        # kill() finds them even when the adapter died first and left them to init.
        self.mark = "%d.%d.%s" % (os.getpid(), next(_adapter_serial), os.urandom(4).hex())
        env = dict(os.environ if env is None else env, **{ADAPTER_MARK: self.mark})
        try:
            self.proc = subprocess.Popen(
                spec.argv(root), cwd=root, env=env, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        except OSError as err:
            raise AdapterError("cannot start the %s adapter (%s): %s"
                               % (spec.name, " ".join(spec.command), err), "start", fatal=True)
        os.set_blocking(self.proc.stderr.fileno(), False)
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
                self._deliver("garbage", line)
            elif msg.get("id") is None and msg.get("type") == "error":
                self._deliver("unreadable", msg)
            else:
                self._deliver("message", msg)
        self._deliver("eof", None)

    def _deliver(self, kind, payload):
        """An answer to the run waiting for its id (one nobody waits for any more is
        dropped); anything else makes the process unusable, for every run in flight."""
        with self._lock:
            if kind == "message":
                waiting = self._waiting.get(payload.get("id"))
                if waiting is not None:
                    waiting.put((kind, payload))
                return
            if self._broken is None:  # the first failure is the one every later run sees
                self._broken = (kind, payload)
            for waiting in self._waiting.values():
                waiting.put((kind, payload))

    def _read_stderr(self):
        """Reads what the adapter writes to stderr as it comes (stderr_since reads the
        rest itself: no sleep, no line missed)."""
        fd = self.proc.stderr.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        while True:
            try:
                poller.poll(1000)
            except OSError:
                pass
            with self._stderr_lock:
                if not self._drain_stderr():
                    return

    def _drain_stderr(self):
        """Read stderr up to what is written so far (the stderr lock held). False at its
        end."""
        while True:
            if self.proc.stderr.closed:
                return False
            try:
                data = os.read(self.proc.stderr.fileno(), 65536)
            except BlockingIOError:
                return True
            except OSError:
                data = b""
            if not data:
                if self._stderr_partial:
                    self._add_stderr(self._stderr_partial)
                    self._stderr_partial = b""
                return False
            lines = (self._stderr_partial + data).split(b"\n")
            self._stderr_partial = lines.pop()
            for line in lines:
                self._add_stderr(line)

    def _add_stderr(self, raw):
        self._stderr.append(raw.decode("utf-8", "replace").rstrip("\r"))
        self._stderr_count += 1

    def stderr_mark(self):
        """A position in the stderr log (for stderr_since)."""
        with self._stderr_lock:
            self._drain_stderr()
            return self._stderr_count

    def stderr_since(self, mark, limit=60, run=None):
        """The stderr lines written since mark (the last `limit` of them). With run (a run
        message's id), not the lines tagged `[run ID]` with another run's id: a process
        taking several runs at once tags its lines so."""
        with self._stderr_lock:
            self._drain_stderr()  # all that the adapter wrote before its answer
            n = self._stderr_count - mark
            lines = list(self._stderr)[-n:] if n > 0 else []
        if run is not None:
            lines = [l for l in lines if _RUN_TAG.match(l) is None
                     or _RUN_TAG.match(l).group(1) == str(run)]
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

    def _ask(self, msg, timeout, what):
        """Send msg (given a new id) and return its answer; AdapterError on crash, garbage
        or timeout."""
        msg_id = msg["id"] = msg.get("id") or self.new_id()
        answers = queue.Queue()
        with self._lock:
            self._waiting[msg_id] = answers
            if self._broken is not None:
                answers.put(self._broken)
        try:
            with self._write_lock:  # one writer at a time: a line is never split
                self._send(msg)
            return self._await(answers, timeout, what)
        finally:
            with self._lock:
                self._waiting.pop(msg_id, None)

    def new_id(self):
        return next(self._ids)

    def _await(self, answers, timeout, what):
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AdapterError("the %s adapter did not answer %s within %.1f s (hung)"
                                   % (self.spec.name, what, timeout), "hang", fatal=True)
            try:
                kind, payload = answers.get(timeout=left)
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
            if kind == "unreadable":
                raise AdapterError("the %s adapter could not read a message: %s"
                                   % (self.spec.name, payload.get("message")), "protocol",
                                   fatal=True)
            return payload

    # -- the protocol --------------------------------------------------------------------

    def start(self, timeout=None):
        """The start handshake; returns the `started` answer."""
        answer = self._ask({"type": "start"}, timeout or self.spec.start_timeout, "start")
        if answer.get("type") == "error":
            raise AdapterError("the %s adapter could not start: %s" % (
                self.spec.name, answer.get("message")), "start", fatal=True)
        if answer.get("type") != "started" or not isinstance(answer.get("capabilities"), list):
            raise AdapterError("the %s adapter answered start with %.300r"
                               % (self.spec.name, answer), "protocol", fatal=True)
        self.started = answer
        return answer

    def run(self, scenario_id, client, origins, page, deadline_ms, grace_s=DEFAULT_GRACE_S,
            run_id=None):
        """One run (its message id: run_id, else a new one). Returns ("result",
        observations) or ("unsupported", reason).

        Raises AdapterError when the adapter answers `error`, crashes, hangs or babbles.
        """
        answer = self._ask({"id": run_id, "type": "run", "scenario": scenario_id,
                            "client": client, "origins": origins, "page": page,
                            "deadline_ms": deadline_ms},
                           deadline_ms / 1000.0 + grace_s + self.page_allowance(),
                           "run %s" % scenario_id)
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

    def page_allowance(self):
        """What a run may take besides its deadline and grace: a browser makes each run's
        page first (its deadline counts from there), which a loaded machine can make take
        as long as a start, so its start_timeout."""
        return self.spec.start_timeout if self.spec.kind == "browser" else 0.0

    def alive(self):
        return self.proc.poll() is None and self._broken is None

    def stop(self, timeout=15.0):
        """Ask the adapter to stop; kill it if it does not exit in time."""
        if self.alive():
            try:
                self._ask({"type": "stop"}, timeout, "stop")
                self.proc.wait(timeout)
            except (AdapterError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def left_behind(self):
        """The pids of the processes still carrying this adapter's mark."""
        return procs_module().carrying(ADAPTER_MARK, self.mark)

    def kill(self):
        """Kill the adapter and everything it started: its process group, the processes
        under it in groups of their own (puppeteer starts a browser so), and any process
        still carrying its mark (that browser, left to init when the adapter died first)."""
        below = descendants(self.proc.pid) if self.proc.poll() is None else []
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
        for pid in below:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        # started by an adapter that died before it; a browser may still be forking, and a
        # process killed is gone only once it has exited: until none is left (bounded)
        end = time.monotonic() + LEFT_BEHIND_WAIT_S
        while True:
            left = self.left_behind()
            if not left or time.monotonic() > end:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.05)
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        with self._stderr_lock:  # never while the reader reads it
            self._drain_stderr()  # its last lines
            try:
                self.proc.stderr.close()
            except OSError:
                pass



_RUN_TAG = re.compile(r"^\[run ([^\]]+)\]")



def procs_module():
    """The adapters' own process helper (drivers/adapters/procs.py, which the WebKit adapter
    and the grid use to kill their trees), loaded from its file: the adapters are scripts,
    not a package."""
    global _procs
    if _procs is None:
        import importlib.util
        path = os.path.join(ROOT, "drivers", "adapters", "procs.py")
        spec = importlib.util.spec_from_file_location("comet_harness_procs", path)
        _procs = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_procs)
    return _procs


def descendants(pid):
    """The pids of the processes under pid."""
    return procs_module().descendants(pid)


_procs = None
ADAPTER_MARK = "COMET_ADAPTER_MARK"   # in each adapter's environment: whose processes these are
LEFT_BEHIND_WAIT_S = 5.0              # kill(): how long processes left behind are killed again
_adapter_serial = itertools.count(1)


class AdapterPool:
    """The adapter processes of one pytest process, started lazily: for each client, as
    many as its runs in flight need, each taking up to the client's `per_process` runs at
    once (a browser adapter takes several, each in a browsing context of its own; a
    library adapter one, so that a crash fails no other run).

    acquire(name) leases a process for one run (a free one, else a new one, else the least
    busy), release(proc) gives it back; discard_process(proc) kills one that failed."""

    MAX_START_FAILURES = 2

    def __init__(self, clients, root=ROOT, grace_s=DEFAULT_GRACE_S):
        self.clients = clients
        self.root = root
        self.grace_s = grace_s
        self._procs = {}        # name → [AdapterProcess]
        self._lock = threading.Lock()
        self._starting = collections.defaultdict(threading.Lock)  # name → one start at a time
        # and one browser start at a time: three browsers starting at once beside the other
        # adapters on a loaded machine missed their start_timeout (Firefox: 90 s)
        self._browser_start = threading.Lock()
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

    def _max_processes(self, spec):
        return max(1, -(-spec.parallel // spec.per_process))

    def _lease(self, name, spec, may_start):
        """A running process of the client with room for a run, its count taken (the pool
        lock held); None when a new one is to be started."""
        procs = self._procs.setdefault(name, [])
        for proc in [p for p in procs if not p.alive()]:
            procs.remove(proc)
            proc.kill()
        free = [p for p in procs if p.inflight < spec.per_process]
        if not free and (may_start or not procs):
            return None
        proc = min(free or procs, key=lambda p: p.inflight)
        proc.inflight += 1
        return proc

    def acquire(self, name):
        """A running adapter of a client for one run (release() it after), started if need
        be. AdapterError when it cannot be started."""
        spec = self.clients[name]
        with self._starting[name]:
            with self._lock:
                may_start = len(self._procs.get(name, [])) < self._max_processes(spec)
                proc = self._lease(name, spec, may_start)
            if proc is not None:
                return proc
            proc = self._start(name, spec)
            with self._lock:
                proc.inflight = 1
                self._procs.setdefault(name, []).append(proc)
            return proc

    def release(self, proc):
        with self._lock:
            proc.inflight = max(0, proc.inflight - 1)

    def _start(self, name, spec):
        if self._start_failures[name] >= self.MAX_START_FAILURES:
            err = self._last_start_error[name]
            raise AdapterError("the %s adapter could not be started (%d tries); last: %s"
                               % (name, self._start_failures[name], err.message), "start",
                               stderr=err.stderr)
        proc = None
        try:
            with self._browser_start if spec.kind == "browser" else contextlib.nullcontext():
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
        self.info[name] = proc.started
        return proc

    def get(self, name):
        """A running adapter of a client (the one process when it takes runs one at a
        time), started if need be."""
        proc = self.acquire(name)
        self.release(proc)
        return proc

    def discard_process(self, proc):
        """Kill one adapter process (after a crash, a hang or garbage): the runs in flight
        on it fail with it, the next runs get another."""
        with self._lock:
            for procs in self._procs.values():
                if proc in procs:
                    procs.remove(proc)
        proc.kill()

    def discard(self, name):
        """Kill every adapter process of a client."""
        with self._lock:
            procs = self._procs.pop(name, [])
        for proc in procs:
            proc.kill()

    def close(self):
        """Stop every adapter (in parallel: a browser takes a while to close)."""
        with self._lock:
            procs = [p for ps in self._procs.values() for p in ps]
            self._procs.clear()
        threads = [threading.Thread(target=p.stop) for p in procs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for proc in procs:
            proc.kill()
