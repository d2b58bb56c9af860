"""What make bench writes: the goals judged per repetition, the table (Markdown), the JSON
and the latency CDF plots. It reads the measurements the driver (bench.py) gathered:

    runs[group][server] = [one dict of figures per repetition, or None when not measured]

Groups: get, burst<N> (one per burst size), sse, idle, startup. The goals are the issue's
("ratios in the same run"): each compares the harness with nginx in the same repetition.
"""
import json
import math
import os
import statistics

SERVERS = ["harness", "nginx", "mountebank", "wiremock"]
TITLES = {"harness": "harness", "nginx": "nginx", "mountebank": "Mountebank",
          "wiremock": "WireMock"}


def quantile(values, q, total=None):
    """The q-quantile (nearest rank) of values, where total - len(values) more samples
    (failures) count as infinitely late; None when there is nothing."""
    total = len(values) if total is None else total
    if not total:
        return None
    vals = sorted(values)
    k = max(0, math.ceil(q * total) - 1)
    return vals[k] if k < len(vals) else math.inf


def spread(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs), "n": len(xs)}


def metric(runs, group, server, key):
    """The values of one figure over the repetitions (None where not measured)."""
    reps = runs.get(group, {}).get(server) or []
    return [r.get(key) if r and not r.get("error") else None for r in reps]


def goals(runs, params, cores):
    """Each goal judged per repetition: [{id, text, reps: [{value, limit, pass}]}]."""
    out = []
    nreps = params["reps"]

    def goal(gid, text, judge, unit=""):
        reps = []
        for i in range(nreps):
            try:
                value, limit, ok = judge(i)
            except (TypeError, ZeroDivisionError, IndexError, KeyError):
                value, limit, ok = None, None, None
            reps.append({"value": value, "limit": limit, "pass": ok})
        out.append({"id": gid, "text": text, "unit": unit, "reps": reps})

    def at(group, server, key, i):
        return metric(runs, group, server, key)[i]

    goal("get.throughput", "13-byte GET throughput >= 0.8 x nginx",
         lambda i: (at("get", "harness", "rps", i) / at("get", "nginx", "rps", i), 0.8,
                    at("get", "harness", "rps", i) >= 0.8 * at("get", "nginx", "rps", i)),
         " x nginx")
    goal("get.cpu", "the same from CPU per request (1 / CPU us; what a shared CPU does not "
         "skew): >= 0.8 x nginx",
         lambda i: (at("get", "nginx", "cpu_us", i) / at("get", "harness", "cpu_us", i), 0.8,
                    at("get", "nginx", "cpu_us", i) >= 0.8 * at("get", "harness", "cpu_us", i)),
         " x nginx")
    for n in params["bursts"]:
        g = "burst%d" % n

        def judge(i, g=g, n=n):
            limit = n * at("get", "nginx", "cpu_us", i) / cores / 1000  # ms
            p99 = at(g, "harness", "p99_ms", i)
            return p99, 2 * limit, p99 <= 2 * limit
        goal(g, "%d concurrent 1 s delays: p99 lateness <= 2 x (N x nginx CPU us/req / %d server core%s)"
             % (n, cores, "" if cores == 1 else "s"), judge, " ms")
    goal("sse.lost", "%d SSE streams: 0 events lost" % params["sse_streams"],
         lambda i: (at("sse", "harness", "lost", i), 0, at("sse", "harness", "lost", i) == 0))
    goal("sse.rss", "%d SSE streams: peak RSS <= 64 MiB" % params["sse_streams"],
         lambda i: (at("sse", "harness", "hwm_mib", i), 64, at("sse", "harness", "hwm_mib", i) <= 64),
         " MiB")
    goal("sse.p99", "%d SSE streams: p99 event lateness <= 50 ms" % params["sse_streams"],
         lambda i: (at("sse", "harness", "p99_ms", i), 50, at("sse", "harness", "p99_ms", i) <= 50),
         " ms")
    goal("idle.bytes", "idle keep-alive connection <= 4 x nginx's bytes",
         lambda i: (at("idle", "harness", "bytes_per_conn", i),
                    4 * at("idle", "nginx", "bytes_per_conn", i),
                    at("idle", "harness", "bytes_per_conn", i)
                    <= 4 * at("idle", "nginx", "bytes_per_conn", i)), " B")
    goal("startup.ready", "%d scenarios: ready <= 50 ms" % params["scenarios"],
         lambda i: (at("startup", "harness", "ready_ms", i), 50,
                    at("startup", "harness", "ready_ms", i) <= 50), " ms")
    goal("startup.rss", "%d scenarios: RSS <= 20 MiB" % params["scenarios"],
         lambda i: (at("startup", "harness", "rss_mib", i), 20,
                    at("startup", "harness", "rss_mib", i) <= 20), " MiB")
    goal("check", "check of %d files <= 0.3 s" % params["check_files"],
         lambda i: (at("startup", "harness", "check_s", i), 0.3,
                    at("startup", "harness", "check_s", i) <= 0.3), " s")
    return out


