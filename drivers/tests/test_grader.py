"""The grader: each matcher, each events mode, each outcome, the journal expectations."""
import pytest

from comet_harness import grader
from comet_harness.grader import MISSING, grade, match


# ------------------------------------------------------------------------ matchers

@pytest.mark.parametrize("expected, observed", [
    (200, 200), (200, 200.0), ("OK", "OK"), (True, True), (None, None),
    ({"equals": "x"}, "x"),
    ({"regex": "^hel+o$"}, "hello"), ({"regex": "ell"}, "hello"),
    ({"one_of": [0, 200]}, 0), ({"one_of": ["a", {"regex": "^b"}]}, "bee"),
    ({"absent": True}, MISSING), ({"absent": True}, None),
    ({"present": True}, ""), ({"present": True}, 0),
    ({"at_least": 2}, 2), ({"at_least": 2}, 7.5),
    ({"at_most": 3}, 3), ({"at_least": 1, "at_most": 3}, 2),
    ({"approx": 100, "tolerance": 10}, 109.9), ({"approx": 100, "tolerance": 10}, 90),
    ({"a": 1}, {"a": 1, "b": 2}),                 # a mapping checks the keys it lists
    ({"a": {"absent": True}}, {"b": 2}),
    ([1, {"regex": "x"}], [1, "xyz"]),
])
def test_matcher_holds(expected, observed):
    assert match(expected, observed) is None


@pytest.mark.parametrize("expected, observed, words", [
    (200, 404, "expected 200, observed 404"),
    (200, MISSING, "not observed"),
    (1, True, "expected 1"),                      # booleans are not numbers
    (True, 1, "expected true"),
    ("200", 200, "expected \"200\""),
    ({"equals": "x"}, "y", "expected x"),
    ({"regex": "^a"}, "ba", "matching /^a/"),
    ({"regex": "a"}, 5, "matching /a/"),
    ({"one_of": [1, 2]}, 3, "one of [1, 2]"),
    ({"absent": True}, "v", "expected absent"),
    ({"present": True}, MISSING, "expected present"),
    ({"at_least": 2}, 1, "at least 2"),
    ({"at_least": 2}, "3", "at least 2"),
    ({"at_most": 3}, 4, "at most 3"),
    ({"approx": 100, "tolerance": 10}, 111, "100 ± 10"),
    ({"a": 1}, {"a": 2}, "a: expected 1"),
    ({"a": 1}, "text", "expected a mapping"),
    ([1, 2], [1], "expected 2 items"),
])
def test_matcher_fails_with_a_reason(expected, observed, words):
    why = match(expected, observed)
    assert why is not None and words in why, why


def test_is_matcher_and_strict():
    assert grader.is_matcher({"regex": "x", "strict": False})
    assert not grader.is_matcher({"content-type": "text/plain"})
    assert not grader.is_matcher({"strict": False})
    assert not grader.is_strict({"present": True, "strict": False})
    assert grader.is_strict({"present": True}) and grader.is_strict(3)


def test_render_is_readable():
    assert grader.render({"regex": "^a"}) == "/^a/"
    assert grader.render({"at_least": 1, "at_most": 3}) == "≥ 1 and ≤ 3"
    assert grader.render({"type": "load", "loaded": 5}) == "{type: load, loaded: 5}"
    assert grader.render("200") == '"200"' and grader.render("true") == '"true"'
    assert grader.render(MISSING) == "<not observed>"
    assert "chars" in grader.render("x" * 1000)


# ------------------------------------------------------------------------ client part

def obs(events=(), **state):
    return dict(state, events=[dict(e) for e in events])


XHR_TIMEOUT = [
    {"type": "readystatechange", "t": 1.0, "readyState": 1},
    {"type": "loadstart", "t": 1.2, "loaded": 0, "total": 0, "lengthComputable": False},
    {"type": "readystatechange", "t": 200.5, "readyState": 4},
    {"type": "timeout", "t": 200.6, "loaded": 0, "total": 0, "lengthComputable": False},
    {"type": "loadend", "t": 200.6, "loaded": 0, "total": 0, "lengthComputable": False},
]
EXPECT_TIMEOUT = [{"type": "readystatechange", "readyState": 1}, {"type": "loadstart"},
                  {"type": "readystatechange", "readyState": 4}, {"type": "timeout"},
                  {"type": "loadend"}]


