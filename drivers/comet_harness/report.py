"""The reports of a run: results.json, summary.md and report.html.

Input: one record per (scenario, client), as the plugin builds it (plugin.ScenarioItem
.record): id, title, spec, area, tags, file, client, client_version, outcome, message,
details (the failure text), checks, observations, journal, stderr, duration…

Outcomes:
    pass          every check held
    non-strict    only checks marked `strict: false` failed (a pass, noted)
    fail          a strict check failed: the client does not conform
    xfail         a failure listed in drivers/expectations/CLIENT.yaml (does not fail CI)
    xpass         a listed failure that passed (fails CI: update the list)
    unsupported   the client lacks what the scenario needs (skipped, with the reason)
    error         the adapter or the harness failed: no verdict on the client
    skipped       skipped for another reason

Everything here is a function of its arguments except write_all, which writes the files.
"""
import datetime
import json
import os
from collections import Counter, OrderedDict

PASS, NON_STRICT, FAIL = "pass", "non-strict", "fail"
XFAIL, XPASS, UNSUPPORTED, ERROR, SKIPPED = "xfail", "xpass", "unsupported", "error", "skipped"
OUTCOMES = (PASS, NON_STRICT, FAIL, XFAIL, XPASS, UNSUPPORTED, ERROR, SKIPPED)
# Outcomes that make the run fail (pytest's exit status agrees).
FAILING = (FAIL, XPASS, ERROR)
TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")


def trim(value, limit=4000):
    """A JSON value with long strings cut (observations can hold whole response bodies)."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "…(%d chars)" % len(value)
    if isinstance(value, list):
        out = [trim(v, limit) for v in value[:500]]
        if len(value) > 500:
            out.append("…(%d more)" % (len(value) - 500))
        return out
    if isinstance(value, dict):
        return {str(k): trim(v, limit) for k, v in value.items()}
    return value


def clients_of(records, meta=None):
    """Client names in a stable order: the run's order, then any other seen."""
    names = [c["name"] for c in (meta or {}).get("clients", [])]
    for r in records:
        if r["client"] not in names:
            names.append(r["client"])
    return names


def totals(records):
    """{client: Counter(outcome)} and the same per area: {area: {client: Counter}}."""
    by_client = OrderedDict()
    by_area = OrderedDict()
    for r in sorted(records, key=lambda r: (r["area"], r["id"])):
        by_client.setdefault(r["client"], Counter())[r["outcome"]] += 1
        by_area.setdefault(r["area"], OrderedDict()).setdefault(r["client"], Counter())[
            r["outcome"]] += 1
    return by_client, by_area


def totals_lines(records, clients=()):
    """One terminal line per client (in the given order first): counts of each outcome."""
    by_client, _ = totals(records)
    lines = []
    order = [c for c in clients if c in by_client] + [c for c in by_client if c not in clients]
    for client in order:
        counts = by_client[client]
        parts = ["%d %s" % (counts[o], o) for o in OUTCOMES if counts[o]]
        lines.append("%-18s %s" % (client, ", ".join(parts)))
    return lines


def results_json(records, meta):
    """The machine-readable results (results.json)."""
    by_client, by_area = totals(records)
    return {
        "format": 1,
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "harness_version": meta.get("harness_version"),
        "clients": meta.get("clients", []),
        "exitstatus": meta.get("exitstatus"),
        "outcomes": list(OUTCOMES),
        "totals": {c: dict(n) for c, n in by_client.items()},
        "areas": {a: {c: dict(n) for c, n in v.items()} for a, v in by_area.items()},
        "collect_errors": meta.get("collect_errors", []),
        "stale_expectations": meta.get("stale_expectations", {}),
        "results": sorted(records, key=lambda r: (r["area"], r["id"], r["client"])),
    }


def _md(text):
    return str(text or "").replace("|", "\\|").replace("\n", " ")


