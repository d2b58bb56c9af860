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

report.html shows what failed first (fail, xpass, error: each a link to its cell), then
the matrix of scenarios × clients by area, with filters by area, client and outcome. A
cell's details (expected vs observed, the journal, the observations…) are not in the page:
they are in report-details/N.js beside it, loaded when a cell is opened, so that the page
stays light at 10,000 runs. summary.md is cut to fit a pull-request comment and links to
the full report.

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
        "started": meta.get("started"), "finished": meta.get("finished"),
        "shard": meta.get("shard"),
        **({"shards": meta["shards"]} if meta.get("shards") else {}),
        "results": sorted(records, key=lambda r: (r["area"], r["id"], r["client"])),
    }


def _md(text):
    return str(text or "").replace("|", "\\|").replace("\n", " ")


SUMMARY_LIMIT = 60000  # a pull-request comment holds 65,536 characters


def summary_md(records, meta, limit=SUMMARY_LIMIT):
    """A Markdown summary for a pull-request comment, at most `limit` characters: the
    totals, then the failures, errors and the rest as long as they fit, then a pointer to
    the full report (meta["report_url"], default report.html)."""
    clients = clients_of(records, meta)
    by_client, by_area = totals(records)
    n = Counter(r["outcome"] for r in records)
    url = meta.get("report_url") or "report.html"
    head = "## Comet Harness conformance: %d runs, %d scenarios × %d clients" % (
        len(records), len({r["id"] for r in records}), len(clients))
    bad = [("failures", n[FAIL]), ("errors", n[ERROR]), ("unexpected passes", n[XPASS])]
    status = ", ".join("%d %s" % (k, w) for w, k in bad if k) or "no failures"
    lines = [head, "", "**%s** · full report: [report.html](%s)" % (status, url), ""]
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
    # The rest, block by block (a block is never cut: a <details> stays whole).
    blocks = []
    if meta.get("collect_errors"):
        block = ["", "### Invalid scenario files", ""]
        for e in meta["collect_errors"]:
            block.append("- `%s:%s:%s`: %s" % (e.get("file"), e.get("line"), e.get("col"),
                                               _md(e.get("message"))))
        blocks.append(block)
    sections = [(FAIL, "Failures"), (XPASS, "Unexpected passes (update drivers/expectations/)"),
                (ERROR, "Errors (adapter or harness, not the client)"),
                (NON_STRICT, "Non-strict (SHOULD-level checks that failed)")]
    for outcome, title in sections:
        rows = [r for r in records if r["outcome"] == outcome]
        if not rows:
            continue
        blocks.append(["", "### %s (%d)" % (title, len(rows)), ""])
        for r in sorted(rows, key=lambda r: (r["id"], r["client"]))[:100]:
            spec = " ([spec](%s))" % r["spec"] if r.get("spec") else ""
            block = ["- `%s` [%s]%s: %s" % (r["id"], r["client"], spec, _md(r["message"]))]
            if r.get("details") and outcome in (FAIL, ERROR):
                block += ["  <details><summary>details</summary>", "", "  ```"]
                block += ["  " + l.replace("```", "ˋˋˋ") for l in r["details"].splitlines()[:60]]
                block += ["  ```", "  </details>"]
            blocks.append(block)
        if len(rows) > 100:
            blocks.append(["- … and %d more (see [the full report](%s))" % (len(rows) - 100, url)])
    for client, ids in (meta.get("stale_expectations") or {}).items():
        blocks.append(["", "Stale expectations for %s (no such scenario): %s"
                       % (client, ", ".join("`%s`" % i for i in ids))])
    size = sum(len(l) + 1 for l in lines)
    for n_block, block in enumerate(blocks):
        block_size = sum(len(l) + 1 for l in block)
        left = sum(1 for b in blocks[n_block:] for l in b if l.startswith("- "))
        cut = "\n… the summary stops here to fit a pull-request comment: %s in [the full " \
              "report](%s).\n" % ("%d more entr%s" % (left, "y is" if left == 1 else "ies are")
                                  if left else "the rest is", url)
        if size + block_size + len(cut) > limit:
            return "\n".join(lines) + "\n" + cut
        lines += block
        size += block_size
    return "\n".join(lines) + "\n"


DETAILS_DIR = "report-details"  # beside report.html: the details of the cells, in parts
DETAILS_PER_FILE = 250
DETAIL_KEYS = ("id", "title", "spec", "file", "line", "client", "client_version", "outcome",
               "message", "duration", "instance", "known_failure", "error_kind", "checks",
               "details", "notes", "journal", "journal_entries", "timeline", "observations",
               "expect", "stderr")


def ordered(records):
    """The records in the report's order; a record's anchor is r<its index here>."""
    return sorted(records, key=lambda r: (r["area"], r["id"], r["client"]))


def detail_files(records):
    """{file name: text} of the cells' details, DETAILS_PER_FILE cells a file: a script
    each (loaded on demand by report.html, which works from file:// too)."""
    files = {}
    for n, r in enumerate(ordered(records)):
        part = n // DETAILS_PER_FILE
        files.setdefault("%d.js" % part, {})["r%d" % n] = {k: r.get(k) for k in DETAIL_KEYS}
    return {name: "cometDetails(%s);\n" % json.dumps(cells, ensure_ascii=False, default=str)
            for name, cells in files.items()}


def report_html(records, meta):
    """The conformance matrix (report.html), rendered with Jinja2. The details of each
    cell are not in the page: they are loaded from report-details/ when it is opened."""
    import jinja2
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             trim_blocks=True, lstrip_blocks=True)
    clients = clients_of(records, meta)
    by_client, by_area = totals(records)
    areas = OrderedDict()
    failing = []
    for n, r in enumerate(ordered(records)):
        cell = {"anchor": "r%d" % n, "outcome": r["outcome"], "message": r.get("message") or "",
                "id": r["id"], "client": r["client"], "area": r["area"]}
        rows = areas.setdefault(r["area"], OrderedDict())
        row = rows.setdefault(r["id"], {"id": r["id"], "title": r.get("title"),
                                         "spec": r.get("spec"), "cells": {}})
        row["cells"][r["client"]] = cell
        if r["outcome"] in FAILING:
            failing.append(cell)
    failing.sort(key=lambda c: (FAILING.index(c["outcome"]), c["id"], c["client"]))
    info = {c.get("name"): c for c in meta.get("clients", [])}
    return env.get_template("report.html.j2").render(
        records=records, clients=clients, info=info, areas=areas, by_client=by_client,
        by_area=by_area, outcomes=OUTCOMES, meta=meta, failing=failing,
        failing_outcomes=FAILING, details_dir=DETAILS_DIR, per_file=DETAILS_PER_FILE,
        generated=datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        total=Counter(r["outcome"] for r in records))


def _write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_all(results_dir, records, meta):
    """Write results.json, summary.md, report.html and report-details/; the paths of the
    first three."""
    os.makedirs(results_dir, exist_ok=True)
    details = os.path.join(results_dir, DETAILS_DIR)
    os.makedirs(details, exist_ok=True)
    for name in os.listdir(details):  # the parts of an earlier run
        if name.endswith(".js"):
            os.unlink(os.path.join(details, name))
    for name, text in detail_files(records).items():
        _write(os.path.join(details, name), text)
    out = []
    for name, text in (("results.json", json.dumps(results_json(records, meta), indent=1,
                                                    ensure_ascii=False, default=str)),
                       ("summary.md", summary_md(records, meta)),
                       ("report.html", report_html(records, meta))):
        path = os.path.join(results_dir, name)
        _write(path, text)
        out.append(path)
    return out