def test_client_pass():
    v = grade({"client": {"events": EXPECT_TIMEOUT, "status": 0}}, obs(XHR_TIMEOUT, status=0))
    assert v.outcome == "pass", v
    assert [c.path for c in v.checks] == ["client.events", "client.status"]


def test_client_fail_on_a_value():
    v = grade({"client": {"status": 0, "statusText": ""}}, obs(status=200, statusText="OK"))
    assert v.outcome == "fail"
    assert [c.path for c in v.failures] == ["client.status", "client.statusText"]


def test_client_missing_key_is_not_observed():
    v = grade({"client": {"responseText": "x"}}, obs())
    assert v.outcome == "fail" and "not observed" in v.checks[0].message


def test_headers_are_case_insensitive():
    o = obs(headers={"content-type": "text/plain", "x-a": "1"})
    v = grade({"client": {"headers": {"Content-Type": {"regex": "^text/"},
                                      "X-Missing": {"absent": True}}}}, o)
    assert v.outcome == "pass", v
    assert {c.path for c in v.checks} == {"client.headers.content-type", "client.headers.x-missing"}


def test_exact_mode():
    assert grader.grade_events(EXPECT_TIMEOUT, XHR_TIMEOUT, "exact").ok
    # one more event than expected
    extra = XHR_TIMEOUT + [{"type": "load", "t": 201}]
    c = grader.grade_events(EXPECT_TIMEOUT, extra, "exact")
    assert not c.ok and c.strict
    assert "+ " in c.detail and "{type: load}" in c.detail
    # one missing
    c = grader.grade_events(EXPECT_TIMEOUT, XHR_TIMEOUT[:3] + XHR_TIMEOUT[4:], "exact")
    assert not c.ok and "- " in c.detail and "timeout" in c.detail
    # same events, another order
    swapped = XHR_TIMEOUT[:3] + [XHR_TIMEOUT[4], XHR_TIMEOUT[3]]
    assert not grader.grade_events(EXPECT_TIMEOUT, swapped, "exact").ok


def test_events_match_on_listed_fields_only():
    items = [{"type": "message", "data": "one"}]
    events = [{"type": "message", "t": 3, "data": "one", "lastEventId": "7", "origin": "x"}]
    assert grader.grade_events(items, events, "exact").ok
    assert not grader.grade_events([{"type": "message", "data": "two"}], events, "exact").ok
    assert grader.grade_events([{"type": "message", "data": {"regex": "^o"}}], events, "exact").ok


def test_subsequence_mode():
    items = [{"type": "loadstart"}, {"type": "timeout"}]
    assert grader.grade_events(items, XHR_TIMEOUT, "subsequence").ok
    assert not grader.grade_events(items[::-1], XHR_TIMEOUT, "subsequence").ok
    c = grader.grade_events([{"type": "loadstart"}, {"type": "load"}], XHR_TIMEOUT, "subsequence")
    assert not c.ok and "- " in c.detail and "· " in c.detail


def test_contains_mode():
    items = [{"type": "loadend"}, {"type": "loadstart"}]
    assert grader.grade_events(items, XHR_TIMEOUT, "contains").ok
    # each item needs a distinct event: two loadstarts are not one
    assert not grader.grade_events([{"type": "loadstart"}] * 2, XHR_TIMEOUT, "contains").ok
    # an item that matches several events does not steal the only event of another
    items = [{"type": "readystatechange"}, {"type": "readystatechange", "readyState": 1}]
    assert grader.grade_events(items, XHR_TIMEOUT, "contains").ok
    c = grader.grade_events([{"type": "error"}], XHR_TIMEOUT, "contains")
    assert not c.ok and "(no such event)" in c.detail


def test_unknown_events_mode_fails():
    c = grader.grade_events([], [], "sometimes")
    assert not c.ok and "unknown events_mode" in c.message


@pytest.mark.parametrize("mode", ["exact", "subsequence", "contains"])
def test_non_strict_event_items(mode):
    items = EXPECT_TIMEOUT[:3] + [{"type": "progress", "strict": False}] + EXPECT_TIMEOUT[3:]
    v = grade({"client": {"events": items, "events_mode": mode}}, obs(XHR_TIMEOUT))
    assert v.outcome == "non-strict", v
    assert v.soft_failures[0].path == "client.events"
    # a strict item missing too: a failure
    items = items + [{"type": "load"}]
    assert grade({"client": {"events": items, "events_mode": mode}}, obs(XHR_TIMEOUT)).outcome \
        == "fail"


