"""Grading: an adapter's observations and the server's journal against `expect`.

Pure functions, no I/O (docs/scenarios.md, "expect"):

    verdict = grade(expect, observations, journal)
    verdict.outcome          # "pass", "fail" or "non-strict"
    format_failure(verdict, ...)   # the text a person reads when it is not a pass

Every check yields a `Check`: where it is (`client.status`, `server.requests[slow].count`),
whether it held, whether it is strict, and what was expected and observed. A failed strict
check makes the verdict *fail*; failed checks that all carry `strict: false` make it
*non-strict* (a pass, noted). The outcomes *unsupported* and *error* are not the grader's:
they come from the adapter or the harness before anything can be graded.

Matchers, wherever a value is expected: a plain value (equal; a mapping checks the keys it
lists; a list checks every item in order), `{equals: V}`, `{regex: RE}` (searched in the
text), `{one_of: [A, B]}`, `{absent: true}`, `{present: true}`, `{at_least: N}`,
`{at_most: N}`, `{approx: V, tolerance: T}`. Keys of one matcher combine (`{at_least: 1,
at_most: 3}`). Any matcher, event item or request entry may carry `strict: false`.

Events (`expect.client.events`) are matched on the fields each item lists, in the mode of
`events_mode`: `exact` (the same events, in order, nothing else), `subsequence` (in order,
others may come between) or `contains` (each item matched by a distinct event, any order).

The vocabulary below (matcher keys, events modes, the keys of `expect.server` and its
parts) is the binary's too: `harness check` validates `expect` from key tables (keys.c)
and rejects any key this module would not understand; drivers/tests/test_grader.py holds
the two equal through `harness keys --json`. Regexes are the dialect of docs/scenarios.md
("Regular expressions"): Python's `re` here, PCRE2 in the server, one corpus for both.
Durations arrive as milliseconds.
"""
import json
import re
from dataclasses import dataclass, field
from typing import Any, List

PASS, FAIL, NON_STRICT = "pass", "fail", "non-strict"
UNSUPPORTED, ERROR = "unsupported", "error"

MATCHER_KEYS = frozenset({"equals", "regex", "one_of", "absent", "present", "at_least",
                          "at_most", "approx", "tolerance", "json"})
EVENT_MODES = ("exact", "subsequence", "contains")
# expect.server and its parts (`strict` is allowed wherever a mapping is a check)
SERVER_KEYS = frozenset({"requests", "preflights", "order", "websocket", "strict"})
REQUEST_FIELDS = ("method", "path", "target", "query", "body", "status", "tls", "sni")  # journal fields
REQUEST_KEYS = frozenset({"route", "count", "preflight", "kind", "headers", "strict",
                          *REQUEST_FIELDS})
ORDER_KEYS = frozenset({"routes", "strict"})
WEBSOCKET_KEYS = frozenset({"pongs", "messages", "close_code", "masked", "violations", "end",
                            "strict"})
MAX_DIFF_LINES = 120
_BARE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class _Missing:
    """The value of something not observed at all (distinct from null)."""

    def __repr__(self):
        return "<missing>"

    def __bool__(self):
        return False


MISSING = _Missing()


@dataclass
class Check:
    """One graded check."""
    path: str                 # client.status, client.events, server.requests[slow].count…
    ok: bool
    strict: bool = True
    expected: Any = None
    observed: Any = None
    message: str = ""         # why it failed, in words
    detail: str = ""          # a multi-line diff (events) or journal excerpt, if any
    kind: str = "client"      # client | server


@dataclass
class Verdict:
    """The result of grading one run."""
    outcome: str
    checks: List[Check] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def failures(self):
        return [c for c in self.checks if not c.ok and c.strict]

    @property
    def soft_failures(self):
        return [c for c in self.checks if not c.ok and not c.strict]


# --------------------------------------------------------------------------- matchers

