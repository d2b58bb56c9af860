"""procs.py — the processes a browser adapter (or `make grid`) starts for itself: a free
loopback port, an Xvfb of its own, a WebKitWebDriver under it, and killing a process with
everything it started.

Used by webkit.py (its private Xvfb + WebKitWebDriver) and grid/grid.py (the Xvfb and
WebKitWebDriver behind the Selenium Grid's WebKit relay), so both start them the same way.
Nothing here writes to stdout (the adapters' stdout is the protocol).
"""
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

WEBDRIVER = shutil.which("WebKitWebDriver") or "/usr/bin/WebKitWebDriver"
XVFB = shutil.which("Xvfb") or "/usr/bin/Xvfb"
XVFB_START_S = 15
DRIVER_START_S = 20
PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def descendants(pid):
    """The pids of pid's children, grandchildren… (from /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as f:
                stat = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def carrying(name, value):
    """The pids of the processes whose environment has name=value (from /proc): what a
    process started, even once it has died and left them to init (a browser puppeteer
    started in a process group of its own inherits its adapter's environment)."""
    want = ("%s=%s" % (name, value)).encode()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as f:
                env = f.read()
        except OSError:
            continue
        if want in env.split(b"\0"):
            out.append(int(entry))
    return out


def kill_tree(proc, sig=signal.SIGKILL):
    """Kill a process we started and everything it started."""
    if proc is None:
        return
    pids = descendants(proc.pid) if proc.poll() is None else []
    for pid in [proc.pid] + pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def drain(stream, what):
    """Copy a child's output to our stderr, line by line, prefixed (in a daemon thread)."""
    def loop():
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                print("%s: %s" % (what, line), file=sys.stderr, flush=True)
    threading.Thread(target=loop, daemon=True).start()


def start_xvfb(stderr=subprocess.PIPE, **popen):
    """An Xvfb on a display number it picks itself (`-displayfd`: two started at once never
    race for one). Returns (process, ":N"); with stderr=PIPE its log goes to our stderr."""
    r, w = os.pipe()
    try:
        proc = subprocess.Popen(
            [XVFB, "-displayfd", str(w), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            pass_fds=(w,), **popen)
    finally:
        os.close(w)
    if stderr == subprocess.PIPE:
        drain(proc.stderr, "Xvfb")
    number = b""
    end = time.monotonic() + XVFB_START_S
    with os.fdopen(r, "rb", buffering=0) as f:
        os.set_blocking(r, False)
        while time.monotonic() < end and not number.endswith(b"\n"):
            try:
                data = f.read(16)
            except BlockingIOError:
                data = None
            if data == b"":
                break
            if data:
                number += data
            elif proc.poll() is not None:
                break
            else:
                time.sleep(0.05)
    if not number.strip().isdigit():
        status = proc.poll()
        kill_tree(proc)
        raise RuntimeError("Xvfb did not start (exit status %s)" % status)
    return proc, ":" + number.strip().decode()


SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"


def trust_bundle(ca_file, folder):
    """A CA bundle in folder: the system's CAs and then ca_file's. Returns its path."""
    path = os.path.join(folder, "ca-certificates.crt")
    with open(path, "wb") as out:
        for src in (SYSTEM_CA_BUNDLE, ca_file):
            try:
                with open(src, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                if src == ca_file:
                    raise
                continue
            out.write(data if data.endswith(b"\n") else data + b"\n")
    return path


def private_hosts(names, folder):
    """A copy of /etc/hosts in folder with each of names on 127.0.0.1. Returns its path."""
    path = os.path.join(folder, "hosts")
    try:
        with open("/etc/hosts", "rb") as f:
            data = f.read()
    except OSError:
        data = b"127.0.0.1 localhost\n"
    with open(path, "wb") as out:
        out.write(data if data.endswith(b"\n") or not data else data + b"\n")
        out.write(("127.0.0.1 %s\n" % " ".join(names)).encode())
    return path


def start_webkit_driver(display, port=None, stderr=subprocess.PIPE, ca_bundle=None, hosts=None,
                        **popen):
    """WebKitWebDriver on a loopback port (a free one by default), driving MiniBrowser on
    display; waits until it listens. Returns (process, port).

    ca_bundle: a bundle (trust_bundle()) that WebKit must trust instead of the system's.
    glib-networking's GnuTLS backend reads only SYSTEM_CA_BUNDLE (compiled in; no
    environment variable changes it: docs/tls.md), so the driver and everything it starts
    run in a mount namespace of their own (unshare, as root) where the bundle is
    bind-mounted over that file; the system's file is untouched.
    hosts: likewise a hosts file (private_hosts()) over /etc/hosts, in the same namespace:
    WebKit has no resolver setting of its own."""
    env = dict(os.environ, DISPLAY=display, NO_AT_BRIDGE="1", GDK_BACKEND="x11")
    env.pop("WAYLAND_DISPLAY", None)
    for var in PROXY_VARS:
        env.pop(var, None)  # the harness is on loopback
    port = port or free_port()
    argv = [WEBDRIVER, "--port=%d" % port]
    binds = [(src, dst) for src, dst in ((ca_bundle, SYSTEM_CA_BUNDLE), (hosts, "/etc/hosts"))
             if src]
    if binds:
        mounts = " && ".join("mount --bind %s %s" % (shlex.quote(src), dst) for src, dst in binds)
        argv = [UNSHARE, "--mount", "--propagation", "private", "sh", "-c",
                mounts + ' && exec "$@"', "webkit-ns"] + argv
    proc = subprocess.Popen(argv, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=stderr, **popen)
    if stderr == subprocess.PIPE:
        drain(proc.stderr, "WebKitWebDriver")
    end = time.monotonic() + DRIVER_START_S
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("WebKitWebDriver exited with status %s" % proc.poll())
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    kill_tree(proc)
    raise RuntimeError("WebKitWebDriver did not listen on port %d" % port)