def test_non_strict_value_and_outcomes():
    soft = {"client": {"statusText": {"equals": "OK", "strict": False}, "status": 200}}
    assert grade(soft, obs(status=200, statusText="OK")).outcome == "pass"
    v = grade(soft, obs(status=200, statusText="Fine"))
    assert v.outcome == "non-strict" and not v.failures and len(v.soft_failures) == 1
    assert grade(soft, obs(status=500, statusText="Fine")).outcome == "fail"


def test_empty_expect_passes():
    assert grade({}, obs()).outcome == "pass"
    assert grade(None, None).outcome == "pass"


def test_notes():
    v = grade({}, {"events": [], "deadline": True, "pageErrors": [{"message": "boom", "t": 1}]},
              {"entries": [], "dropped": 3})
    assert any("deadline" in n for n in v.notes)
    assert any("boom" in n for n in v.notes)
    assert any("dropped 3" in n for n in v.notes)


# ------------------------------------------------------------------------ server part

def entry(seq, route, method="GET", headers=(), arrived=None, **kw):
    return dict(seq=seq, route=route, method=method, target="/s/i/" + str(route),
                path="/" + str(route), headers=[list(h) for h in headers],
                arrived=arrived if arrived is not None else seq * 10.0, status=200, **kw)


JOURNAL = {"total": 4, "dropped": 0, "entries": [
    entry(1, "preflight", "OPTIONS", [("Origin", "http://a"), ("Access-Control-Request-Method", "PUT")]),
    entry(2, "data", "PUT", [("Origin", "http://a"), ("X-A", "1"), ("X-A", "2")], body="hi"),
    entry(3, "data", "PUT", [("Origin", "http://a")], body="hi"),
    entry(4, None, "GET", [("Origin", "http://a")]),
]}


def test_requests_count_and_headers():
    v = grade({"server": {"requests": [
        {"route": "data", "count": 2, "headers": {"origin": "http://a", "Cookie": {"absent": True}}},
        {"route": "preflight", "count": {"at_least": 1}},
        {"route": "other", "count": 0},
    ]}}, None, JOURNAL)
    assert v.outcome == "pass", [c.message for c in v.checks]


def test_requests_failures_show_the_journal_lines():
    v = grade({"server": {"requests": [
        {"route": "data", "count": 1, "headers": {"X-A": "1"}}]}}, None, JOURNAL)
    assert v.outcome == "fail"
    count, header = v.failures
    assert count.path == "server.requests[data].count" and count.observed == 2
    assert header.path == "server.requests[data].headers.X-A"
    assert "#3" in header.detail and "X-A: <absent>" in header.detail
    # duplicates are joined with ", " as the scenario format says
    assert header.observed == ["1, 2", MISSING]


def test_requests_method_and_body():
    assert grade({"server": {"requests": [{"route": "data", "method": "PUT", "body": "hi"}]}},
                 None, JOURNAL).outcome == "pass"
    v = grade({"server": {"requests": [{"route": "data", "body": {"regex": "^x"}}]}}, None, JOURNAL)
    assert v.outcome == "fail" and v.failures[0].path == "server.requests[data].body"


def test_unmatched_requests_have_route_null():
    assert grade({"server": {"requests": [{"route": None, "count": 1}]}}, None,
                 JOURNAL).outcome == "pass"


def test_non_strict_request_entry():
    v = grade({"server": {"requests": [{"route": "data", "count": 5, "strict": False}]}},
              None, JOURNAL)
    assert v.outcome == "non-strict"


def test_preflights():
    assert grade({"server": {"preflights": 1}}, None, JOURNAL).outcome == "pass"
    assert grade({"server": {"preflights": 0}}, None, JOURNAL).outcome == "fail"
    assert grade({"server": {"preflights": {"at_most": 1}}}, None, JOURNAL).outcome == "pass"
    v = grade({"server": {"preflights": {"count": 1, "headers": {
        "Access-Control-Request-Method": "PUT", "Origin": {"present": True}}}}}, None, JOURNAL)
    assert v.outcome == "pass", v
    # an OPTIONS without Access-Control-Request-Method is not a preflight
    j = {"entries": [entry(1, "x", "OPTIONS", [("Origin", "http://a")])]}
    assert grade({"server": {"preflights": 0}}, None, j).outcome == "pass"


