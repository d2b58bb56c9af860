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
# On any check: strictness, scope and level (docs/scenarios.md, "Per-kind expectations")
MODIFIER_KEYS = frozenset({"strict", "when", "level"})
LEVELS = ("must", "should", "may")          # strongest first
WHEN_KEYS = frozenset({"kind", "client", "capability", "offers"})
CLIENT_KINDS = ("browser", "library")
# An expected event's own keys besides the fields it matches
ITEM_KEYS = frozenset({"count"}) | MODIFIER_KEYS
# expect, a case of expect.cases, and the list checks of expect.client
EXPECT_KEYS = frozenset({"client", "server", "gaps", "timeline", "cases"})
CASE_KEYS = frozenset({"client", "server", "gaps", "timeline", "note"}) | MODIFIER_KEYS - {"strict"}
CLIENT_LIST_KEYS = frozenset({"all", "monotonic"})
ALL_KEYS = frozenset({"events", "match", "count"}) | MODIFIER_KEYS
MONOTONIC_KEYS = frozenset({"events", "field", "strictly"}) | MODIFIER_KEYS
GAP_KEYS = frozenset({"from", "to", "at_least", "at_most", "approx", "tolerance"}) | MODIFIER_KEYS
POINT_KEYS = frozenset({"event", "journal", "nth", "at"})
JOURNAL_TIMES = ("arrived", "headers_sent", "body_first_byte", "body_done", "ended")
# Two clocks (the client's and the journal's, both the machine's wall clock) are compared
# with this slack: an order across them is only asserted beyond it.
CLOCK_SLACK_MS = 2.0
EVENT_MODES = ("exact", "subsequence", "contains")
# expect.server and its parts (`strict` is allowed wherever a mapping is a check)
SERVER_KEYS = frozenset({"requests", "preflights", "order", "websocket", "strict"})
REQUEST_FIELDS = ("method", "path", "target", "query", "body", "status", "tls", "sni",
                  "request_line", "header_names")  # journal fields
REQUEST_KEYS = frozenset({"route", "count", "preflight", "kind", "headers", "header_order",
                          *REQUEST_FIELDS}) | MODIFIER_KEYS
ORDER_KEYS = frozenset({"routes"}) | MODIFIER_KEYS
WEBSOCKET_KEYS = frozenset({"pongs", "messages", "close_code", "masked", "violations",
                            "end"}) | MODIFIER_KEYS
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
    level: str = ""           # must | should | may ("" : must if strict, else should)
    unsupported: str = ""     # why this client cannot be graded on it (then ok is True)

    def __post_init__(self):
        if not self.level:
            self.level = "must" if self.strict else "should"
        self.strict = self.level == "must"


@dataclass
class Verdict:
    """The result of grading one run."""
    outcome: str
    checks: List[Check] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def failures(self):
        return [c for c in self.checks if not c.ok and c.level == "must"]

    @property
    def soft_failures(self):
        return [c for c in self.checks if not c.ok and c.level == "should"]

    @property
    def informational(self):
        """Failed `level: may` checks: reported, never an outcome."""
        return [c for c in self.checks if not c.ok and c.level == "may"]


# --------------------------------------------------------------------------- matchers

def is_matcher(value):
    """True if value is a matcher mapping ({regex: …}, {at_least: …}, …)."""
    if not isinstance(value, dict) or not value:
        return False
    keys = set(value) - MODIFIER_KEYS
    return bool(keys) and keys <= MATCHER_KEYS


def is_strict(value):
    """False if the check carries `strict: false` or a level below must."""
    return level_of(value) == "must"


def level_of(*values, default="must"):
    """The level of a check: the weakest of its own (level:, or should for strict: false),
    those of the entries it is in, and the default (its case's)."""
    rank = LEVELS.index(default)
    for value in values:
        if isinstance(value, dict):
            if value.get("level") in LEVELS:
                rank = max(rank, LEVELS.index(value["level"]))
            if value.get("strict") is False:
                rank = max(rank, 1)
    return LEVELS[rank]