def summary_md(records, meta):
    """A Markdown summary for a pull-request comment."""
    clients = clients_of(records, meta)
    by_client, by_area = totals(records)
    n = Counter(r["outcome"] for r in records)
    head = "## Comet Harness conformance: %d runs, %d scenarios × %d clients" % (
        len(records), len({r["id"] for r in records}), len(clients))
    bad = [("failures", n[FAIL]), ("errors", n[ERROR]), ("unexpected passes", n[XPASS])]
    status = ", ".join("%d %s" % (k, w) for w, k in bad if k) or "no failures"
    lines = [head, "", "**%s**" % status, ""]
    info = {c.get("name"): c for c in meta.get("clients", [])}
    lines.append("| client | version | " + " | ".join(OUTCOMES) + " |")
    lines.append("|---|---|" + "---:|" * len(OUTCOMES))
    for c in clients:
        counts = by_client.get(c, Counter())
        lines.append("| %s | %s | %s |" % (c, _md(info.get(c, {}).get("version", "")),
                                           " | ".join(str(counts[o]) for o in OUTCOMES)))
    lines += ["", "### By area (passed / graded; ✗ failures, ⚠ errors)", ""]
    lines.append("| area | " + " | ".join(clients) + " |")
    lines.append("|---|" + "---|" * len(clients))
    for area, per in by_area.items():
        cells = []
        for c in clients:
            k = per.get(c, Counter())
            graded = sum(k[o] for o in (PASS, NON_STRICT, FAIL, XFAIL, XPASS))
            cell = "%d/%d" % (k[PASS] + k[NON_STRICT], graded)
            if k[FAIL] + k[XPASS]:
                cell += " ✗%d" % (k[FAIL] + k[XPASS])
            if k[ERROR]:
                cell += " ⚠%d" % k[ERROR]
            cells.append(cell)
        lines.append("| %s | %s |" % (area, " | ".join(cells)))
    sections = [(FAIL, "Failures"), (XPASS, "Unexpected passes (update drivers/expectations/)"),
                (ERROR, "Errors (adapter or harness, not the client)"),
                (NON_STRICT, "Non-strict (SHOULD-level checks that failed)")]
    for outcome, title in sections:
        rows = [r for r in records if r["outcome"] == outcome]
        if not rows:
            continue
        lines += ["", "### %s (%d)" % (title, len(rows)), ""]
        for r in sorted(rows, key=lambda r: (r["id"], r["client"]))[:100]:
            spec = " ([spec](%s))" % r["spec"] if r.get("spec") else ""
            lines.append("- `%s` [%s]%s: %s" % (r["id"], r["client"], spec, _md(r["message"])))
            if r.get("details") and outcome in (FAIL, ERROR):
                lines += ["  <details><summary>details</summary>", "", "  ```"]
                lines += ["  " + l for l in r["details"].splitlines()[:60]]
                lines += ["  ```", "  </details>"]
        if len(rows) > 100:
            lines.append("- … and %d more (see report.html)" % (len(rows) - 100))
    if meta.get("collect_errors"):
        lines += ["", "### Invalid scenario files", ""]
        for e in meta["collect_errors"]:
            lines.append("- `%s:%s:%s`: %s" % (e.get("file"), e.get("line"), e.get("col"),
                                               _md(e.get("message"))))
    for client, ids in (meta.get("stale_expectations") or {}).items():
        lines.append("")
        lines.append("Stale expectations for %s (no such scenario): %s"
                     % (client, ", ".join("`%s`" % i for i in ids)))
    return "\n".join(lines) + "\n"


def report_html(records, meta):
    """The conformance matrix (report.html), rendered with Jinja2."""
    import jinja2
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             trim_blocks=True, lstrip_blocks=True)
    clients = clients_of(records, meta)
    by_client, by_area = totals(records)
    areas = OrderedDict()
    for n, r in enumerate(sorted(records, key=lambda r: (r["area"], r["id"], r["client"]))):
        r = dict(r, anchor="r%d" % n)
        rows = areas.setdefault(r["area"], OrderedDict())
        row = rows.setdefault(r["id"], {"id": r["id"], "title": r.get("title"),
                                         "spec": r.get("spec"), "file": r.get("file"),
                                         "tags": r.get("tags") or [], "cells": {}})
        row["cells"][r["client"]] = r
    info = {c.get("name"): c for c in meta.get("clients", [])}
    return env.get_template("report.html.j2").render(
        records=records, clients=clients, info=info, areas=areas, by_client=by_client,
        by_area=by_area, outcomes=OUTCOMES, meta=meta, failing=FAILING,
        generated=datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        pretty=lambda v: json.dumps(v, indent=2, ensure_ascii=False, default=str),
        total=Counter(r["outcome"] for r in records))


def write_all(results_dir, records, meta):
    """Write results.json, summary.md and report.html; the paths written."""
    os.makedirs(results_dir, exist_ok=True)
    out = []
    for name, text in (("results.json", json.dumps(results_json(records, meta), indent=1,
                                                    ensure_ascii=False, default=str)),
                       ("summary.md", summary_md(records, meta)),
                       ("report.html", report_html(records, meta))):
        path = os.path.join(results_dir, name)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
        out.append(path)
    return out