def test_order():
    assert grade({"server": {"order": ["preflight", "data"]}}, None, JOURNAL).outcome == "pass"
    v = grade({"server": {"order": ["data", "preflight"]}}, None, JOURNAL)
    assert v.outcome == "fail" and "server.order" == v.failures[0].path
    # arrival time decides, not the journal's order
    j = {"entries": [entry(1, "b", arrived=50), entry(2, "a", arrived=10)]}
    assert grade({"server": {"order": ["a", "b"]}}, None, j).outcome == "pass"
    # "preflight" stands for preflight requests when no route has that name
    j = {"entries": [entry(1, None, "OPTIONS", [("Access-Control-Request-Method", "PUT")]),
                     entry(2, "data", "PUT")]}
    assert grade({"server": {"order": ["preflight", "data"]}}, None, j).outcome == "pass"


def test_needed_counts():
    exp = {"server": {"requests": [{"route": "a", "count": 2}, {"route": "b", "count": {"at_least": 3}},
                                   {"route": "c", "count": 0}, {"route": "d"}]}}
    assert grader.needed_counts(exp) == {"a": 2, "b": 3}
    assert grader.needed_counts({}) == {}


# ------------------------------------------------------------------------ failure text

def test_failure_text_is_actionable():
    v = grade({"client": {"events": EXPECT_TIMEOUT, "status": 0},
               "server": {"requests": [{"route": "data", "headers": {"X-A": "1"}}]}},
              obs(XHR_TIMEOUT[:3] + [{"type": "load", "t": 5}], status=200), JOURNAL)
    text = grader.format_failure(
        v, {"id": "xhr.timeout.delayed-headers", "title": "XHR timeout",
            "spec": "https://xhr.spec.whatwg.org/#the-timeout-attribute", "file": "x.yaml"},
        {"name": "chromium", "version": "1.2"}, JOURNAL, "line one\nline two\n")
    assert text.startswith("xhr.timeout.delayed-headers [chromium 1.2]: FAIL")
    assert "spec: https://xhr.spec.whatwg.org/#the-timeout-attribute" in text
    assert "✗ client.events" in text and "- " in text and "+ " in text
    assert "✗ client.status: expected 0, observed 200" in text
    assert "journal (4 requests):" in text and "#2" in text and "X-A: 1, 2" in text
    assert "adapter stderr" in text and "line two" in text


def test_long_event_diffs_keep_both_ends():
    events = [{"type": "progress", "t": i, "loaded": i} for i in range(1000)] + [{"type": "load"}]
    c = grader.grade_events([{"type": "loadstart"}, {"type": "load"}], events, "exact")
    lines = c.detail.splitlines()
    assert len(lines) <= grader.MAX_DIFF_LINES + 1
    assert "- " in lines[1] and "lines …" in c.detail and "{type: load}" in lines[-1]


# --------------------------------------------------------------- expect.server.websocket

def ws_journal(events, upgraded=True, end="closed_by_server"):
    return {"entries": [{"seq": 1, "route": "ws", "method": "GET", "headers": [],
                         "websocket": {"upgraded": upgraded, "events": events, "end": end}}]}


WS_EVENTS = [
    {"kind": "frame", "dir": "out", "opcode": 9, "payload": "p", "masked": False},
    {"kind": "frame", "dir": "in", "opcode": 10, "payload": "p", "masked": True},
    {"kind": "frame", "dir": "in", "opcode": 1, "payload": "hi", "masked": True},
    {"kind": "message", "dir": "in", "type": "text", "data": "hi"},
    {"kind": "close", "dir": "in", "code": 1000, "reason": ""},
]


def test_websocket_client_side_passes():
    spec = {"pongs": ["p"], "messages": ["hi"], "close_code": 1000, "masked": True,
            "violations": [], "end": "closed_by_server"}
    checks = grader.grade_server({"websocket": spec}, ws_journal(WS_EVENTS))
    assert len(checks) == 6 and all(c.ok for c in checks)


def test_websocket_client_side_failures_name_what_differs():
    events = WS_EVENTS[2:] + [{"kind": "violation", "what": "unmasked client frame"}]
    events[0] = dict(events[0], masked=False)
    checks = grader.grade_server({"websocket": {"pongs": ["p"], "masked": True,
                                                "violations": []}}, ws_journal(events))
    bad = {c.path for c in checks if not c.ok}
    assert bad == {"server.websocket.pongs", "server.websocket.masked",
                   "server.websocket.violations"}