def is_matcher(value):
    """True if value is a matcher mapping ({regex: …}, {at_least: …}, …)."""
    if not isinstance(value, dict) or not value:
        return False
    keys = set(value) - {"strict"}
    return bool(keys) and keys <= MATCHER_KEYS


def is_strict(value):
    """False if the check carries `strict: false`."""
    return not (isinstance(value, dict) and value.get("strict") is False)


def _equal(expected, observed):
    if isinstance(expected, bool) or isinstance(observed, bool):
        return isinstance(expected, bool) and isinstance(observed, bool) and expected == observed
    if isinstance(expected, (int, float)) and isinstance(observed, (int, float)):
        return expected == observed
    return type(expected) is type(observed) and expected == observed


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def match(expected, observed):
    """Match one observed value (MISSING if not observed) against an expected value.

    Returns None when it matches, else a short reason.
    """
    if is_matcher(expected):
        return _match_matcher(expected, observed)
    if isinstance(expected, dict):
        if not isinstance(observed, dict):
            return "expected a mapping, observed %s" % render(observed)
        for key, exp in expected.items():
            if key == "strict":
                continue
            why = match(exp, observed.get(key, MISSING))
            if why:
                return "%s: %s" % (key, why)
        return None
    if isinstance(expected, list):
        if not isinstance(observed, list):
            return "expected a list, observed %s" % render(observed)
        if len(expected) != len(observed):
            return "expected %d items, observed %d" % (len(expected), len(observed))
        for i, (exp, obs) in enumerate(zip(expected, observed)):
            why = match(exp, obs)
            if why:
                return "[%d]: %s" % (i, why)
        return None
    if observed is MISSING:
        return "expected %s, not observed" % render(expected)
    if not _equal(expected, observed):
        return "expected %s, observed %s" % (render(expected), render(observed))
    return None


def _match_matcher(m, observed):
    """The keys of one matcher mapping, all of which must hold."""
    if m.get("absent"):
        return None if observed is MISSING or observed is None else \
            "expected absent, observed %s" % render(observed)
    if m.get("present"):
        if observed is MISSING or observed is None:
            return "expected present, not observed"
    if observed is MISSING and set(m) - {"strict", "present", "absent"}:
        return "expected %s, not observed" % render(m)
    if "equals" in m:
        why = match(m["equals"], observed)
        if why:
            return why
    if "regex" in m:
        if not isinstance(observed, str):
            return "expected text matching /%s/, observed %s" % (m["regex"], render(observed))
        try:
            found = re.search(m["regex"], observed)
        except re.error as err:
            return "bad regex /%s/: %s" % (m["regex"], err)
        if not found:
            return "expected text matching /%s/, observed %s" % (m["regex"], render(observed))
    if "one_of" in m:
        options = m["one_of"] if isinstance(m["one_of"], list) else [m["one_of"]]
        if not any(match(opt, observed) is None for opt in options):
            return "expected one of %s, observed %s" % (render(options), render(observed))
    for key, test, word in (("at_least", lambda o, v: o >= v, "at least"),
                            ("at_most", lambda o, v: o <= v, "at most")):
        if key in m:
            if not _number(observed) or not test(observed, m[key]):
                return "expected %s %s, observed %s" % (word, render(m[key]), render(observed))
    if "json" in m:
        # text that parses as JSON containing this subset: the server's `json` condition
        # (route_json_subset) is the same rule as a plain expected mapping here
        try:
            doc = json.loads(observed) if isinstance(observed, str) else MISSING
        except ValueError:
            doc = MISSING
        if doc is MISSING:
            return "expected JSON text, observed %s" % render(observed)
        why = match(m["json"], doc)
        if why:
            return "JSON %s" % why
    if "approx" in m:
        tol = m.get("tolerance", 0)
        if not _number(observed) or abs(observed - m["approx"]) > tol:
            return "expected %s ± %s, observed %s" % (render(m["approx"]), render(tol),
                                                    render(observed))
    return None


