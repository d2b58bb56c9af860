"""Shards: `--shard K/N` runs one deterministic, balanced slice of the scenario × client
runs, so that N machines (or N jobs of one) share a conformance run; `make merge`
(merge.py) puts the N results back together.

Every process (each xdist worker, each of the N jobs) computes the same partition of the
runs selected (after -k, -m and --client) from the same inputs: the runs, each with a
cost, spread over N shards by longest-processing-time-first (the costliest run first, each
to the shard with the least cost so far; ties by run name and shard number), so the shards
take about the same time. A run's cost is its `duration` in a previous results.json
(--shard-durations, default results/results.json when it exists: every job must read the
same file, a CI job a downloaded artifact or none); a run it does not list costs the
median of its client's listed runs. Without durations: 1 a run. Either way a run the
client's registry capabilities cannot do (unsupported) costs almost nothing.

The partition's fingerprint (a hash of every run's shard) goes into each shard's
results.json; merge.py refuses shards whose fingerprints differ (say, one job read other
durations) or that hold a run twice.
"""
import hashlib
import json
import os
import re
import statistics

UNSUPPORTED_COST = 0.001   # a run answered "unsupported" before any browser work
DEFAULT_COST = 1.0         # a supported run, when no durations are known
DURATIONS_DEFAULT = os.path.join("results", "results.json")

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class ShardError(ValueError):
    """A --shard value or a durations file that cannot be used."""


def parse(text):
    """"K/N" → (K, N), 1 <= K <= N."""
    m = _SPEC.match(str(text or ""))
    if not m:
        raise ShardError("--shard must be K/N (say 2/3), not %r" % text)
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 1 <= k <= n:
        raise ShardError("--shard %s: K must be between 1 and N" % text)
    return k, n


def load_durations(path):
    """{(scenario id, client): seconds} of the executed runs of a results.json ({} when
    the file does not exist)."""
    if not path or not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        out = {}
        for r in doc.get("results") or []:
            if r.get("outcome") not in ("unsupported", "skipped"):
                out[(r["id"], r["client"])] = float(r.get("duration") or 0.0)
        return out
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ShardError("--shard-durations %s: not a results.json (%s)" % (path, err)) from None


def costs(runs, durations):
    """{key: cost} of runs, a list of (key, scenario id, client, supported)."""
    medians = {}
    for (sid, client), seconds in durations.items():
        medians.setdefault(client, []).append(seconds)
    medians = {c: statistics.median(v) for c, v in medians.items()}
    out = {}
    for key, sid, client, supported in runs:
        if not supported:
            out[key] = UNSUPPORTED_COST
        elif (sid, client) in durations:
            out[key] = max(durations[(sid, client)], UNSUPPORTED_COST)
        else:
            out[key] = medians.get(client, DEFAULT_COST)
    return out


def partition(cost, n):
    """{key: shard index 0..n-1}: longest processing time first over cost {key: seconds}."""
    loads = [0.0] * n
    where = {}
    for key in sorted(cost, key=lambda k: (-cost[k], k)):
        i = min(range(n), key=lambda j: (loads[j], j))
        where[key] = i
        loads[i] += cost[key]
    return where


def fingerprint(where, n):
    """A short hash of a partition (which shard every run is in)."""
    h = hashlib.sha256(("%d\n" % n).encode())
    for key in sorted(where):
        h.update(("%s\t%d\n" % (key, where[key])).encode("utf-8"))
    return h.hexdigest()[:16]