def test_websocket_without_a_session_fails_once():
    checks = grader.grade_server({"websocket": {"pongs": []}}, ws_journal([], upgraded=False))
    assert len(checks) == 1 and not checks[0].ok and "no upgraded" in checks[0].message


def test_websocket_non_strict_close_code():
    checks = grader.grade_server({"websocket": {"close_code": {"equals": 4002, "strict": False}}},
                                 ws_journal(WS_EVENTS))
    assert len(checks) == 1 and not checks[0].ok and not checks[0].strict


# ------------------------------------------------------------------------ one vocabulary

def _tables(harness_bin):
    import json
    import subprocess
    out = subprocess.run([harness_bin, "keys", "--json"], capture_output=True, check=True)
    doc = json.loads(out.stdout)
    assert doc["version"] == 1
    return doc["tables"]


def _keys(tables, table_id):
    return set(tables[table_id]["keys"])


def test_grader_and_check_share_the_expect_vocabulary(harness_bin):
    """`harness check` validates expect from its key tables: every key it accepts, the
    grader understands, and the other way round (a key in one only would be a typo that
    silently grades nothing, or a check the author cannot write)."""
    t = _tables(harness_bin)
    assert _keys(t, "matcher") == set(grader.MATCHER_KEYS) | set(grader.MODIFIER_KEYS)
    assert _keys(t, "expect") == set(grader.EXPECT_KEYS)
    assert _keys(t, "expect.case") == set(grader.CASE_KEYS)
    assert _keys(t, "expect.when") == set(grader.WHEN_KEYS)
    assert t["expect.when"]["keys"]["kind"]["values"] == list(grader.CLIENT_KINDS)
    assert t["matcher"]["keys"]["level"]["values"] == list(grader.LEVELS)
    assert _keys(t, "expect.gap") == set(grader.GAP_KEYS)
    assert _keys(t, "expect.point") == set(grader.POINT_KEYS)
    assert t["expect.point"]["keys"]["at"]["values"] == list(grader.JOURNAL_TIMES)
    assert _keys(t, "expect.client.all") == set(grader.ALL_KEYS)
    assert _keys(t, "expect.client.monotonic") == set(grader.MONOTONIC_KEYS)
    assert _keys(t, "expect.server") == set(grader.SERVER_KEYS)
    assert _keys(t, "expect.server.request") == set(grader.REQUEST_KEYS)
    assert _keys(t, "expect.server.order") == set(grader.ORDER_KEYS)
    assert _keys(t, "expect.server.websocket") == set(grader.WEBSOCKET_KEYS)
    assert set(grader.websocket_view([{"websocket": {"upgraded": True}}])) == \
        set(grader.WEBSOCKET_KEYS) - set(grader.MODIFIER_KEYS)
    for variant in t["expect"]["keys"]["client"]["variants"].values():
        assert t[variant]["keys"]["events_mode"]["values"] == list(grader.EVENT_MODES)


def test_expect_client_keys_are_the_protocols_observations(harness_bin):
    """expect.client names observations; the adapter protocol's schema defines them per
    capability (and the fields of each capability's events)."""
    import json
    import os
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "drivers", "schema", "adapter-protocol.schema.json")) as f:
        defs = json.load(f)["$defs"]

    def fields(node):
        out = set()
        if isinstance(node, dict):
            if "$ref" in node:
                out |= fields(defs[node["$ref"].split("/")[-1]])
            out |= set(node.get("properties", {}))
            for k in ("oneOf", "anyOf", "allOf"):
                for sub in node.get(k, []):
                    out |= fields(sub)
        return out

    t = _tables(harness_bin)
    variants = t["expect"]["keys"]["client"]["variants"]
    assert set(variants) == _keys(t, "client") - {"deadline"}  # deadline: a script's
    for action, table_id in variants.items():
        assert _keys(t, table_id) == set(defs["observations." + action]["properties"]) | \
            {"events_mode"} | set(grader.CLIENT_LIST_KEYS), action
        events_table = t[table_id]["keys"]["events"]["table"]
        assert _keys(t, events_table) == fields(defs["event." + action]) | \
            set(grader.ITEM_KEYS), action