# --------------------------------------------------------------------------- rendering

def render(value):
    """A compact one-line rendering of an expected or observed value."""
    if value is MISSING:
        return "<not observed>"
    if is_matcher(value):
        parts = []
        for key in ("equals", "regex", "one_of", "at_least", "at_most", "approx"):
            if key not in value:
                continue
            v = value[key]
            parts.append({"equals": lambda: render(v), "regex": lambda: "/%s/" % v,
                          "one_of": lambda: "one of " + render(v),
                          "at_least": lambda: "≥ " + render(v), "at_most": lambda: "≤ " + render(v),
                          "approx": lambda: "≈ %s ± %s" % (render(v), render(value.get("tolerance", 0)))
                          }[key]())
        if value.get("absent"):
            parts.append("absent")
        if value.get("present"):
            parts.append("present")
        return " and ".join(parts) or "{}"
    if isinstance(value, dict):
        return "{" + ", ".join("%s: %s" % (k, render(v)) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    if isinstance(value, str) and _BARE.match(value) and value not in ("true", "false", "null"):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False)
    if len(text) > 200:
        text = text[:160] + "…(%d chars)" % len(text)
    return text


def _render_event(event, fields):
    """An observed event shown with its type, its time and the given fields only."""
    shown = {"type": event.get("type")}
    for f in fields:
        if f in event and f != "type":
            shown[f] = event[f]
    t = event.get("t")
    prefix = ("%8.1f ms  " % t) if _number(t) else " " * 13
    return prefix + render(shown)


def _render_item(item):
    return " " * 13 + render({k: v for k, v in item.items() if k != "strict"}) + \
        ("  (strict: false)" if not is_strict(item) else "")


# --------------------------------------------------------------------------- events

def event_matches(item, event):
    """True if an observed event has every field the expected item lists."""
    if not isinstance(event, dict):
        return False
    for key, exp in item.items():
        if key == "strict":
            continue
        if match(exp, event.get(key, MISSING)) is not None:
            return False
    return True


def _exact(items, events, table, optional):
    """Exact match in order, optional items (strict: false) may be skipped."""
    n, m = len(items), len(events)
    ok = [[False] * (m + 1) for _ in range(n + 1)]
    ok[n][m] = True
    for i in range(n - 1, -1, -1):
        for j in range(m, -1, -1):
            ok[i][j] = (j < m and table[i][j] and ok[i + 1][j + 1]) or \
                       (optional and not is_strict(items[i]) and ok[i + 1][j])
    return ok[0][0]


def _subsequence(items, events, table, optional):
    """In order, other events between; optional items may be skipped."""
    n, m = len(items), len(events)
    ok = [[False] * (m + 1) for _ in range(n + 1)]
    for j in range(m + 1):
        ok[n][j] = True
    for i in range(n - 1, -1, -1):
        skip = optional and not is_strict(items[i])
        ok[i][m] = skip and ok[i + 1][m]
        for j in range(m - 1, -1, -1):
            ok[i][j] = (table[i][j] and ok[i + 1][j + 1]) or ok[i][j + 1] or \
                       (skip and ok[i + 1][j])
    return ok[0][0]


def _contains(items, events, table, optional):
    """Each (required) item matched by a distinct event, any order (bipartite matching)."""
    wanted = [i for i in range(len(items)) if not (optional and not is_strict(items[i]))]
    owner = {}

    def augment(i, seen):
        for j in range(len(events)):
            if table[i][j] and j not in seen:
                seen.add(j)
                if j not in owner or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    return all(augment(i, set()) for i in wanted)


_MODES = {"exact": _exact, "subsequence": _subsequence, "contains": _contains}