def applies(value, client, journal=None):
    """True if a check (a mapping with `when`, or anything else) is for this client.

    client: {"name", "kind" (browser | library), "capabilities"}; None when unknown, and
    then no `when` holds. `offers` looks at the WebSocket extensions the client offered in
    its first handshake (the journal).
    """
    when = value.get("when") if isinstance(value, dict) else None
    if not when:
        return True
    if not client:
        return False
    if "kind" in when and when["kind"] != client.get("kind"):
        return False
    if "client" in when:
        names = when["client"] if isinstance(when["client"], list) else [when["client"]]
        if client.get("name") not in names:
            return False
    if "capability" in when:
        caps = when["capability"] if isinstance(when["capability"], list) else [when["capability"]]
        if not set(caps) <= set(client.get("capabilities") or []):
            return False
    if "offers" in when:
        if when["offers"] not in offered_extensions(journal):
            return False
    return True


def offered_extensions(journal):
    """The names of the WebSocket extensions offered in the journal's first handshake."""
    for e in (journal or {}).get("entries") or []:
        w = e.get("websocket")
        if isinstance(w, dict) and isinstance(w.get("handshake"), dict):
            offered = w["handshake"].get("offered_extensions") or []
            if isinstance(offered, str):
                offered = [offered]
            names = []
            for text in offered:
                for ext in str(text).split(","):
                    name = ext.split(";")[0].strip()
                    if name:
                        names.append(name)
            return names
    return []


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
            if key in MODIFIER_KEYS:
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
        if key in ITEM_KEYS:
            continue
        if match(exp, event.get(key, MISSING)) is not None:
            return False
    return True


def _count_ok(item, n):
    """An item with `count`: n matching events are as many as it asks."""
    return match(item["count"], n) is None


def _exact(items, events, table, optional):
    """Exact match in order, optional items (strict: false) may be skipped; an item with
    `count` stands for that many consecutive matching events."""
    n, m = len(items), len(events)
    ok = [[False] * (m + 1) for _ in range(n + 1)]
    ok[n][m] = True
    for i in range(n - 1, -1, -1):
        skip = optional and not is_strict(items[i])
        for j in range(m, -1, -1):
            if "count" in items[i]:
                k, found = 0, False
                while True:
                    if _count_ok(items[i], k) and ok[i + 1][j + k]:
                        found = True
                        break
                    if j + k < m and table[i][j + k]:
                        k += 1
                    else:
                        break
                ok[i][j] = found or (skip and ok[i + 1][j])
            else:
                ok[i][j] = (j < m and table[i][j] and ok[i + 1][j + 1]) or \
                           (skip and ok[i + 1][j])
    return ok[0][0]


def _subsequence(items, events, table, optional):
    """In order, other events between; optional items may be skipped. An item with `count`
    owns the events from just after the previous item's match up to the next item's match
    (or the end): the events in there that match it are counted."""
    n, m = len(items), len(events)
    ok = [[False] * (m + 1) for _ in range(n + 1)]
    at = [[False] * (m + 1) for _ in range(n + 1)]  # item i matched at event j, the rest ok
    for j in range(m + 1):
        ok[n][j] = True
    for i in range(n - 1, -1, -1):
        skip = optional and not is_strict(items[i])
        for j in range(m, -1, -1):
            if "count" in items[i]:
                found, c = False, 0
                for e in range(j, m + 1):
                    if i + 1 == n:
                        after = e == m
                    elif "count" in items[i + 1]:
                        after = ok[i + 1][e]
                    else:
                        after = at[i + 1][e]
                    if after and _count_ok(items[i], c):
                        found = True
                        break
                    if e < m and table[i][e]:
                        c += 1
                ok[i][j] = at[i][j] = found or (skip and ok[i + 1][j])
            else:
                at[i][j] = j < m and table[i][j] and ok[i + 1][j + 1]
                ok[i][j] = at[i][j] or (j < m and ok[i][j + 1]) or (skip and ok[i + 1][j])
    return ok[0][0]


def _contains(items, events, table, optional):
    """Each (required) item matched by a distinct event, any order (bipartite matching); an
    item with `count` is the number of matching events among all."""
    for i, item in enumerate(items):
        if "count" in item and not (optional and not is_strict(item)) and \
                not _count_ok(item, sum(table[i])):
            return False
    wanted = [i for i in range(len(items))
              if not (optional and not is_strict(items[i])) and "count" not in items[i]]
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