# -- the Markdown table ----------------------------------------------------------------------

def num(x, digits=3):
    """A compact number: 53.1k, 590, 0.66, 18.4."""
    if x is None:
        return "?"
    if x == math.inf:
        return "inf"
    if abs(x) >= 10000:
        return "%.1fk" % (x / 1000)
    if abs(x) >= 100:
        return "%.0f" % x
    return ("%%.%dg" % digits) % x


def ranged(xs, unit=""):
    """median (min–max) of the repetitions, or the one value."""
    s = spread(xs)
    if not s:
        return None
    if s["n"] == 1 or num(s["min"]) == num(s["max"]):
        return num(s["median"]) + unit
    return "%s%s (%s–%s)" % (num(s["median"]), unit, num(s["min"]), num(s["max"]))


def ms(xs):
    """Milliseconds, as seconds once the median reaches 10 s."""
    s = spread(xs)
    if s and 10000 <= s["median"] < math.inf:
        return ranged([x / 1000 if x is not None else None for x in xs], " s")
    return ranged(xs, " ms")


def _cells(runs, params):
    """{row label: {server: cell text}} in the issue's layout."""
    rows = []

    def cell(group, server, build):
        reps = runs.get(group, {}).get(server)
        if reps is None:
            return None
        errors = [r["error"] for r in reps if r and r.get("error")]
        text = build(lambda k: metric(runs, group, server, k))
        if errors:
            text = (text + "; " if text else "") + "error: " + errors[0][:60]
        return text

    def get(m):
        return "%s req/s, %s µs CPU/req" % (ranged(m("rps")), ranged(m("cpu_us")))
    rows.append(("13-byte keep-alive GET (wrk -t1 -c%d, %g s)" % (params["wrk_conns"],
                                                                   params["wrk_seconds"]),
                 {s: cell("get", s, get) for s in SERVERS}))
    for n in params["bursts"]:
        def burst(m, n=n):
            failed = spread(m("failed_pct"))
            p99 = spread(m("p99_ms"))
            text = "%s late" % ms(m("p99_ms")) if p99 and p99["median"] != math.inf else ""
            if failed and failed["max"] > 0:
                text += "%s%s%% failed" % (", " if text else "", ranged(m("failed_pct")))
            return text

        def ref(m):
            return "reference: %s, no delay" % ms(m("p99_ms"))
        cells = {s: cell("burst%d" % n, s, burst) for s in SERVERS if s != "nginx"}
        cells["nginx"] = cell("burst%d" % n, "nginx", ref)
        rows.append(("%d concurrent 1 s delays, p99 lateness" % n, cells))

    def sse(m):
        return "%s lost, %s, p99 %s late" % (ranged(m("lost")), ranged(m("hwm_mib"), " MiB"),
                                              ms(m("p99_ms")))
    cells = {"harness": cell("sse", "harness", sse), "mountebank": "no SSE",
             "wiremock": "no SSE"}
    rows.append(("%d SSE streams, 1 event/s for %d s" % (params["sse_streams"],
                                                          params["sse_events"]), cells))

    def idle(m):
        b = spread(m("bytes_per_conn"))
        if b and b["median"] >= 10000:
            return ranged([x / 1024 if x is not None else None for x in m("bytes_per_conn")],
                          " KiB")
        return ranged(m("bytes_per_conn"), " B")
    rows.append(("bytes per idle keep-alive connection (%d held)" % params["idle_conns"],
                 {s: cell("idle", s, idle) for s in SERVERS}))

    def startup(m):
        cpu = ms(m("ready_cpu_ms"))
        return ", ".join(x for x in (ms(m("ready_ms")), cpu and "CPU " + cpu,
                                     ranged(m("rss_mib"), " MiB")) if x)
    rows.append(("ready with %d scenarios, RSS" % params["scenarios"],
                 {s: cell("startup", s, startup) for s in SERVERS if s != "nginx"}))

    def check(m):
        cpu = ranged(m("check_cpu_s"), " s")
        return ranged(m("check_s"), " s") + (", CPU " + cpu if cpu else "")
    rows.append(("`check` of %d files" % params["check_files"],
                 {"harness": cell("startup", "harness", check)}))
    return rows


