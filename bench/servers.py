"""The servers make bench compares, each started on loopback with the same loads.

Every server answers three paths (PATHS) the same way:

    hello   a 13-byte body, "hello, world\\n", on a keep-alive connection
    delay   the same body after a 1 s delay (nginx has no delay: it answers at once and
            serves as the per-request reference)
    sse     an event stream (harness only): event K has data "K", one every EVERY ms

A server is started by start(kind, tmpdir, ...) pinned to CPU 1 (taskset) in a session of
its own; stop() ends that process group, and stop_all() (registered by the driver for
exit, Ctrl-C and SIGTERM) ends every one still running, so no run leaves a server behind
(and should the driver be killed outright, each server gets SIGTERM: PR_SET_PDEATHSIG).
"""
import ctypes
import json
import os
import select
import signal
import socket
import subprocess
import time

BODY = "hello, world\n"
SERVER_CPU = "1"

_running = []  # every Server started and not yet stopped


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, timeout=2.0):
    """The status of one GET on a fresh connection, or None when it could not be made."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                       % path).encode())
            head = s.recv(64)
        return int(head.split()[1])
    except (OSError, IndexError, ValueError):
        return None


def tree_pids(pid):
    """pid and all its descendants (nginx's workers)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids):
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / ticks


def cpu_busy(cpu):
    """Seconds CPU number cpu has run processes (user, nice, system; not interrupts)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu%s " % cpu):
                v = [int(x) for x in line.split()[1:]]
                return (v[0] + v[1] + v[2]) / os.sysconf("SC_CLK_TCK")  # user, nice, system
    return 0.0


class Contention:
    """How much of the server's CPU others took while a measurement ran (percent of the
    wall time): CPU 1's busy time minus the server's own CPU time."""

    def __init__(self, srv):
        self.srv, self.t0 = srv, time.monotonic()
        self.busy0, self.own0 = cpu_busy(SERVER_CPU), srv.cpu()

    def others_pct(self):
        wall = time.monotonic() - self.t0
        others = (cpu_busy(SERVER_CPU) - self.busy0) - (self.srv.cpu() - self.own0)
        return max(0.0, 100.0 * others / wall) if wall > 0 else None


def status_kib(pids, key):
    """The sum of one /proc/PID/status field (VmRSS, VmHWM) over pids, in KiB."""
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/status" % p) as f:
                total += next(int(line.split()[1]) for line in f if line.startswith(key + ":"))
        except (OSError, StopIteration):
            pass
    return total


class Server:
    """One running server: its process group, its port and the path of each load."""

    def __init__(self, kind, proc, port, paths, t_spawn, t_ready, logs):
        self.kind, self.proc, self.port, self.paths = kind, proc, port, paths
        self.t_spawn, self.t_ready, self.logs = t_spawn, t_ready, logs
        self.base = ""  # the harness's journal URL prefix, when there is one
        self.token = ""  # the harness's control token

    def pids(self):
        return tree_pids(self.proc.pid)

    def cpu(self):
        return cpu_seconds(self.pids())

    def rss_kib(self):
        return status_kib(self.pids(), "VmRSS")

    def hwm_kib(self):
        return status_kib(self.pids(), "VmHWM")

    def stop(self):
        if self in _running:
            _running.remove(self)
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        for f in self.logs:
            f.close()


def stop_all():
    for s in list(_running):
        s.stop()


def _die_with_parent():
    """In the child before exec: SIGTERM when the driver dies, even by SIGKILL."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _spawn(kind, argv, tmpdir, cwd=None, stdout=None):
    err = open(os.path.join(tmpdir, "%s.stderr" % kind), "wb")
    logs = [err]
    if stdout is None:
        stdout = open(os.path.join(tmpdir, "%s.stdout" % kind), "wb")
        logs.append(stdout)
    t0 = time.monotonic()
    proc = subprocess.Popen(["taskset", "-c", SERVER_CPU] + argv, stdout=stdout, stderr=err,
                            stdin=subprocess.DEVNULL, cwd=cwd or tmpdir,
                            start_new_session=True, preexec_fn=_die_with_parent)
    return proc, t0, logs