def _alignment(items, events, table):
    """Longest in-order pairing of items with events (an LCS on the match predicate)."""
    n, m = len(items), len(events)
    best = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            best[i][j] = max(best[i + 1][j], best[i][j + 1],
                             best[i + 1][j + 1] + 1 if table[i][j] else 0)
    pairs, i, j = [], 0, 0
    while i < n and j < m:
        if table[i][j] and best[i][j] == best[i + 1][j + 1] + 1:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif best[i + 1][j] >= best[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def events_diff(items, events, mode):
    """Expected items against observed events, as diff lines.

    `  ` an event that matched an item, `- ` an expected item no event matched, `+ ` an
    observed event that is not expected (exact mode), `· ` an event between (other modes).
    Observed events show only the fields the expected items list for their type.
    """
    fields_by_type = {}
    for item in items:
        fields_by_type.setdefault(item.get("type"), set()).update(
            k for k in item if k not in ("type", "strict"))
    all_fields = set().union(*fields_by_type.values()) if fields_by_type else set()

    def show(event):
        fields = fields_by_type.get(event.get("type") if isinstance(event, dict) else None,
                                    all_fields)
        return _render_event(event if isinstance(event, dict) else {"type": event}, sorted(fields))

    table = [[event_matches(item, ev) for ev in events] for item in items]
    lines = []
    if mode == "contains":
        used = set()
        for i, item in enumerate(items):
            j = next((j for j in range(len(events)) if table[i][j] and j not in used), None)
            if j is None:
                lines.append("- " + _render_item(item).lstrip() + "   (no such event)")
            else:
                used.add(j)
        lines.append("observed events:")
        lines.extend(("  " if j in used else "· ") + show(ev) for j, ev in enumerate(events))
        return lines
    pairs = _alignment(items, events, table)
    extra = "+ " if mode == "exact" else "· "
    i = j = 0
    for pi, pj in pairs + [(len(items), len(events))]:
        while i < pi:
            lines.append("- " + _render_item(items[i]))
            i += 1
        while j < pj:
            lines.append(extra + show(events[j]))
            j += 1
        if pi < len(items):
            lines.append("  " + show(events[pj]))
        i, j = pi + 1, pj + 1
    return lines


def grade_events(items, events, mode):
    """The `events` check: exact / subsequence / contains."""
    if mode not in _MODES:
        return Check("client.events", False, message="unknown events_mode %r" % mode,
                     expected=items)
    if not isinstance(events, list):
        events = []
    table = [[event_matches(item, ev) for ev in events] for item in items]
    check = _MODES[mode]
    if check(items, events, table, optional=False):
        return Check("client.events", True, expected=items, observed=events)
    soft = any(not is_strict(i) for i in items) and check(items, events, table, optional=True)
    words = {"exact": "the events differ from the expected ones",
             "subsequence": "the expected events do not all occur in this order",
             "contains": "some expected events did not occur"}[mode]
    lines = events_diff(items, events, mode)
    if len(lines) > MAX_DIFF_LINES:  # hundreds of progress events: keep both ends
        cut = len(lines) - MAX_DIFF_LINES + 1
        lines = lines[:MAX_DIFF_LINES * 2 // 3] + ["  … %d lines …" % cut] + \
            lines[MAX_DIFF_LINES * 2 // 3 + cut:]
    detail = "events_mode: %s; - expected, not observed; %s\n" % (
        mode, "+ observed, not expected" if mode == "exact" else "· other events") + \
        "\n".join(lines)
    return Check("client.events", False, strict=not soft, expected=items, observed=events,
                 message=words + (" (only strict: false items missing)" if soft else ""),
                 detail=detail)


# --------------------------------------------------------------------------- client

def grade_client(expect_client, observations):
    """Checks of `expect.client` against the adapter's observations."""
    checks = []
    obs = observations if isinstance(observations, dict) else {}
    for key, expected in expect_client.items():
        if key == "events_mode":
            continue
        if key == "events":
            mode = expect_client.get("events_mode", "exact")
            checks.append(grade_events(expected or [], obs.get("events", []), mode))
            continue
        observed = obs.get(key, MISSING)
        if key == "headers" and isinstance(expected, dict) and not is_matcher(expected):
            observed_h = {k.lower(): v for k, v in observed.items()} \
                if isinstance(observed, dict) else {}
            for name, exp in expected.items():
                got = observed_h.get(name.lower(), MISSING)
                why = match(exp, got)
                checks.append(Check("client.headers.%s" % name.lower(), why is None,
                                    is_strict(exp), exp, got, why or ""))
            continue
        why = match(expected, observed)
        checks.append(Check("client.%s" % key, why is None, is_strict(expected), expected,
                            observed, why or ""))
    return checks


# --------------------------------------------------------------------------- server

def header_values(entry, name):
    """A journaled request's header, its values joined with ", " (MISSING if absent)."""
    values = [v for n, v in entry.get("headers") or [] if n.lower() == name.lower()]
    return ", ".join(values) if values else MISSING


def is_preflight(entry):
    """A CORS preflight: OPTIONS with Access-Control-Request-Method."""
    return (entry.get("method") == "OPTIONS"
            and header_values(entry, "Access-Control-Request-Method") is not MISSING)


def journal_line(entry, headers=()):
    """One journal entry on one line, with the named headers if it has them."""
    route = entry.get("route")
    line = "#%s %s %s %s → %s [%s]" % (
        entry.get("seq", "?"),
        ("+%.0fms" % entry["arrived"]) if _number(entry.get("arrived")) else "",
        entry.get("method", "?"), entry.get("target") or entry.get("path") or "?",
        entry.get("status", "?"), route if route is not None else "no route")
    if entry.get("port") is not None:
        line += " port %s" % entry["port"]
    for name in headers:
        value = header_values(entry, name)
        line += "\n      %s: %s" % (name, "<absent>" if value is MISSING else value)
    return line


def _select(entries, spec):
    """The journal entries one `requests` item is about."""
    out = []
    for e in entries:
        if "route" in spec and e.get("route") != spec["route"]:
            continue
        if spec.get("preflight") is True and not is_preflight(e):
            continue
        if "kind" in spec and (spec["kind"] == "preflight") != is_preflight(e):
            continue
        out.append(e)
    return out


def _request_checks(label, selected, spec, path):
    checks = []
    strict = is_strict(spec)
    if "count" in spec:
        exp = spec["count"]
        why = match(exp, len(selected))
        checks.append(Check(path + ".count", why is None, strict and is_strict(exp), exp,
                            len(selected), why and "%s requests: %s" % (label, why) or "",
                            kind="server"))
    names = list((spec.get("headers") or {}).keys())
    for field_name in REQUEST_FIELDS:
        if field_name in spec:
            exp = spec[field_name]
            bad = [e for e in selected if match(exp, e.get(field_name, MISSING)) is not None]
            checks.append(Check("%s.%s" % (path, field_name), not bad, strict and is_strict(exp),
                                exp, [e.get(field_name) for e in selected],
                                bad and "%d of %d %s requests: %s" % (
                                    len(bad), len(selected), label,
                                    match(exp, bad[0].get(field_name, MISSING))) or "",
                                detail="\n".join(journal_line(e) for e in bad), kind="server"))
    for name in names:
        exp = spec["headers"][name]
        bad = [e for e in selected if match(exp, header_values(e, name)) is not None]
        checks.append(Check(
            "%s.headers.%s" % (path, name), not bad, strict and is_strict(exp), exp,
            [header_values(e, name) for e in selected],
            bad and "%d of %d %s requests: %s: %s" % (
                len(bad), len(selected), label, name, match(exp, header_values(bad[0], name)))
            or "", detail="\n".join(journal_line(e, [name]) for e in bad), kind="server"))
    return checks


def _route_sequence(entries, names):
    """Arrival-order route names among names, consecutive repeats collapsed.

    The name "preflight" also stands for preflight requests when no route has that name
    (the journal names the route whose CORS policy answered a preflight, so a preflight and
    its actual request would otherwise look the same).
    """
    routes = {e.get("route") for e in entries}
    seq = []
    for e in sorted(entries, key=lambda e: (e.get("arrived", 0), e.get("seq", 0))):
        name = e.get("route")
        if "preflight" in names and "preflight" not in routes and is_preflight(e):
            name = "preflight"
        if name in names and (not seq or seq[-1] != name):
            seq.append(name)
    return seq


def grade_server(expect_server, journal):
    """Checks of `expect.server` against the journal."""
    entries = list((journal or {}).get("entries") or [])
    checks = []
    for n, spec in enumerate(expect_server.get("requests") or []):
        label = "route %s" % spec["route"] if "route" in spec else "all"
        path = "server.requests[%s]" % (spec.get("route", n))
        checks += _request_checks(label, _select(entries, spec), spec, path)
    if "preflights" in expect_server:
        spec = expect_server["preflights"]
        if not isinstance(spec, dict) or is_matcher(spec):
            spec = {"count": spec, **({"strict": False} if not is_strict(spec) else {})}
        selected = [e for e in entries if is_preflight(e)]
        checks += _request_checks("preflight", selected, spec, "server.preflights")
    if "order" in expect_server:
        order = expect_server["order"]
        strict = is_strict(order)
        if isinstance(order, dict):
            order = order.get("routes", [])
        names = set(order)
        observed = _route_sequence(entries, names)
        expected = [r for k, r in enumerate(order) if k == 0 or order[k - 1] != r]
        ok = observed == expected
        checks.append(Check("server.order", ok, strict, expected, observed,
                            "" if ok else "routes arrived in the order %s, expected %s"
                            % (render(observed), render(expected)), kind="server"))
    if "websocket" in expect_server:
        checks += _websocket_checks(expect_server["websocket"] or {}, entries)
    return checks


def websocket_view(entries):
    """What the client did on the (first) WebSocket session of the journal, as values a
    scenario can match: the pongs it sent (payloads), its messages, the code of its close
    frame, whether it masked every frame, and the protocol violations it committed."""
    for e in entries:
        w = e.get("websocket")
        if not isinstance(w, dict) or not w.get("upgraded"):
            continue
        events = w.get("events") or []
        inbound = [x for x in events if x.get("kind") == "frame" and x.get("dir") == "in"]
        closes = [x for x in events if x.get("kind") == "close" and x.get("dir") == "in"]
        return {
            "pongs": [x.get("payload", x.get("payload_base64")) for x in inbound
                      if x.get("opcode") == 10],
            "messages": [x.get("data", x.get("data_base64")) for x in events
                         if x.get("kind") == "message" and x.get("dir") == "in"],
            "close_code": closes[0].get("code") if closes else MISSING,
            "masked": all(x.get("masked") for x in inbound) if inbound else MISSING,
            "violations": [x.get("what") for x in events if x.get("kind") == "violation"],
            "end": w.get("end", MISSING),
        }
    return None


def _websocket_checks(spec, entries):
    """`expect.server.websocket`: the client's side of the session, from the journal."""
    view = websocket_view(entries)
    strict_all = is_strict(spec)
    if view is None:
        return [Check("server.websocket", False, strict_all, spec, MISSING,
                      "no upgraded WebSocket session in the journal", kind="server")]
    checks = []
    for key, expected in spec.items():
        if key == "strict":
            continue
        observed = view.get(key, MISSING)
        why = match(expected, observed)
        checks.append(Check("server.websocket." + key, why is None,
                            strict_all and is_strict(expected), expected, observed,
                            why and "the client's %s: %s" % (key, why) or "", kind="server"))
    return checks


def needed_counts(expect):
    """{route: n}: how many requests of each route `expect.server` needs at least.

    The driver waits (briefly) for them before reading the journal, since a request a
    client sent last (an image ping) may still be in flight when the client is done.
    """
    out = {}
    for spec in ((expect or {}).get("server") or {}).get("requests") or []:
        if "route" not in spec or spec.get("route") is None:
            continue
        count = spec.get("count")
        n = None
        if _number(count):
            n = count
        elif is_matcher(count):
            n = count.get("equals") if _number(count.get("equals")) else count.get("at_least")
        if _number(n) and n > 0:
            out[spec["route"]] = max(out.get(spec["route"], 0), int(n))
    return out


# --------------------------------------------------------------------------- verdict

def grade(expect, observations, journal=None):
    """Grade one run: `expect` (templates already expanded) against what was seen."""
    expect = expect or {}
    checks = []
    if "client" in expect:
        checks += grade_client(expect["client"] or {}, observations)
    if "server" in expect:
        checks += grade_server(expect["server"] or {}, journal)
    notes = []
    obs = observations if isinstance(observations, dict) else {}
    if obs.get("deadline"):
        notes.append("the run reached its deadline before the action finished")
    if obs.get("pageUnresponsive"):
        notes.append("the page stopped answering (a synchronous request blocked it)")
    for err in obs.get("pageErrors") or []:
        notes.append("page error: %s" % (err.get("message") if isinstance(err, dict) else err))
    if journal and journal.get("dropped"):
        notes.append("the journal dropped %s entries" % journal["dropped"])
    if any(not c.ok and c.strict for c in checks):
        outcome = FAIL
    elif any(not c.ok for c in checks):
        outcome = NON_STRICT
    else:
        outcome = PASS
    return Verdict(outcome, checks, notes)


def format_check(check):
    """One failed check as text lines."""
    mark = "✗" if check.strict else "~"
    lines = ["%s %s%s: %s" % (mark, check.path, "" if check.strict else " (strict: false)",
                             check.message)]
    if check.path != "client.events" and not check.detail \
            and not ("expected" in check.message and "observed" in check.message):
        lines.append("    expected: %s" % render(check.expected))
        lines.append("    observed: %s" % render(check.observed))
    if check.detail:
        lines.extend("    " + line for line in check.detail.splitlines())
    return lines


def format_failure(verdict, scenario=None, client=None, journal=None, stderr_tail=""):
    """What a person reads about a run that did not pass: actionable text.

    scenario: {"id", "title", "spec", "file"}; client: {"name", "version"}.
    """
    scenario = scenario or {}
    lines = []
    who = ""
    if client:
        version = (" " + client["version"]) if client.get("version") else ""
        who = " [%s%s]" % (client.get("name", "?"), version)
    lines.append("%s%s: %s" % (scenario.get("id", "?"), who, verdict.outcome.upper()))
    if scenario.get("title"):
        lines.append("  " + scenario["title"])
    if scenario.get("spec"):
        lines.append("  spec: " + scenario["spec"])
    if scenario.get("file"):
        lines.append("  scenario: " + str(scenario["file"]))
    bad = [c for c in verdict.checks if not c.ok]
    if bad:
        lines.append("")
        lines.append("expected vs observed (%d of %d checks failed):" % (len(bad),
                                                                       len(verdict.checks)))
        for check in bad:
            lines.extend("  " + line for line in format_check(check))
    for note in verdict.notes:
        lines.append("note: " + note)
    if journal is not None:
        entries = journal.get("entries") or []
        names = sorted({c.path.split(".headers.", 1)[1] for c in bad
                        if c.kind == "server" and ".headers." in c.path})
        lines.append("")
        lines.append("journal (%d request%s):" % (len(entries), "" if len(entries) == 1 else "s"))
        for e in entries[:40]:
            lines.extend("  " + line for line in journal_line(e, names).splitlines())
        if len(entries) > 40:
            lines.append("  … %d more" % (len(entries) - 40))
    if stderr_tail and stderr_tail.strip():
        lines.append("")
        lines.append("adapter stderr (last lines):")
        lines.extend("  " + line for line in stderr_tail.rstrip().splitlines()[-30:])
    return "\n".join(lines)
