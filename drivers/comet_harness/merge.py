"""Merging the results of shards (--shard K/N, shard.py) into the results of one run.

    make merge SHARDS="results-1 results-2 results-3"          # into results/
    PYTHONPATH=drivers /usr/bin/python3 -m comet_harness.merge [--results DIR] \\
        [--report-url URL] [--fail] DIR...

Each DIR holds what one shard wrote (results.json, junit.xml). The merge keeps every
run's record and recomputes everything else from them, as the plugin does at the end of
a run: results.json (totals, areas, clients, the exit status), summary.md, report.html
with report-details/, and junit.xml (one suite per client, its counts, properties and
non-strict properties; junit.py): the same content as one unsharded run gives (only times,
timestamps and instance names differ).

It refuses (exit 2, nothing written) shards of different partitions (one read other
durations, or other options), two shards of one number, a missing shard, and a run found
twice. Exit 0 once written; with --fail, the merged run's exit status instead (0: all as
expected, 1: a failure or error, 2: an invalid scenario file).
"""
import argparse
import json
import os
import sys
import xml.etree.ElementTree as ET

from . import junit, report

EXIT_OK, EXIT_MERGE_ERROR = 0, 2


class MergeError(ValueError):
    """Shards that do not make one run."""


def read_shard(folder):
    """(results.json as a dict, junit tree or None) of one shard's folder."""
    path = os.path.join(folder, "results.json")
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as err:
        raise MergeError("%s: %s (did the shard run?)" % (path, err.strerror)) from None
    except ValueError as err:
        raise MergeError("%s: not JSON: %s" % (path, err)) from None
    if not isinstance(doc, dict) or doc.get("format") != 1 or \
            not isinstance(doc.get("results"), list):
        raise MergeError("%s: not a results.json of format 1" % path)
    tree = None
    xml = os.path.join(folder, "junit.xml")
    if os.path.exists(xml):
        try:
            tree = ET.parse(xml)
        except ET.ParseError as err:
            raise MergeError("%s: %s" % (xml, err)) from None
    return doc, tree


def check_shards(folders, docs):
    """MergeError unless the shards are the N parts of one partition, each once."""
    shards = [(f, d.get("shard")) for f, d in zip(folders, docs) if d.get("shard")]
    if not shards:
        return
    if len(shards) != len(docs):
        raise MergeError("%s: not a shard (no --shard), unlike %s" % (
            next(f for f, d in zip(folders, docs) if not d.get("shard")), shards[0][0]))
    first_folder, first = shards[0]
    for folder, s in shards[1:]:
        if (s.get("count"), s.get("partition")) != (first.get("count"), first.get("partition")):
            raise MergeError(
                "%s (shard %s/%s, partition %s) and %s (shard %s/%s, partition %s) are slices "
                "of different partitions: every shard must run the same scenarios, clients "
                "and options, balanced by the same --shard-durations file" % (
                    folder, s.get("index"), s.get("count"), s.get("partition"), first_folder,
                    first.get("index"), first.get("count"), first.get("partition")))
    seen = {}
    for folder, s in shards:
        if s["index"] in seen:
            raise MergeError("%s and %s are both shard %d/%d" % (seen[s["index"]], folder,
                                                                s["index"], s["count"]))
        seen[s["index"]] = folder
    missing = sorted(set(range(1, first["count"] + 1)) - set(seen))
    if missing:
        raise MergeError("shard%s %s of %d missing" % (
            "s" if len(missing) > 1 else "", ", ".join(map(str, missing)), first["count"]))


def merge_records(folders, docs):
    records, where = [], {}
    for folder, doc in zip(folders, docs):
        for r in doc["results"]:
            key = (r.get("id"), r.get("client"))
            if key in where:
                raise MergeError("%s [%s] is in both %s and %s" % (key[0], key[1],
                                                                   where[key], folder))
            where[key] = folder
            records.append(r)
    return records


def _union(lists):
    out = []
    for items in lists:
        for x in items or []:
            if x not in out:
                out.append(x)
    return out


