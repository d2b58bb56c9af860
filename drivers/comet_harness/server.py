"""The `harness` binary: scenario validation and the server with its control API.

    check(binary, paths, clients) `harness check --json [--clients REGISTRY]`: the valid
                                  scenarios and the errors
    HarnessServer(binary, roots)  `harness serve --port 0 --quiet --root DIR...`, started and
                                  stopped; its control API (the ready line's `control` port,
                                  with the ready line's `token` in X-Harness-Token)
        .load(file, id)           POST /_harness/instances (file: under one of the roots)
        .journal(id)              GET  /_harness/instances/ID/journal
        .wait(id, count, route)   GET  /_harness/instances/ID/wait
        .unload(id)               DELETE /_harness/instances/ID

The drivers never parse scenario YAML themselves: the binary is the one parser and the one
validator.
"""
import collections
import json
import os
import re
import select
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class HarnessError(Exception):
    """The harness binary or server failed (not the client under test): an error."""


def default_binary():
    """$HARNESS_BIN, else build/harness in the repository."""
    return os.environ.get("HARNESS_BIN") or os.path.join(ROOT, "build", "harness")


def check(binary, paths, timeout=120, clients=()):
    """Validate scenario files: {"scenarios": [...], "errors": [{file, line, col, message}]}.
    clients: the client registry files; a `when: {client: NAME}` naming none of their
    clients is an error (harness check --clients)."""
    if not os.path.exists(binary):
        raise HarnessError("the harness binary %s does not exist (make harness, or "
                           "--harness-bin / HARNESS_BIN)" % binary)
    try:
        registries = [a for f in clients for a in ("--clients", str(f))]
        proc = subprocess.run([binary, "check", "--json"] + registries + [str(p) for p in paths],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise HarnessError("harness check failed: %s" % err) from None
    try:
        doc = json.loads(proc.stdout.decode("utf-8"))
        if not isinstance(doc, dict) or not isinstance(doc.get("scenarios"), list):
            raise ValueError("no scenarios list")
    except ValueError as err:
        raise HarnessError("harness check --json (exit %s) printed no valid JSON (%s): %s%s"
                           % (proc.returncode, err, proc.stdout[:300].decode("utf-8", "replace"),
                              proc.stderr[-1000:].decode("utf-8", "replace"))) from None
    doc.setdefault("errors", [])
    return doc


TOKEN_HEADER = "X-Harness-Token"
_ORIGIN = re.compile(r"^https?://[^/]+/?$")


def default_roots():
    """The folders the server may read scenario files from when none are given: the
    working directory and the repository (or the installed share/comet-harness)."""
    return [os.getcwd(), ROOT]


class HarnessServer:
    """A running `harness serve`, reached through its control API.

    origins: {name: origin} as the ready line gives them (main, cross, alt, main_tls,
    cross_tls, alt_tls, cert_expired, …); ca: the path of the CA file the https origins'
    certificates chain to (None from a server without TLS).

    roots: the folders whose scenario files .load() may name (`harness serve --root`; the
    server refuses any other file); default: default_roots()."""

    def __init__(self, binary, ready_timeout=30, roots=None):
        if not os.path.exists(binary):
            raise HarnessError("the harness binary %s does not exist (make harness, or "
                               "--harness-bin / HARNESS_BIN)" % binary)
        self.binary = binary
        self.roots = []
        for r in (default_roots() if roots is None else roots):
            r = os.path.abspath(str(r))
            if os.path.isdir(r) and r not in self.roots:
                self.roots.append(r)
        self._stderr = collections.deque(maxlen=200)
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        args = [binary, "serve", "--port", "0", "--quiet"]
        for r in self.roots:
            args += ["--root", r]
        try:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE)
        except OSError as err:
            raise HarnessError("cannot start %s serve: %s" % (binary, err)) from None
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        ready = self._read_ready(ready_timeout)
        missing = [k for k in ("main", "cross", "alt", "control", "token") if not ready.get(k)]
        if missing:
            self.stop()
            raise HarnessError("the ready line of %s has no %s: %.300s"
                               % (binary, ", ".join(missing), json.dumps(ready)))
        # every origin the ready line names (main, cross, alt, their https twins main_tls…,
        # the deliberately wrong certificates cert_*: docs/tls.md), and the CA to trust
        self.origins = {k: v.rstrip("/") for k, v in ready.items()
                        if k != "control" and isinstance(v, str) and _ORIGIN.match(v)}
        self.ca = ready.get("ca") or None
        self.control = ready["control"].rstrip("/")
        self.token = ready["token"]
        self.page = self.origins["main"] + "/_harness/page"
        threading.Thread(target=self._drain_stdout, daemon=True).start()
        self.version = self._version()

    def _drain_stderr(self):
        for raw in self.proc.stderr:
            self._stderr.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def _drain_stdout(self):
        for _ in self.proc.stdout:
            pass

    def stderr_tail(self, n=30):
        return "\n".join(list(self._stderr)[-n:])

    def _read_ready(self, timeout):
        end = time.monotonic() + timeout
        fd = self.proc.stdout
        while time.monotonic() < end:
            readable, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
            if not readable:
                break
            line = fd.readline()
            if not line:
                self.proc.wait(5)
                raise HarnessError("harness serve exited (status %s) before it was ready:\n%s"
                                   % (self.proc.returncode, self.stderr_tail()))
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict) and msg.get("event") == "ready":
                return msg
        self.stop()
        raise HarnessError("harness serve printed no ready line within %d s:\n%s"
                           % (timeout, self.stderr_tail()))

    def _version(self):
        try:
            answer = self.api("GET", "/_harness/version")
        except HarnessError:
            return None
        if isinstance(answer, dict):
            return answer.get("version") or json.dumps(answer)
        return answer

    def api(self, method, path, body=None, timeout=15):
        """One control API call; the decoded JSON answer (None for an empty body)."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.control + path, data=data, method=method,
                                     headers={"Content-Type": "application/json",
                                              TOKEN_HEADER: self.token})
        try:
            with self._opener.open(req, timeout=timeout) as resp:
                text = resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as err:
            detail = err.read().decode("utf-8", "replace")
            raise HarnessError("control API %s %s: %s %s" % (method, path, err.code,
                                                             detail.strip()[:2000])) from None
        except (OSError, urllib.error.URLError) as err:
            state = "" if self.alive() else " (the server exited with status %s)" \
                % self.proc.returncode
            raise HarnessError("control API %s %s: %s%s\n%s" % (
                method, path, err, state, self.stderr_tail(10))) from None
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except ValueError:
            return text

    def load(self, file, instance_id):
        """Load a scenario file as a new instance; the control API's answer."""
        try:
            answer = self.api("POST", "/_harness/instances",
                              {"file": os.path.abspath(file), "id": instance_id})
        except HarnessError as err:
            if "outside the allowed folders" in str(err):
                raise HarnessError("%s (the server's roots: %s)" % (err, ", ".join(self.roots))) \
                    from None
            raise
        if not isinstance(answer, dict) or "instance" not in answer:
            raise HarnessError("control API: loading %s answered %.300r" % (file, answer))
        return answer

    def journal(self, instance_id):
        answer = self.api("GET", "/_harness/instances/%s/journal" % urllib.parse.quote(instance_id))
        if not isinstance(answer, dict):
            raise HarnessError("control API: the journal of %s is %.300r" % (instance_id, answer))
        return answer

    def wait(self, instance_id, count, route=None, timeout_ms=1000):
        """Wait until `count` requests (of one route) arrived, or the timeout passed."""
        query = {"count": count, "timeout": int(timeout_ms)}
        if route is not None:
            query["route"] = route
        return self.api("GET", "/_harness/instances/%s/wait?%s" % (
            urllib.parse.quote(instance_id), urllib.parse.urlencode(query)),
            timeout=timeout_ms / 1000.0 + 10)

    def unload(self, instance_id):
        self.api("DELETE", "/_harness/instances/%s" % urllib.parse.quote(instance_id))

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