def grade_events(items, events, mode, path="client.events", default="must"):
    """The `events` check: exact / subsequence / contains."""
    if mode not in _MODES:
        return Check(path, False, message="unknown events_mode %r" % mode, expected=items)
    if not isinstance(events, list):
        events = []
    table = [[event_matches(item, ev) for ev in events] for item in items]
    check = _MODES[mode]
    if check(items, events, table, optional=False):
        return Check(path, True, expected=items, observed=events, level=default)
    optional = [i for i in items if not is_strict(i)]
    soft = bool(optional) and check(items, events, table, optional=True)
    words = {"exact": "the events differ from the expected ones",
             "subsequence": "the expected events do not all occur in this order",
             "contains": "some expected events did not occur"}[mode]
    plain = [i for i in items if "count" not in i]
    lines = events_diff(plain, events, mode)
    for item in items:
        if "count" in item:
            n = sum(1 for ev in events if event_matches(item, ev))
            lines.append("# %s: %d matching events in all (count: %s, of the events where "
                         "the item stands)" % (_render_item(item).strip(), n,
                                               render(item["count"])))
    if len(lines) > MAX_DIFF_LINES:  # hundreds of progress events: keep both ends
        cut = len(lines) - MAX_DIFF_LINES + 1
        lines = lines[:MAX_DIFF_LINES * 2 // 3] + ["  … %d lines …" % cut] + \
            lines[MAX_DIFF_LINES * 2 // 3 + cut:]
    detail = "events_mode: %s; - expected, not observed; %s\n" % (
        mode, "+ observed, not expected" if mode == "exact" else "· other events") + \
        "\n".join(lines)
    if soft:  # only items below must are missing: the strongest of their levels
        level = LEVELS[min(LEVELS.index(level_of(i)) for i in optional)]
    else:
        level = "must"
    level = level_of({"level": level}, default=default)
    return Check(path, False, level=level, expected=items, observed=events,
                 message=words + (" (only items below must are missing)" if soft else ""),
                 detail=detail)


# --------------------------------------------------------------------------- client

@dataclass
class Ctx:
    """What grading needs beyond the expectations: who the client is, the journal, and the
    level of the case being graded."""
    client: Any = None        # {"name", "kind": browser | library, "capabilities"}
    journal: Any = None
    level: str = "must"
    unobserved: frozenset = frozenset()


def _unsupported(path, why, kind="client"):
    return Check(path, True, level="may", message=why, unsupported=why, kind=kind)


def _strip_unobserved(item, ctx):
    """An expected event without the fields this client cannot observe (and their names)."""
    if not isinstance(item, dict) or not ctx.unobserved:
        return item, []
    gone = [k for k in item if k in ctx.unobserved]
    return ({k: v for k, v in item.items() if k not in ctx.unobserved}, gone) if gone \
        else (item, [])


def grade_client(expect_client, observations, ctx=None, prefix="client"):
    """Checks of `expect.client` against the adapter's observations."""
    ctx = ctx or Ctx(client=None)
    checks = []
    obs = observations if isinstance(observations, dict) else {}
    ctx = Ctx(ctx.client, ctx.journal, ctx.level,
              frozenset(obs.get("unobserved") or []) | ctx.unobserved)
    events_all = obs.get("events", [])
    for key, expected in expect_client.items():
        if key == "events_mode":
            continue
        if key == "events":
            mode = expect_client.get("events_mode", "exact")
            items, gone = [], set()
            for item in expected or []:
                if not applies(item, ctx.client, ctx.journal):
                    continue
                item, lost = _strip_unobserved(item, ctx)
                gone.update(lost)
                items.append(item)
            checks.append(grade_events(items, events_all, mode, prefix + ".events", ctx.level))
            if gone:
                checks.append(_unsupported(prefix + ".events", "this client cannot observe "
                                           "the events' %s (not graded)" % ", ".join(sorted(gone))))
            continue
        if key == "steps":
            checks += _step_checks(expected or {}, obs, ctx, prefix)
            continue
        if key == "all":
            checks += [c for n, spec in enumerate(expected or []) if applies(spec, ctx.client, ctx.journal)
                       for c in [_all_check(spec, events_all, ctx, "%s.all[%d]" % (prefix, n))]]
            continue
        if key == "monotonic":
            checks += [c for n, spec in enumerate(expected or []) if applies(spec, ctx.client, ctx.journal)
                       for c in [_monotonic_check(spec, events_all, ctx,
                                                  "%s.monotonic[%d]" % (prefix, n))]]
            continue
        if key in ctx.unobserved:
            checks.append(_unsupported("%s.%s" % (prefix, key),
                                       "this client cannot observe %s (not graded)" % key))
            continue
        observed = obs.get(key, MISSING)
        if key == "headers" and isinstance(expected, dict) and not is_matcher(expected):
            observed_h = {k.lower(): v for k, v in observed.items()} \
                if isinstance(observed, dict) else {}
            for name, exp in expected.items():
                if not applies(exp, ctx.client, ctx.journal):
                    continue
                got = observed_h.get(name.lower(), MISSING)
                why = match(exp, got)
                checks.append(Check("%s.headers.%s" % (prefix, name.lower()), why is None,
                                    expected=exp, observed=got, message=why or "",
                                    level=level_of(exp, default=ctx.level)))
            continue
        if not applies(expected, ctx.client, ctx.journal):
            continue
        why = match(expected, observed)
        checks.append(Check("%s.%s" % (prefix, key), why is None, expected=expected,
                            observed=observed, message=why or "",
                            level=level_of(expected, default=ctx.level)))
    return checks


def step_view(obs, step_id):
    """What one step of a client script showed: its final state and its own events."""
    steps = obs.get("steps") if isinstance(obs.get("steps"), dict) else {}
    if step_id not in steps:
        return None
    view = dict(steps[step_id]) if isinstance(steps[step_id], dict) else {}
    view["events"] = [e for e in obs.get("events") or []
                      if isinstance(e, dict) and e.get("step") == step_id]
    if obs.get("unobserved"):
        view["unobserved"] = obs["unobserved"]
    return view


def _step_checks(spec, obs, ctx, prefix):
    checks = []
    for step_id, expected in spec.items():
        path = "%s.steps.%s" % (prefix, step_id)
        view = step_view(obs, step_id)
        if view is None:
            checks.append(Check(path, False, expected=expected, observed=MISSING,
                                message="no step %s in the observations" % step_id,
                                level=ctx.level))
            continue
        checks += grade_client(expected or {}, view, ctx, path)
    return checks


def _selected(selector, events):
    return [e for e in events if isinstance(e, dict) and event_matches(selector or {}, e)]


def _all_check(spec, events, ctx, path):
    """all: every event the selector picks matches `match` (and there are `count` of them:
    at least one by default)."""
    selector, want = spec.get("events") or {}, spec.get("match") or {}
    level = level_of(spec, default=ctx.level)
    gone = [k for k in list(selector) + list(want) if k in ctx.unobserved]
    if gone:
        if set(want) <= ctx.unobserved:
            return _unsupported(path, "this client cannot observe the events' %s (not graded)"
                                % ", ".join(sorted(set(gone))))
        selector = {k: v for k, v in selector.items() if k not in ctx.unobserved}
        want = {k: v for k, v in want.items() if k not in ctx.unobserved}
    selected = _selected(selector, events)
    count = spec.get("count", {"at_least": 1})
    why = match(count, len(selected))
    if why:
        return Check(path, False, level=level, expected=spec, observed=len(selected),
                     message="%d events %s: count: %s" % (len(selected), render(selector), why))
    bad = [e for e in selected if not event_matches(want, e)]
    if not bad:
        return Check(path, True, level=level, expected=spec, observed=len(selected))
    fields = sorted(set(want) | set(selector) - ITEM_KEYS)
    return Check(path, False, level=level, expected=spec, observed=bad[0],
                 message="%d of %d events %s do not match %s" % (
                     len(bad), len(selected), render(selector), render(want)),
                 detail="\n".join(_render_event(e, fields) for e in bad[:20]))


def _monotonic_check(spec, events, ctx, path):
    """monotonic: a numeric field of the selected events never decreases (strictly: always
    increases), in the order they fired."""
    selector, name = spec.get("events") or {}, spec.get("field")
    selected = _selected(selector, events)
    level = level_of(spec, default=ctx.level)
    if name in ctx.unobserved:
        return _unsupported(path, "this client cannot observe %s (not graded)" % name)
    if not selected:
        return Check(path, False, level=level, expected=spec, observed=[],
                     message="no events %s" % render(selector))
    values = [e.get(name, MISSING) for e in selected]
    strictly = bool(spec.get("strictly"))
    for k, (a, b) in enumerate(zip(values, values[1:])):
        if not (_number(a) and _number(b)) or (b <= a if strictly else b < a):
            return Check(path, False, level=level, expected=spec, observed=values,
                         message="%s %s from %s to %s (events %d and %d of %s)" % (
                             name, "does not increase" if strictly else "decreases",
                             render(a), render(b), k + 1, k + 2, render(selector)),
                         detail="\n".join(_render_event(e, [name]) for e in
                                          selected[max(0, k - 2):k + 4]))
    if not _number(values[0]):
        return Check(path, False, level=level, expected=spec, observed=values,
                     message="%s is not a number: %s" % (name, render(values[0])))
    return Check(path, True, level=level, expected=spec, observed=values)


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


def _request_checks(label, selected, spec, path, ctx=None):
    ctx = ctx or Ctx()
    checks = []
    if "count" in spec:
        exp = spec["count"]
        why = match(exp, len(selected))
        checks.append(Check(path + ".count", why is None, True, exp,
                            len(selected), why and "%s requests: %s" % (label, why) or "",
                            kind="server", level=level_of(spec, exp, default=ctx.level)))
    names = [n for n, exp in (spec.get("headers") or {}).items()
             if applies(exp, ctx.client, ctx.journal)]
    for field_name in REQUEST_FIELDS:
        if field_name in spec and applies(spec[field_name], ctx.client, ctx.journal):
            exp = spec[field_name]
            bad = [e for e in selected if match(exp, e.get(field_name, MISSING)) is not None]
            checks.append(Check("%s.%s" % (path, field_name), not bad, True,
                                exp, [e.get(field_name) for e in selected],
                                bad and "%d of %d %s requests: %s" % (
                                    len(bad), len(selected), label,
                                    match(exp, bad[0].get(field_name, MISSING))) or "",
                                detail="\n".join(journal_line(e) for e in bad), kind="server",
                                level=level_of(spec, exp, default=ctx.level)))
    if spec.get("header_order") is not None:
        # the header names as the client sent them begin with these: case and order count
        want = list(spec["header_order"])

        def begins(names):
            return len(names) >= len(want) and all(match(w, n) is None
                                                   for w, n in zip(want, names))
        bad = [e for e in selected if not begins(list(e.get("header_names") or []))]
        checks.append(Check(
            path + ".header_order", not bad, True, want,
            [e.get("header_names") for e in selected],
            bad and "%d of %d %s requests: expected the header names to begin with %s, "
            "observed %s" % (len(bad), len(selected), label, render(want),
                             render(bad[0].get("header_names", MISSING))) or "",
            detail="\n".join(journal_line(e) for e in bad), kind="server",
            level=level_of(spec, default=ctx.level)))
    for name in names:
        exp = spec["headers"][name]
        bad = [e for e in selected if match(exp, header_values(e, name)) is not None]
        checks.append(Check(
            "%s.headers.%s" % (path, name), not bad, True, exp,
            [header_values(e, name) for e in selected],
            bad and "%d of %d %s requests: %s: %s" % (
                len(bad), len(selected), label, name, match(exp, header_values(bad[0], name)))
            or "", detail="\n".join(journal_line(e, [name]) for e in bad), kind="server",
            level=level_of(spec, exp, default=ctx.level)))
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


def grade_server(expect_server, journal, ctx=None, prefix="server"):
    """Checks of `expect.server` against the journal."""
    ctx = ctx or Ctx(journal=journal)
    if not is_strict(expect_server):  # strict: false on the whole of expect.server
        ctx = Ctx(ctx.client, ctx.journal, level_of(expect_server, default=ctx.level),
                  ctx.unobserved)
    entries = list((journal or {}).get("entries") or [])
    checks = []
    for n, spec in enumerate(expect_server.get("requests") or []):
        if not applies(spec, ctx.client, journal):
            continue
        label = "route %s" % spec["route"] if "route" in spec else "all"
        path = "%s.requests[%s]" % (prefix, spec.get("route", n))
        checks += _request_checks(label, _select(entries, spec), spec, path, ctx)
    if "preflights" in expect_server and applies(expect_server["preflights"], ctx.client,
                                                 journal):
        spec = expect_server["preflights"]
        if not isinstance(spec, dict) or is_matcher(spec):
            spec = {"count": spec, **({"level": level_of(spec)} if not is_strict(spec) else {})}
        selected = [e for e in entries if is_preflight(e)]
        checks += _request_checks("preflight", selected, spec, prefix + ".preflights", ctx)
    if "order" in expect_server and applies(expect_server["order"], ctx.client, journal):
        order = expect_server["order"]
        level = level_of(order, default=ctx.level)
        if isinstance(order, dict):
            order = order.get("routes", [])
        names = set(order)
        observed = _route_sequence(entries, names)
        expected = [r for k, r in enumerate(order) if k == 0 or order[k - 1] != r]
        ok = observed == expected
        checks.append(Check(prefix + ".order", ok, True, expected, observed,
                            "" if ok else "routes arrived in the order %s, expected %s"
                            % (render(observed), render(expected)), kind="server",
                            level=level))
    if "websocket" in expect_server and applies(expect_server["websocket"], ctx.client,
                                                journal):
        checks += _websocket_checks(expect_server["websocket"] or {}, entries, ctx, prefix)
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


def _websocket_checks(spec, entries, ctx=None, prefix="server"):
    """`expect.server.websocket`: the client's side of the session, from the journal."""
    ctx = ctx or Ctx()
    view = websocket_view(entries)
    if view is None:
        return [Check(prefix + ".websocket", False, True, spec, MISSING,
                      "no upgraded WebSocket session in the journal", kind="server",
                      level=level_of(spec, default=ctx.level))]
    checks = []
    for key, expected in spec.items():
        if key in MODIFIER_KEYS or not applies(expected, ctx.client, ctx.journal):
            continue
        observed = view.get(key, MISSING)
        why = match(expected, observed)
        checks.append(Check(prefix + ".websocket." + key, why is None, True, expected,
                            observed, why and "the client's %s: %s" % (key, why) or "",
                            kind="server", level=level_of(spec, expected, default=ctx.level)))
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


def needs_settled(expect):
    """Whether `expect.server` grades a WebSocket session (its end, close code, messages):
    the server records them as the session ends, a moment after the client saw the close,
    so the driver waits (briefly) for every entry to have ended before reading the journal."""
    return "websocket" in ((expect or {}).get("server") or {})


# --------------------------------------------------------------------------- time

def _nth(items, nth):
    """The nth of items (1-based; negative counts from the end), or None."""
    nth = 1 if nth is None else nth
    k = nth - 1 if nth > 0 else len(items) + nth
    return items[k] if 0 <= k < len(items) else None


def resolve_point(point, obs, journal):
    """A point's time: (clock, ms, what) with clock "client" or "journal", or
    (None, None, why-not)."""
    if "event" in point:
        selector = point.get("event") or {}
        found = _selected(selector, obs.get("events") or [])
        e = _nth(found, point.get("nth"))
        if e is None or not _number(e.get("t")):
            return None, None, "no event %s%s (%d such)" % (
                render(selector), "" if point.get("nth") in (None, 1) else
                " number %s" % point["nth"], len(found))
        return "client", e["t"], "%s at %.1f ms" % (render({k: e[k] for k in e if k in
                                                            set(selector) | {"type", "step"}}),
                                                   e["t"])
    spec = point.get("journal") or {}
    entries = sorted((journal or {}).get("entries") or [], key=lambda e: e.get("seq", 0))
    if "route" in spec:
        entries = [e for e in entries if e.get("route") == spec["route"]]
    if "kind" in spec:
        entries = [e for e in entries if is_preflight(e) == (spec["kind"] == "preflight")]
    e = _nth(entries, point.get("nth"))
    at = point.get("at", "arrived")
    if e is None:
        return None, None, "no journal entry %s%s (%d such)" % (
            render(spec), "" if point.get("nth") in (None, 1) else " number %s" % point["nth"],
            len(entries))
    t = e.get(at) if at in ("arrived", "ended") else (e.get("phases") or {}).get(at)
    if not _number(t):
        return None, None, "journal entry #%s has no %s time" % (e.get("seq"), at)
    return "journal", t, "journal #%s %s at %.1f ms" % (e.get("seq"), at, t)


def _clock(obs, journal, clock):
    """The epoch time of t = 0 of a clock, or None."""
    c = (obs if clock == "client" else journal or {}).get("clock")
    return c.get("epoch_ms") if isinstance(c, dict) and _number(c.get("epoch_ms")) else None


def _on_one_clock(a, b, obs, journal):
    """Two resolved points as (ta, tb, slack) on one clock, or None when the clocks cannot
    be related (the client reported none)."""
    (ca, ta, _), (cb, tb, _) = a, b
    if ca == cb:
        return ta, tb, 0.0
    ea, eb = _clock(obs, journal, ca), _clock(obs, journal, cb)
    if ea is None or eb is None:
        return None
    return ea + ta, eb + tb, CLOCK_SLACK_MS


def _gap_check(spec, obs, journal, ctx, path):
    level = level_of(spec, default=ctx.level)
    a = resolve_point(spec.get("from") or {}, obs, journal)
    b = resolve_point(spec.get("to") or {}, obs, journal)
    for p in (a, b):
        if p[0] is None:
            return Check(path, False, level=level, expected=spec, observed=MISSING,
                         message=p[2], kind="time")
    both = _on_one_clock(a, b, obs, journal)
    if both is None:
        return _unsupported(path, "this client reports no clock: its events and the journal "
                                  "cannot be compared (not graded)", "time")
    ta, tb, slack = both
    gap = round(tb - ta, 3)
    m = {k: spec[k] for k in ("at_least", "at_most", "approx", "tolerance") if k in spec}
    if slack and "approx" in m:
        m["tolerance"] = m.get("tolerance", 0) + slack
    if slack and "at_least" in m:
        m["at_least"] = m["at_least"] - slack
    if slack and "at_most" in m:
        m["at_most"] = m["at_most"] + slack
    why = match(m, gap)
    return Check(path, why is None, level=level, expected=m, observed=gap,
                 message=why and "the gap from %s to %s: %s" % (a[2], b[2], why) or "",
                 kind="time")


def _timeline_check(points, obs, journal, ctx, path):
    """timeline: the points happened in this order (on one clock)."""
    resolved = [resolve_point(p or {}, obs, journal) for p in points]
    missing = [r[2] for r in resolved if r[0] is None]
    if missing:
        return Check(path, False, level=ctx.level, expected=points, observed=MISSING,
                     message="; ".join(missing), kind="time")
    lines, bad = [], None
    for k, (a, b) in enumerate(zip(resolved, resolved[1:])):
        both = _on_one_clock(a, b, obs, journal)
        if both is None:
            return _unsupported(path, "this client reports no clock: its events and the "
                                      "journal cannot be compared (not graded)", "time")
        ta, tb, slack = both
        if tb < ta - slack and bad is None:
            bad = (k, a, b, ta - tb)
    epochs = {c: _clock(obs, journal, c) for c in ("client", "journal")}
    for r in resolved:
        t = r[1] + epochs[r[0]] - (epochs["client"] or 0) if epochs["client"] is not None \
            and epochs[r[0]] is not None else r[1]
        lines.append("%10.1f ms  %-7s %s" % (t, r[0], r[2]))
    if bad is None:
        return Check(path, True, level=ctx.level, expected=points, observed=lines,
                     kind="time")
    k, a, b, by = bad
    return Check(path, False, level=ctx.level, expected=points, observed=lines,
                 message="point %d (%s) came %.1f ms before point %d (%s)" % (
                     k + 2, b[2], by, k + 1, a[2]),
                 detail="on the client's clock:\n" + "\n".join(lines), kind="time")


def timeline(obs, journal):
    """One merged timeline of what the server did (requests arrived, responses sent and
    ended, WebSocket frames) and the client's events, on the client's clock (ms since its
    t = 0): a list of {t, side, what}, sorted. Empty without both clocks."""
    ec, ej = _clock(obs, journal, "client"), _clock(obs, journal, "journal")
    out = []
    for e in obs.get("events") or []:
        if isinstance(e, dict) and _number(e.get("t")):
            out.append({"t": e["t"], "side": "client",
                        "what": e.get("type", "?") + (" [%s]" % e["step"] if e.get("step") else "")})
    if ec is not None and ej is not None:
        shift = ej - ec
        for e in (journal or {}).get("entries") or []:
            name = "%s %s [%s]" % (e.get("method", "?"), e.get("path", "?"), e.get("route"))
            for at in JOURNAL_TIMES:
                t = e.get(at) if at in ("arrived", "ended") else (e.get("phases") or {}).get(at)
                if _number(t):
                    out.append({"t": round(t + shift, 3), "side": "server",
                                "what": "%s %s" % (name, at.replace("_", " "))})
    out.sort(key=lambda x: x["t"])
    return out


# --------------------------------------------------------------------------- verdict

def _client_info(client):
    """The grader's view of a client: {"name", "kind": browser | library, "capabilities"}."""
    if not client:
        return None
    kind = client.get("kind")
    return {"name": client.get("name"), "capabilities": client.get("capabilities") or [],
            "kind": "browser" if kind == "browser" else "library"}


def _grade_block(block, obs, journal, ctx, prefix):
    checks = []
    if "client" in block:
        checks += grade_client(block["client"] or {}, obs, ctx,
                               prefix + "client" if prefix else "client")
    if "server" in block:
        checks += grade_server(block["server"] or {}, journal, ctx,
                               prefix + "server" if prefix else "server")
    for n, spec in enumerate(block.get("gaps") or []):
        if applies(spec, ctx.client, journal):
            checks.append(_gap_check(spec, obs, journal, ctx, "%sgaps[%d]" % (prefix, n)))
    if block.get("timeline"):
        checks.append(_timeline_check(block["timeline"], obs, journal, ctx, prefix + "timeline"))
    return checks


def grade(expect, observations, journal=None, client=None):
    """Grade one run: `expect` (templates already expanded) against what was seen.

    client: {"name", "kind" (clients.yaml's: browser, node, python, program, or browser |
    library), "capabilities"}, for the checks scoped by `when`; None: no `when` holds.
    """
    expect = expect or {}
    obs = observations if isinstance(observations, dict) else {}
    info = _client_info(client)
    ctx = Ctx(info, journal)
    checks = _grade_block(expect, obs, journal, ctx, "")
    notes = []
    for n, case in enumerate(expect.get("cases") or []):
        if not applies(case, info, journal):
            continue
        case_ctx = Ctx(info, journal, level_of(case))
        checks += _grade_block(case, obs, journal, case_ctx, "cases[%d]." % n)
    if obs.get("deadline"):
        notes.append("the run reached its deadline before the action finished")
    if obs.get("pageUnresponsive"):
        notes.append("the page stopped answering (a synchronous request blocked it)")
    for err in obs.get("pageErrors") or []:
        notes.append("page error: %s" % (err.get("message") if isinstance(err, dict) else err))
    if journal and journal.get("dropped"):
        notes.append("the journal dropped %s entries" % journal["dropped"])
    for c in checks:
        if c.unsupported:
            notes.append("unsupported for this client: %s: %s" % (c.path, c.unsupported))
        elif not c.ok and c.level == "may":
            notes.append("may (informational): %s: %s" % (c.path, c.message))
    if any(not c.ok and c.level == "must" for c in checks):
        outcome = FAIL
    elif any(not c.ok and c.level == "should" for c in checks):
        outcome = NON_STRICT
    else:
        outcome = PASS
    return Verdict(outcome, checks, notes)


def format_check(check):
    """One failed check as text lines."""
    mark = {"must": "✗", "should": "~", "may": "·"}[check.level]
    lines = ["%s %s%s: %s" % (mark, check.path, "" if check.strict else " (%s)" % {
        "should": "strict: false", "may": "may: informational"}[check.level], check.message)]
    if not check.path.endswith(".events") and not check.detail \
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