@pytest.mark.parametrize("field", grader.REQUEST_FIELDS)
def test_every_request_field_is_graded(field):
    entry = {"seq": 1, "route": "r", "method": "GET", "path": "/p", "target": "/p?a=1",
             "query": "a=1", "body": "", "status": 200, "tls": True, "sni": "a.localhost",
             "request_line": "GET /p?a=1 HTTP/1.1", "header_names": ["Host", "Accept"]}
    spec = {"route": "r", field: entry[field]}
    assert grade({"server": {"requests": [spec]}}, {}, {"entries": [entry]}).outcome == "pass"
    spec[field] = {"regex": "^nothing-like-it$"}
    assert grade({"server": {"requests": [spec]}}, {}, {"entries": [entry]}).outcome == "fail"


# ------------------------------------------------------------------------ counts, all, monotonic

def _progress(n, loaded=None, computable=False):
    return [{"type": "progress", "t": float(i), "loaded": (loaded or range(n))[i],
             "lengthComputable": computable} for i in range(n)]


@pytest.mark.parametrize("count, n, mode, ok", [
    ({"at_least": 3}, 3, "subsequence", True),
    ({"at_least": 3}, 2, "subsequence", False),
    ({"at_most": 2}, 3, "subsequence", False),   # every progress before load is counted
    ({"at_most": 2}, 2, "subsequence", True),
    (3, 3, "exact", True),
    ({"at_least": 1}, 0, "exact", False),
    ({"at_least": 2}, 4, "contains", True),
    ({"at_most": 1}, 4, "contains", False),
])
def test_count_items(count, n, mode, ok):
    events = [{"type": "loadstart", "t": 0}] + _progress(n) + [{"type": "load", "t": 9}]
    items = [{"type": "progress", "count": count}, {"type": "load"}]
    if mode == "exact":
        items = [{"type": "loadstart"}] + items
    verdict = grade({"client": {"events": items, "events_mode": mode}}, {"events": events})
    assert (verdict.outcome == "pass") == ok, verdict.checks[0].detail


def test_count_counts_only_the_events_before_the_next_item():
    events = _progress(1) + [{"type": "load", "t": 5}] + _progress(3)
    items = [{"type": "progress", "count": {"at_least": 2}}, {"type": "load"}]
    verdict = grade({"client": {"events": items, "events_mode": "subsequence"}},
                    {"events": events})
    assert verdict.outcome == "fail"
    assert "1 matching events" not in verdict.checks[0].detail  # 4 in all are shown
    assert "4 matching events in all" in verdict.checks[0].detail


def test_all_every_selected_event_matches():
    spec = {"all": [{"events": {"type": "progress"}, "match": {"lengthComputable": False}}]}
    assert grade({"client": spec}, {"events": _progress(3)}).outcome == "pass"
    events = _progress(3)
    events[1]["lengthComputable"] = True
    verdict = grade({"client": spec}, {"events": events})
    assert verdict.outcome == "fail" and "1 of 3 events" in verdict.checks[0].message
    # nothing selected: at least one by default, or as count says
    assert grade({"client": spec}, {"events": []}).outcome == "fail"
    spec["all"][0]["count"] = {"at_least": 0}
    assert grade({"client": spec}, {"events": []}).outcome == "pass"


@pytest.mark.parametrize("loaded, strictly, ok", [
    ([0, 5, 5, 9], False, True), ([0, 5, 5, 9], True, False), ([0, 5, 4], False, False),
    ([3], False, True),
])
def test_monotonic(loaded, strictly, ok):
    spec = {"monotonic": [{"events": {"type": "progress"}, "field": "loaded",
                           "strictly": strictly}]}
    verdict = grade({"client": spec}, {"events": _progress(len(loaded), loaded)})
    assert (verdict.outcome == "pass") == ok, verdict.checks[0].message


# ------------------------------------------------------------------------ scripts

SCRIPT_OBS = {
    "events": [{"type": "loadstart", "t": 1, "step": "a"},
               {"type": "exception", "t": 2, "step": "step-2", "target": "a",
                "name": "InvalidStateError", "message": "m"},
               {"type": "load", "t": 50, "step": "a"},
               {"type": "loadstart", "t": 1001, "step": "b"},
               {"type": "load", "t": 1100, "step": "b"}],
    "steps": {"a": {"status": 200}, "b": {"status": 204}},
    "clock": {"epoch_ms": 1000000.0},
}
SCRIPT_JOURNAL = {"clock": {"epoch_ms": 1000000.0 - 10},
                  "entries": [{"seq": 1, "route": "r", "arrived": 15.0, "ended": 55.0},
                              {"seq": 2, "route": "r", "arrived": 1015.0, "ended": 1105.0}]}