def markdown(result):
    params, runs = result["params"], result["runs"]
    shown = [s for s in SERVERS if s in result["servers"]]
    lines = ["# make bench", "",
             "Server pinned to CPU %s, load generators to CPU %s; %d repetition(s): median "
             "(min–max). %s" % (result["meta"]["server_cpu"], result["meta"]["load_cpu"],
                                params["reps"], result["meta"]["machine"]), ""]
    lines.append("| figure | " + " | ".join(TITLES[s] for s in shown) + " |")
    lines.append("|---" * (len(shown) + 1) + "|")
    for label, cells in _cells(runs, params):
        if not any(c for s, c in cells.items() if c != "no SSE"):
            continue  # a group this run left out (--only)
        lines.append("| %s | %s |" % (label, " | ".join(cells.get(s) or "—" for s in shown)))
    lines += ["", "## Goals (harness against nginx in the same repetition)", "",
              "| goal | " + " | ".join("rep %d" % (i + 1) for i in range(params["reps"])) + " |",
              "|---" * (params["reps"] + 1) + "|"]
    for g in result["goals"]:
        if all(r["pass"] is None for r in g["reps"]):
            continue  # not measured in this run (--only)
        cells = []
        for r in g["reps"]:
            if r["pass"] is None:
                cells.append("n/a")
            else:
                u = g.get("unit", "")
                cells.append("%s %s%s (limit %s%s)" % ("PASS" if r["pass"] else "MISS",
                                                       num(r["value"]), u, num(r["limit"]), u))
        lines.append("| %s | %s |" % (g["text"], " | ".join(cells)))
    jv = [(n, runs.get("burst%d" % n, {}).get("harness")) for n in params["bursts"]]
    if any(reps for _, reps in jv):
        lines += ["", "## Delay accuracy as the harness's journal sees it", "",
                  "Headers queued minus arrival minus the 1000 ms delay, per request.", "",
                  "| burst | p50 | p99 | max |", "|---|---|---|---|"]
        for n, _ in jv:
            def m(k, n=n):
                return metric(runs, "burst%d" % n, "harness", k)
            lines.append("| %d concurrent | %s | %s | %s |" % (
                n, ranged(m("journal_p50_ms"), " ms"), ranged(m("journal_p99_ms"), " ms"),
                ranged(m("journal_max_ms"), " ms")))
    loads = [x for _, x in result["meta"]["load"]]
    lines += ["", "Load on the machine (1-minute average, %d samples between groups): %.2f at "
              "the start, %.2f–%.2f during, %.2f at the end." % (len(loads), loads[0], min(loads),
                                                                 max(loads), loads[-1])]
    others = [r.get("cpu1_others_pct") for per in runs.values() for reps in per.values()
              for r in reps if r and r.get("cpu1_others_pct") is not None]
    if others:
        lines[-1] += (" Other processes took %.0f–%.0f%% (median %.0f%%) of the server's CPU %s "
                      "during the timed loads." % (min(others), max(others),
                                                  statistics.median(others),
                                                  result["meta"]["server_cpu"]))
    if result.get("errors"):
        lines += ["", "## Errors", ""] + ["- " + e for e in result["errors"]]
    lines.append("")
    return "\n".join(lines)


# -- the CDF plots ---------------------------------------------------------------------------

def plots(out_dir, samples, params):
    """samples[group][server] = (lateness values in ms pooled over repetitions, total sent).
    One PNG per group: the fraction answered within x ms, one line per server."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ["matplotlib missing: no plots (scripts/ensure-deps bench)"]
    written = []
    for group, per in sorted(samples.items()):
        if not any(v for v, _ in per.values()):
            continue
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for server in SERVERS:
            if server not in per:
                continue
            vals, total = per[server]
            if not total:
                continue
            vals = sorted(vals)
            ys = [(i + 1) / total for i in range(len(vals))]
            label = TITLES[server] + (" (no delay: reference)" if server == "nginx"
                                      and group.startswith("burst") else "")
            ax.step([max(v, 0.01) for v in vals], ys, where="post", label=label)
        ax.set_xscale("log")
        ax.set_ylim(0, 1.01)
        ax.set_ylabel("fraction of %s" % ("events" if group == "sse" else "responses"))
        if group == "sse":
            ax.set_title("%d SSE streams, 1 event/s: event lateness" % params["sse_streams"])
        else:
            ax.set_title("%s concurrent 1 s delays: lateness" % group[len("burst"):])
        ax.set_xlabel("ms late against the schedule (log scale)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right")
        fig.tight_layout()
        path = os.path.join(out_dir, "cdf-%s.png" % group)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def finite(x):
    """x with every infinite or NaN number replaced by None (JSON has neither)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


def write(out_dir, result, samples):
    os.makedirs(out_dir, exist_ok=True)
    result["plots"] = [os.path.basename(p) for p in plots(out_dir, samples, result["params"])]
    with open(os.path.join(out_dir, "bench.json"), "w") as f:
        json.dump(finite(result), f, indent=1, allow_nan=False)
        f.write("\n")
    md = markdown(result)
    with open(os.path.join(out_dir, "bench.md"), "w") as f:
        f.write(md)
    return md