def _wait_http(proc, port, path, limit, what):
    """Polls GET path every 5 ms until it answers 200; the time it did."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with status %s before it was ready"
                               % (what, proc.returncode))
        if http_get(port, path, timeout=1.0) == 200:
            return time.monotonic()
        time.sleep(0.005)
    raise RuntimeError("%s not ready within %.0f s" % (what, limit))


# -- harness -----------------------------------------------------------------------------

HARNESS_ID = "bench.server"


def harness_scenario(sid=HARNESS_ID, events=10, every=1000, prefix=""):
    """A scenario with the three loads (prefix: the startup benchmark's distinct paths)."""
    evs = "\n".join("            - {after: %d, data: \"%d\"}" % (every, k) for k in range(events))
    return """id: %(sid)s
title: benchmark routes
spec: https://example.org/bench
client:
  http: {url: /hello}
server:
  routes:
    - name: hello
      match: {path: %(prefix)s/hello}
      response: {headers: [{Content-Type: text/plain}], body: "hello, world\\n"}
    - name: delay
      match: {path: %(prefix)s/delay}
      response: {headers: [{Content-Type: text/plain}], body: "hello, world\\n", delay: 1000}
    - name: sse
      match: {path: %(prefix)s/sse}
      response:
        sse:
          events:
%(evs)s
          then: close
""" % {"sid": sid, "evs": evs, "prefix": prefix}


def start_harness(binary, tmpdir, scenario_paths, ready_limit=30.0):
    proc, t0, logs = _spawn("harness", [binary, "serve", "--quiet", "--journal-limit", "20000"]
                            + list(scenario_paths), tmpdir, stdout=subprocess.PIPE)
    ready, _, _ = select.select([proc.stdout], [], [], ready_limit)
    line = proc.stdout.readline() if ready else b""
    t1 = time.monotonic()
    if not line:
        proc.kill()
        proc.wait()
        raise RuntimeError("harness serve printed no ready line (see %s/harness.stderr)" % tmpdir)
    info = json.loads(line)
    port = int(info["main"].rsplit(":", 1)[1])
    pre = "/s/%s" % HARNESS_ID
    s = Server("harness", proc, port, {k: pre + "/" + k for k in ("hello", "delay", "sse")},
               t0, t1, logs + [proc.stdout])
    # the control API is on its own port and wants the run's token (docs/control-api.md)
    s.base = info["control"] + "/_harness/instances/" + HARNESS_ID
    s.token = info["token"]
    _running.append(s)
    return s


# -- nginx ---------------------------------------------------------------------------------

NGINX_CONF = """daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 40000;
pid %(dir)s/nginx.pid;
error_log %(dir)s/nginx-error.log warn;
events { worker_connections 30000; use epoll; }
http {
    access_log off;
    client_body_temp_path %(dir)s/body;
    proxy_temp_path %(dir)s/proxy;
    fastcgi_temp_path %(dir)s/fastcgi;
    uwsgi_temp_path %(dir)s/uwsgi;
    scgi_temp_path %(dir)s/scgi;
    keepalive_timeout 300s;
    keepalive_requests 10000000;
    server {
        listen 127.0.0.1:%(port)d backlog=4096;
        default_type text/plain;
        location = /hello { return 200 "hello, world\\n"; }
        location = /delay { return 200 "hello, world\\n"; }
    }
}
"""


def start_nginx(tmpdir):
    port = free_port()
    d = os.path.join(tmpdir, "nginx")
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF % {"dir": d, "port": port})
    proc, t0, logs = _spawn("nginx", ["nginx", "-p", d, "-c", conf, "-e",
                                      os.path.join(d, "nginx-error.log")], tmpdir)
    s = Server("nginx", proc, port, {"hello": "/hello", "delay": "/delay"}, t0, None, logs)
    _running.append(s)
    s.t_ready = _wait_http(proc, port, "/hello", 15, "nginx")
    return s


# -- Mountebank ----------------------------------------------------------------------------

