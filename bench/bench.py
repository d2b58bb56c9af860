#!/usr/bin/python3
"""Benchmarks of the server (speed goals live here, not in the tests).

    make bench                      # both benchmarks, default sizes
    /usr/bin/python3 bench/bench.py [--connections N] [--delay-ms MS] [HARNESS_BIN]

1. delay accuracy: 10 requests one at a time, then 100 concurrent requests, to a route with
   `delay: 500`; the error of each against 500 ms, from the client (time to the full
   response) and from the server's journal (headers queued minus arrival). Median and max.
2. held connections: N concurrent requests to a route that trickles its body for a few
   seconds (every connection suspended most of the time); the server's CPU time and peak
   RSS while they are held, and whether every one completed.
"""
import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCENARIO = """id: bench.server
title: benchmark routes
spec: https://example.org/bench
client:
  http: {url: /d}
server:
  routes:
    - name: delay
      match: {path: /d}
      response: {body: ok, delay: %(delay)d}
    - name: trickle
      match: {path: /t}
      response: {body: "%(body)s", trickle: {bytes: 1, every: %(every)d}}
"""


def start(binary, scenario_path):
    proc = subprocess.Popen([binary, "serve", "--quiet", "--journal-limit", "20000",
                             scenario_path], stdout=subprocess.PIPE)
    ready = json.loads(proc.stdout.readline())
    return proc, ready


async def get(host, port, path):
    t0 = time.monotonic()
    r, w = await asyncio.open_connection(host, port)
    w.write(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
    await w.drain()
    data = await r.read()
    w.close()
    return time.monotonic() - t0, data


def cpu_and_rss(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    with open("/proc/%d/status" % pid) as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))
    return cpu, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary", nargs="?", default=os.path.join(ROOT, "build", "harness"))
    ap.add_argument("--connections", type=int, default=5000)
    ap.add_argument("--delay-ms", type=int, default=500)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    path = "/tmp/comet-bench-%d.yaml" % os.getpid()
    with open(path, "w") as f:
        f.write(SCENARIO % {"delay": args.delay_ms, "body": "x" * 5, "every": 1000})
    proc, ready = start(args.binary, path)
    host, port = "127.0.0.1", int(ready["main"].rsplit(":", 1)[1])
    journal_url = ready["control"] + "/_harness/instances/bench.server/journal"
    reset_url = ready["control"] + "/_harness/instances/bench.server/reset"
    token = {"X-Harness-Token": ready["token"]}
    try:
        def delay_rows(label, concurrent):
            """The error of each delay, from the client and from the journal."""
            async def delays():
                if concurrent:
                    return await asyncio.gather(*[get(host, port, "/s/bench.server/d")
                                                  for _ in range(100)])
                return [await get(host, port, "/s/bench.server/d") for _ in range(10)]
            urllib.request.urlopen(urllib.request.Request(reset_url, data=b"{}", method="POST",
                                                          headers=token))
            results = asyncio.run(delays())
            client_err = [abs(t * 1000 - args.delay_ms) for t, _ in results]
            journal = json.load(urllib.request.urlopen(urllib.request.Request(journal_url,
                                                                              headers=token)))
            server_err = [abs(e["phases"]["headers_sent"] - e["arrived"] - args.delay_ms)
                          for e in journal["entries"]]
            print("| %s | client (full response) | %.2f | %.2f |" % (
                label, statistics.median(client_err), max(client_err)))
            print("| %s | server journal (queued - arrived) | %.3f | %.3f |" % (
                label, statistics.median(server_err), max(server_err)))

        print("## %d ms delays" % args.delay_ms)
        print("| requests | view | median error (ms) | max error (ms) |")
        print("|---|---|---|---|")
        delay_rows("10, one at a time", False)
        delay_rows("100 concurrent", True)

        cpu0, _ = cpu_and_rss(proc.pid)

        async def held():
            sem = asyncio.Semaphore(1000)  # open connections in waves, hold them all

            async def one():
                async with sem:
                    r, w = await asyncio.open_connection(host, port)
                w.write(b"GET /s/bench.server/t HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                await w.drain()
                data = await r.read()
                w.close()
                return data.endswith(b"xxxxx")
            t0 = time.monotonic()
            ok = await asyncio.gather(*[one() for _ in range(args.connections)],
                                      return_exceptions=True)
            return ok, time.monotonic() - t0
        ok, wall = asyncio.run(held())
        cpu1, rss = cpu_and_rss(proc.pid)
        done = sum(1 for x in ok if x is True)
        print()
        print("## %d concurrent trickled responses (5 bytes, 1 per second)" % args.connections)
        print("| completed | wall (s) | server CPU (s) | server peak RSS (MiB) |")
        print("|---|---|---|---|")
        print("| %d/%d | %.1f | %.2f | %.1f |" % (done, args.connections, wall, cpu1 - cpu0,
                                                rss / 1024))
    finally:
        proc.terminate()
        proc.wait(20)
        os.unlink(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