def test_step_expectations_see_their_own_events_and_state():
    expect = {"client": {"steps": {"a": {"status": 200, "events": [{"type": "loadstart"},
                                                                   {"type": "load"}]},
                                   "b": {"status": 204}}}}
    assert grade(expect, SCRIPT_OBS).outcome == "pass"
    expect["client"]["steps"]["b"]["status"] = 200
    verdict = grade(expect, SCRIPT_OBS)
    assert [c.path for c in verdict.failures] == ["client.steps.b.status"]
    verdict = grade({"client": {"steps": {"c": {"status": 1}}}}, SCRIPT_OBS)
    assert verdict.outcome == "fail" and "no step c" in verdict.failures[0].message


@pytest.mark.parametrize("gap, ok", [
    ({"at_least": 900}, True), ({"at_least": 1000}, False), ({"at_most": 960}, True),
    ({"approx": 951, "tolerance": 5}, True),
])
def test_gap_between_events(gap, ok):
    expect = {"gaps": [dict(gap, **{"from": {"event": {"type": "load", "step": "a"}},
                                    "to": {"event": {"type": "loadstart", "step": "b"}}})]}
    verdict = grade(expect, SCRIPT_OBS)
    assert (verdict.outcome == "pass") == ok, verdict.checks[0].message


def test_gap_between_journal_entries_and_across_clocks():
    # journal ↔ journal: the second request arrived 960 ms after the first ended
    j = {"gaps": [{"from": {"journal": {"route": "r"}, "at": "ended"},
                   "to": {"journal": {"route": "r"}, "nth": 2}, "at_least": 950}]}
    assert grade(j, {}, SCRIPT_JOURNAL).outcome == "pass"
    # event ↔ journal: the journal's t = 0 is 10 ms before the client's, so entry 1 arrived
    # at client time 5 ms: 4 ms after loadstart [a] (give or take the clock slack)
    x = {"gaps": [{"from": {"event": {"type": "loadstart", "step": "a"}},
                   "to": {"journal": {"route": "r"}}, "approx": 4, "tolerance": 0}]}
    assert grade(x, SCRIPT_OBS, SCRIPT_JOURNAL).outcome == "pass"
    x["gaps"][0]["approx"] = 20
    assert grade(x, SCRIPT_OBS, SCRIPT_JOURNAL).outcome == "fail"
    # without the client's clock, an event ↔ journal gap is unsupported, not failed
    obs = dict(SCRIPT_OBS)
    del obs["clock"]
    verdict = grade(x, obs, SCRIPT_JOURNAL)
    assert verdict.outcome == "pass" and verdict.checks[0].unsupported
    assert any("unsupported" in n for n in verdict.notes)


def test_timeline_orders_server_facts_and_client_events():
    # on the client's clock: loadstart 1, request arrived 5, response ended 45, load 50
    points = [{"event": {"type": "loadstart", "step": "a"}}, {"journal": {"route": "r"}},
              {"journal": {"route": "r"}, "at": "ended"},
              {"event": {"type": "load", "step": "a"}}]
    assert grade({"timeline": points}, SCRIPT_OBS, SCRIPT_JOURNAL).outcome == "pass"
    verdict = grade({"timeline": [points[3], points[2]]}, SCRIPT_OBS, SCRIPT_JOURNAL)
    assert verdict.outcome == "fail" and "came 5.0 ms before" in verdict.checks[0].message
    line = [t["what"] for t in grader.timeline(SCRIPT_OBS, SCRIPT_JOURNAL)]
    assert line.index("loadstart [a]") < line.index("? ? [r] arrived") < \
        line.index("load [a]")


# ------------------------------------------------------------------------ per-kind expectations

CHROMIUM = {"name": "chromium", "kind": "browser", "capabilities": ["xhr", "steps"]}
XHR2 = {"name": "node-xhr2", "kind": "node", "capabilities": ["xhr"]}