def mountebank_imposter(port, stubs=1, keepalive=True):
    """One imposter; stubs > 1 adds /sN/hello paths (the startup benchmark)."""
    headers = {"Content-Type": "text/plain"}
    if keepalive:
        headers["Connection"] = "keep-alive"  # Mountebank closes by default
    ok = {"is": {"statusCode": 200, "headers": headers, "body": BODY}}
    list_ = [{"predicates": [{"equals": {"path": "/hello"}}], "responses": [ok]},
             {"predicates": [{"equals": {"path": "/delay"}}],
              "responses": [dict(ok, behaviors=[{"wait": 1000}])]}]
    for i in range(stubs if stubs > 1 else 0):
        list_.append({"predicates": [{"equals": {"path": "/s%d/hello" % i}}], "responses": [ok]})
    return {"port": port, "protocol": "http", "recordRequests": False, "stubs": list_}


def start_mountebank(peers_dir, tmpdir, stubs=1):
    mb = os.path.join(peers_dir, "node_modules", "mountebank", "bin", "mb")
    port, api = free_port(), free_port()
    d = os.path.join(tmpdir, "mountebank")
    os.makedirs(d, exist_ok=True)
    cfg = os.path.join(d, "imposters.json")
    with open(cfg, "w") as f:
        json.dump({"imposters": [mountebank_imposter(port, stubs)]}, f)
    proc, t0, logs = _spawn("mountebank", ["node", mb, "start", "--port", str(api), "--host",
                                           "127.0.0.1", "--configfile", cfg, "--nologfile",
                                           "--loglevel", "error", "--pidfile",
                                           os.path.join(d, "mb.pid")], tmpdir, cwd=d)
    s = Server("mountebank", proc, port, {"hello": "/hello", "delay": "/delay"}, t0, None, logs)
    _running.append(s)
    s.t_ready = _wait_http(proc, port, "/s%d/hello" % (stubs - 1) if stubs > 1 else "/hello",
                           60, "Mountebank")
    return s


# -- WireMock ------------------------------------------------------------------------------

def wiremock_jar(peers_dir):
    d = os.path.join(peers_dir, "node_modules", "wiremock", "build")
    jars = sorted(f for f in os.listdir(d) if f.endswith(".jar")) if os.path.isdir(d) else []
    if not jars:
        raise RuntimeError("no WireMock jar under %s (scripts/ensure-deps bench-peers)" % d)
    return os.path.join(d, jars[-1])


def wiremock_mappings(d, stubs=1):
    os.makedirs(os.path.join(d, "mappings"), exist_ok=True)
    os.makedirs(os.path.join(d, "__files"), exist_ok=True)
    ok = {"status": 200, "headers": {"Content-Type": "text/plain"}, "body": BODY}
    maps = {"hello": {"request": {"method": "GET", "url": "/hello"}, "response": ok},
            "delay": {"request": {"method": "GET", "url": "/delay"},
                      "response": dict(ok, fixedDelayMilliseconds=1000)}}
    for i in range(stubs if stubs > 1 else 0):
        maps["s%d" % i] = {"request": {"method": "GET", "url": "/s%d/hello" % i}, "response": ok}
    for name, m in maps.items():
        with open(os.path.join(d, "mappings", name + ".json"), "w") as f:
            json.dump(m, f)


def start_wiremock(peers_dir, tmpdir, stubs=1):
    jar = wiremock_jar(peers_dir)
    port = free_port()
    d = os.path.join(tmpdir, "wiremock-%d" % stubs)
    wiremock_mappings(d, stubs)
    proc, t0, logs = _spawn("wiremock", ["java", "-jar", jar, "--port", str(port),
                                         "--bind-address", "127.0.0.1", "--root-dir", d,
                                         "--disable-banner",
                                         "--max-request-journal-entries", "10000"], tmpdir)
    s = Server("wiremock", proc, port, {"hello": "/hello", "delay": "/delay"}, t0, None, logs)
    _running.append(s)
    s.t_ready = _wait_http(proc, port, "/s%d/hello" % (stubs - 1) if stubs > 1 else "/hello",
                           120, "WireMock")
    return s