def merge_meta(docs, records, report_url=None):
    """The run's meta (as recorder.py gives it) from the shards' results.json."""
    clients = []
    for doc in docs:
        for c in doc.get("clients") or []:
            known = next((k for k in clients if k.get("name") == c.get("name")), None)
            if known is None:
                clients.append(dict(c))
            elif len(c) > len(known):  # a shard that ran the client knows its version
                known.update(c)
    stale = {}
    for doc in docs:
        for client, ids in (doc.get("stale_expectations") or {}).items():
            stale[client] = _union([stale.get(client), ids])
    statuses = [d.get("exitstatus") for d in docs if d.get("exitstatus") is not None]
    ran = [s for s in statuses if s != 5]  # 5: pytest's "nothing selected"
    if any(r["outcome"] in report.FAILING for r in records):
        ran.append(1)
    started = [d["started"] for d in docs if d.get("started")]
    finished = [d["finished"] for d in docs if d.get("finished")]
    return {
        "started": min(started) if started else None,
        "finished": max(finished) if finished else None,
        "clients": clients,
        "harness_version": next((d["harness_version"] for d in docs
                                 if d.get("harness_version")), None),
        "exitstatus": max(ran) if ran else (5 if statuses else None),
        "collect_errors": _union(d.get("collect_errors") for d in docs),
        "stale_expectations": stale,
        "report_url": report_url or "report.html",
        "shard": None,
        "shards": [d["shard"] for d in docs if d.get("shard")],
    }


def merge_junit(trees, records, clients):
    """One JUnit tree from the shards' (each already one suite per client): their
    testcases in the report's order, regrouped (junit.regroup) as one run's are."""
    cases, props, first = {}, [], None
    for tree in trees:
        root = tree.getroot()
        suites = root.findall("testsuite") if root.tag == "testsuites" else [root]
        for suite in suites:
            if first is None:
                first = suite
            for p in suite.iterfind("properties/property"):
                item = (p.get("name"), p.get("value"))
                if item[0] != "non-strict" and all(n != item[0] for n, _ in props):
                    props.append(item)
            for case in suite.findall("testcase"):
                key = (case.get("classname"), case.get("name"))
                if key in cases and case.get("classname") != "collection":
                    raise MergeError("the JUnit testcase %s %s is in two shards" % key)
                cases.setdefault(key, case)
    order = {(r["client"] + "." + r["area"], r["nodeid"].split("::")[-1]): n
             for n, r in enumerate(report.ordered(records))}
    one = ET.Element("testsuite", {"name": (first.get("name") if first is not None
                                            else "comet-harness")})
    stamps = [s.get("timestamp") for t in trees for s in t.getroot().iter("testsuite")
              if s.get("timestamp")]
    if stamps:
        one.set("timestamp", min(stamps))
    if first is not None and first.get("hostname"):
        one.set("hostname", first.get("hostname"))
    if props:
        p = ET.SubElement(one, "properties")
        for n, v in props:
            ET.SubElement(p, "property", {"name": n, "value": v})
    for key in sorted(cases, key=lambda k: (order.get(k, len(order)), k)):
        one.append(cases[key])
    root = ET.Element("testsuites")
    root.append(one)
    tree = ET.ElementTree(root)
    junit.regroup(tree, records, clients)
    root.set("name", "comet-harness")
    return tree


def merge(folders, out, report_url=None):
    """Merge the shards' folders into out; returns (paths written, meta, records)."""
    if not folders:
        raise MergeError("no shard folders given")
    read = [read_shard(f) for f in folders]
    docs = [d for d, _ in read]
    check_shards(folders, docs)
    records = merge_records(folders, docs)
    meta = merge_meta(docs, records, report_url)
    clients = report.clients_of(records, meta)
    trees = [t for _, t in read if t is not None]
    tree = merge_junit(trees, records, clients) if trees else None
    written = report.write_all(out, records, meta)
    if tree is not None:
        path = os.path.join(out, "junit.xml")
        tree.write(path + ".tmp", encoding="utf-8", xml_declaration=True)
        os.replace(path + ".tmp", path)
        written.insert(0, path)
    return written, meta, records


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="comet_harness.merge", description="Merge the results of --shard K/N runs "
        "(their --results folders) into the results of one run.")
    parser.add_argument("folders", nargs="+", metavar="DIR", help="a shard's results folder")
    parser.add_argument("--results", default="results", metavar="DIR",
                        help="where the merged reports go (default: results)")
    parser.add_argument("--report-url", default=None, metavar="URL",
                        help="where summary.md links to the full report (default: report.html)")
    parser.add_argument("--fail", action="store_true",
                        help="exit with the merged run's status (1 when a run failed)")
    args = parser.parse_args(argv)
    out = os.path.abspath(args.results)
    if any(os.path.abspath(f) == out for f in args.folders):
        parser.error("--results %s is one of the shards' folders" % args.results)
    try:
        written, meta, records = merge(args.folders, out, args.report_url)
    except MergeError as err:
        sys.stderr.write("merge: %s\n" % err)
        return EXIT_MERGE_ERROR
    print("merged %d runs of %d folder%s" % (len(records), len(args.folders),
                                            "" if len(args.folders) == 1 else "s"))
    for line in report.totals_lines(records, [c["name"] for c in meta["clients"]]):
        print(line)
    for path in written:
        print("wrote %s" % os.path.relpath(path))
    return (meta["exitstatus"] or 0) if args.fail else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