def test_cases_apply_by_kind_client_and_capability():
    expect = {"cases": [{"when": {"kind": "browser"}, "client": {"status": 0}},
                        {"when": {"kind": "library"}, "client": {"status": 200}}]}
    assert grade(expect, {"status": 0}, client=CHROMIUM).outcome == "pass"
    assert grade(expect, {"status": 200}, client=XHR2).outcome == "pass"
    assert grade(expect, {"status": 0}, client=XHR2).outcome == "fail"
    named = {"cases": [{"when": {"client": ["node-xhr2"]}, "client": {"status": 1}}]}
    assert grade(named, {"status": 0}, client=CHROMIUM).outcome == "pass"
    assert grade(named, {"status": 0}, client=XHR2).outcome == "fail"
    cap = {"cases": [{"when": {"capability": "steps"}, "client": {"status": 1}}]}
    assert grade(cap, {"status": 0}, client=XHR2).outcome == "pass"
    assert grade(cap, {"status": 0}, client=CHROMIUM).outcome == "fail"
    # an unknown client: no when holds
    assert grade(named, {"status": 0}).outcome == "pass"


def test_levels_must_should_may():
    def outcome(level):
        expect = {"cases": [{"when": {"kind": "library"}, "level": level,
                             "client": {"status": 200}}]}
        return grade(expect, {"status": 0}, client=XHR2)
    assert outcome("must").outcome == "fail"
    assert outcome("should").outcome == "non-strict"
    verdict = outcome("may")
    assert verdict.outcome == "pass" and verdict.informational
    assert any(n.startswith("may (informational)") for n in verdict.notes)
    # on one entry; the weakest level wins
    entry = {"client": {"status": {"equals": 200, "level": "may"}}}
    assert grade(entry, {"status": 0}).outcome == "pass"
    item = {"client": {"events": [{"type": "open", "level": "should"}, {"type": "close"}]}}
    assert grade(item, {"events": [{"type": "close"}]}).outcome == "non-strict"
    scoped = {"client": {"events": [{"type": "open", "when": {"kind": "browser"}},
                                    {"type": "close"}]}}
    assert grade(scoped, {"events": [{"type": "close"}]}, client=XHR2).outcome == "pass"
    assert grade(scoped, {"events": [{"type": "close"}]}, client=CHROMIUM).outcome == "fail"


def test_offers_looks_at_the_handshake():
    journal = {"entries": [{"websocket": {"handshake": {
        "offered_extensions": ["permessage-deflate; client_max_window_bits"]}}}]}
    expect = {"cases": [{"when": {"offers": "permessage-deflate"}, "client": {"status": 1}}]}
    assert grade(expect, {}, journal, client=XHR2).outcome == "fail"
    assert grade(expect, {}, {"entries": []}, client=XHR2).outcome == "pass"


def test_unobserved_fields_are_unsupported_not_failed():
    obs = {"events": [{"type": "open", "interface": "Event"}], "unobserved": ["bubbles"]}
    expect = {"client": {"events": [{"type": "open", "bubbles": False}]}}
    verdict = grade(expect, obs)
    assert verdict.outcome == "pass"
    assert any(c.unsupported for c in verdict.checks)
    assert grade(expect, {"events": [{"type": "open", "bubbles": True}]}).outcome == "fail"


def test_points_select_preflights_or_actual_requests():
    pre = {"seq": 1, "route": "r", "method": "OPTIONS", "arrived": 1.0,
           "headers": [["Access-Control-Request-Method", "PUT"]]}
    put = {"seq": 2, "route": "r", "method": "PUT", "headers": [], "arrived": 5.0}
    journal = {"entries": [pre, put]}
    gap = {"from": {"journal": {"route": "r", "kind": "preflight"}},
           "to": {"journal": {"route": "r", "kind": "actual"}}, "approx": 4, "tolerance": 0}
    assert grade({"gaps": [gap]}, {}, journal).outcome == "pass"


def test_header_order_is_a_prefix_with_case():
    entry = {"seq": 1, "route": "r", "header_names": ["Host", "User-Agent", "Accept"]}

    def outcome(order):
        spec = {"route": "r", "header_order": order}
        return grade({"server": {"requests": [spec]}}, {}, {"entries": [entry]}).outcome
    assert outcome(["Host"]) == "pass"
    assert outcome(["Host", "User-Agent", "Accept"]) == "pass"
    assert outcome(["host"]) == "fail"                    # case counts
    assert outcome(["User-Agent"]) == "fail"              # a prefix, not anywhere
    assert outcome(["Host", "Accept"]) == "fail"          # in this order, nothing between
    assert outcome(["Host", "User-Agent", "Accept", "X"]) == "fail"
    assert outcome([{"regex": "^(?i:host)$"}, "User-Agent"]) == "pass"  # a matcher per name
    assert outcome([{"regex": "^(?i:accept)$"}]) == "fail"
