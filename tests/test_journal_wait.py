"""The journal wait (harness/src/jwait.c, docs/control-api.md "Waiting for the journal"):
its instance door on the scenario ports, /s/ID/_harness/wait, which client scripts'
`wait_for: {journal: …}` use from a page, a Node or a Python process without the token.

It really holds until the entry arrives, times out with the count, says nothing but
counts, is not journaled, sees its own instance only, sends no CORS header and leaves the
control API's protection as it was.
"""
import threading
import time

import requests

from conftest import LATE_S, machine_lag

ROUTES = """
    server:
      routes:
        - name: a
          match: {path: /a}
          response: {body: a, headers: [{X-Secret: not-for-the-wait}]}
        - name: b
          match: {path: /b}
          response: {body: b}
"""


def wait_url(server, instance, query):
    return "%s/s/%s/_harness/wait?%s" % (server.main, instance, query)


def held_wait(http, url, result):
    t0 = time.monotonic()
    r = http.get(url, timeout=30)
    result.update(code=r.status_code, body=r.json(), headers=r.headers,
                  t=time.monotonic() - t0)


def test_it_holds_until_the_entry_arrives(server, http):
    base = server.load(ROUTES)
    inst = server.last["instance"]
    result = {}
    th = threading.Thread(target=held_wait,
                          args=(http, wait_url(server, inst, "count=2&route=a&timeout=10000"),
                                result))
    t0 = time.monotonic()
    th.start()
    time.sleep(0.3)
    requests.get(base + "/b", timeout=5)  # another route does not count
    requests.get(base + "/a", timeout=5)
    time.sleep(0.3)
    assert th.is_alive(), "answered before the second entry of route a arrived: %r" % result
    due = time.monotonic() - t0
    requests.get(base + "/a", timeout=5)
    th.join(10)
    lag = machine_lag()
    assert result["code"] == 200 and result["body"] == {"count": 2, "wanted": 2}, result
    assert due - 0.02 <= result["t"] <= due + LATE_S + lag, (result["t"], due)


def test_it_times_out_with_the_count(server, http):
    base = server.load(ROUTES)
    inst = server.last["instance"]
    http.get(base + "/a")
    t0 = time.monotonic()
    r = http.get(wait_url(server, inst, "count=3&route=a&timeout=400"), timeout=10)
    took = time.monotonic() - t0
    assert r.status_code == 408 and r.json() == {"count": 1, "wanted": 3}
    assert 0.38 <= took <= 0.4 + LATE_S + machine_lag(), took
    # without route: every entry counts; already there: answered at once
    r = http.get(wait_url(server, inst, "count=1"), timeout=10)
    assert r.status_code == 200 and r.json() == {"count": 1, "wanted": 1}


def test_it_says_counts_only_and_is_not_journaled(server, http):
    base = server.load(ROUTES)
    inst = server.last["instance"]
    http.get(base + "/a", headers={"X-Mine": "private"})
    r = http.get(wait_url(server, inst, "count=1&route=a&timeout=100"),
                 headers={"Origin": server.cross})
    assert r.status_code == 200
    assert r.json() == {"count": 1, "wanted": 1}  # nothing else: no path, header, body
    assert "private" not in r.text and "not-for-the-wait" not in r.text
    assert not [h for h in r.headers if h.lower().startswith("access-control-")], r.headers
    assert r.headers["Cache-Control"] == "no-store"
    for _ in range(3):
        http.get(wait_url(server, inst, "count=5&timeout=50"))
    entries = server.entries(inst)
    assert [e["route"] for e in entries] == ["a"], entries  # the waits are not journaled
    # a wait does not count itself
    r = http.get(wait_url(server, inst, "count=2&timeout=50"))
    assert r.status_code == 408 and r.json()["count"] == 1


def test_it_sees_its_own_instance_only(server, http):
    a = server.load(ROUTES)
    inst_a = server.last["instance"]
    server.load(ROUTES)
    inst_b = server.last["instance"]
    http.get(a + "/a")
    http.get(a + "/a")
    r = http.get(wait_url(server, inst_b, "count=1&timeout=200"))
    assert r.status_code == 408 and r.json()["count"] == 0
    r = http.get(wait_url(server, inst_a, "count=2&timeout=200"))
    assert r.status_code == 200
    # other spellings are the instance's scenario paths (no route: 404), never a wait
    for path in ("/s/%s/_harness/wait/../../%s/_harness/wait" % (inst_b, inst_a),
                 "/s/%s/_harness/waits" % inst_a, "/s/%s/x/_harness/wait" % inst_a):
        r = http.get(server.main + path + "?count=0&timeout=10")
        assert r.status_code == 404 and "count" not in r.text, (path, r.text)
    r = http.get(server.main + "/s/no-such-instance/_harness/wait?timeout=10")
    assert r.status_code == 404


def test_its_bounds_method_and_unload(server, http):
    base = server.load(ROUTES)
    inst = server.last["instance"]
    r = http.post(wait_url(server, inst, "count=1"), data="x")
    assert r.status_code == 405
    assert server.entries(inst) == []
    # the cross port serves it too (the same instance)
    http.get(base + "/a")
    r = http.get("%s/s/%s/_harness/wait?count=1" % (server.cross, inst))
    assert r.status_code == 200
    # an instance unloaded while a wait is held: 404 at once
    result = {}
    th = threading.Thread(target=held_wait,
                          args=(http, wait_url(server, inst, "count=9&timeout=20000"), result))
    th.start()
    time.sleep(0.3)
    assert server.api("DELETE", "/instances/%s" % inst).status_code == 204
    th.join(10)
    assert result["code"] == 404 and result["t"] < 5, result


def test_the_control_api_is_as_protected_as_before(server, http):
    server.load(ROUTES)
    inst = server.last["instance"]
    # the control API's wait: still on the control port only, still behind the token
    r = http.get("%s/_harness/instances/%s/wait?count=0" % (server.main, inst))
    assert r.status_code == 404
    r = http.get("%s/_harness/instances/%s/wait?count=0" % (server.control, inst))
    assert r.status_code == 401
    r = server.api("GET", "/instances/%s/wait?count=0" % inst)
    assert r.status_code == 200 and r.json() == {"count": 0, "wanted": 0}
    # the control port serves no instance door
    r = http.get("%s/s/%s/_harness/wait?count=0" % (server.control, inst),
                 headers={"X-Harness-Token": server.token})
    assert r.status_code == 404
