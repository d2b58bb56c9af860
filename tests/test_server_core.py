"""The server core against real clients (requests, curl, raw sockets): timing, trickles,
faults, raw bytes, sequences, templates, both ports, the journal, the wait API, isolation
and a clean stop. Timing checks compare with tolerances, never with absolute speed goals."""
import concurrent.futures
import http.client as http_client
import signal
import socket
import statistics
import subprocess
import threading
import time
import urllib.parse

import pytest
import requests

from conftest import LAG_FACTOR, Server, machine_lag, on_schedule, wait_until


def raw_get(url, timeout=5.0, extra_headers=""):
    """GET with a plain socket: [(seconds since send, bytes)] as they arrived, and how the
    connection ended ('eof', 'reset' or 'timeout')."""
    u = urllib.parse.urlsplit(url)
    s = socket.create_connection((u.hostname, u.port), timeout=timeout)
    target = u.path + ("?" + u.query if u.query else "")
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s\r\n"
               % (target, u.netloc, extra_headers)).encode())
    t0 = time.monotonic()
    pieces, end = [], "eof"
    try:
        while True:
            data = s.recv(65536)
            if not data:
                break
            pieces.append((time.monotonic() - t0, data))
    except ConnectionResetError:
        end = "reset"
    except socket.timeout:
        end = "timeout"
    s.close()
    return pieces, end


def body_of(pieces):
    data = b"".join(p for _, p in pieces)
    return data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""


def test_delay_within_tolerance(server, http):
    base = server.load("""
        server:
          routes:
            - match: {path: /slow}
              response: {body: late, delay: 300}
    """)
    slack = LAG_FACTOR * machine_lag()  # 0 on an idle machine
    t0 = time.monotonic()
    r = http.get(base + "/slow")
    elapsed = time.monotonic() - t0
    assert r.text == "late"
    assert 0.295 <= elapsed < 0.45 + slack
    e = server.entries()[0]
    late = e["phases"]["headers_sent"] - e["arrived"] - 300
    assert -30 <= late <= 30 + slack * 1000, (late, slack)


def test_concurrent_delays_do_not_block_each_other(server):
    """100 concurrent 500 ms delays: each one's error against 500 ms stays small, and the
    whole batch takes about one delay, not a hundred."""
    base = server.load("""
        server:
          routes:
            - match: {path: /d}
              response: {body: ok, delay: 500}
    """)

    def one(_):
        s = requests.Session()
        s.trust_env = False
        t0 = time.monotonic()
        r = s.get(base + "/d", timeout=10)
        return r.status_code, time.monotonic() - t0

    slack_ms = LAG_FACTOR * machine_lag() * 1000  # 0 on an idle machine
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(100) as pool:
        results = list(pool.map(one, range(100)))
    wall = time.monotonic() - t0
    assert all(code == 200 for code, _ in results)
    # the server's own view: response queued 500 ms after arrival
    errors = [abs(e["phases"]["headers_sent"] - e["arrived"] - 500) for e in server.entries()]
    assert len(errors) == 100
    assert statistics.median(errors) < 20 + slack_ms, (slack_ms, errors)
    assert max(errors) < 100 + slack_ms, (slack_ms, errors)
    # 100 sequential delays would take 50 s; the clients' own work (100 Python threads)
    # grows with the machine's lag
    assert wall < 3.0 + 25 * slack_ms / 1000, (wall, slack_ms)


def test_body_delay_sends_headers_first(server, http):
    base = server.load("""
        server:
          routes:
            - match: {path: /bd}
              response: {body: body, body_delay: 400}
    """)
    lag = machine_lag()
    pieces, end = raw_get(base + "/bd")
    assert end == "eof"
    assert pieces[0][1].startswith(b"HTTP/1.1 200") and b"body" not in pieces[0][1]
    body_t = next(t for t, p in pieces if b"body" in p)
    # the headers at once, the body 400 ms after them: each on its own schedule
    assert on_schedule(pieces[0][0], 0.0, lag) and on_schedule(body_t, 0.4, lag), (lag, pieces)
    assert body_of(pieces) == b"body"


@pytest.mark.parametrize("transfer", ["length", "chunked"])
def test_trickle_observed_piece_by_piece(server, transfer):
    base = server.load("""
        server:
          routes:
            - match: {path: /t}
              response: {body: "abcdefghij", trickle: {bytes: 2, every: 150}, transfer: %s}
    """ % transfer)
    pieces, end = raw_get(base + "/t")
    assert end == "eof"
    data = b"".join(p for _, p in pieces)
    head_len = data.index(b"\r\n\r\n") + 4
    # body byte i (a..j: letters appear nowhere else after the head, chunk sizes are "2")
    # is due 150 ms * (i // 2) after the first two, which go out with the headers: after the
    # request was sent (t = 0), so never before 0.150 * (i // 2)
    arrivals, seen = [], 0
    for t, p in pieces:
        body = p[max(0, head_len - seen):]
        seen += len(p)
        arrivals += [(t, c - ord("a")) for c in body if ord("a") <= c <= ord("j")]
    assert [i for _, i in arrivals] == list(range(10)), arrivals
    for t, i in arrivals:
        assert on_schedule(t, 0.150 * (i // 2)), (i, t)
    if transfer == "chunked":
        assert b"Transfer-Encoding: chunked" in data
        assert b"\r\n2\r\nab\r\n" in data and b"\r\n2\r\nij\r\n0\r\n\r\n" in data
    else:
        assert b"Content-Length: 10" in data and data.endswith(b"abcdefghij")


def test_fault_close_truncates_the_body(server, http):
    base = server.load("""
        server:
          routes:
            - match: {path: /c}
              response: {body: "0123456789", fault: {action: close, after_bytes: 4}}
    """)
    r = http.get(base + "/c")  # requests (urllib3 1.x) accepts a short body silently
    assert r.headers["Content-Length"] == "10" and r.content == b"0123"
    p = subprocess.run(["curl", "-sS", base + "/c"], capture_output=True, text=True)
    assert p.returncode == 18 and p.stdout == "0123"
    assert wait_until(lambda: server.entries()[-1]["end"] == "fault_close")


def test_fault_reset_is_a_tcp_reset(server):
    base = server.load("""
        server:
          routes:
            - match: {path: /r}
              response: {body: "0123456789", fault: {action: reset, after_bytes: 4}}
            - match: {path: /r0}
              response: {fault: reset}
    """)
    p = subprocess.run(["curl", "-sS", base + "/r"], capture_output=True, text=True)
    assert p.returncode == 56 and "reset" in p.stderr.lower()
    pieces, end = raw_get(base + "/r0")
    assert end == "reset" and pieces == []
    assert wait_until(lambda: [e["end"] for e in server.entries()] == ["fault_reset"] * 2)


def test_fault_hang_times_the_client_out_and_is_freed(server, http):
    base = server.load("""
        server:
          routes:
            - match: {path: /h}
              response: {body: "0123456789", fault: {action: hang, after_bytes: 3}}
    """)
    with pytest.raises(requests.exceptions.ConnectionError):
        http.get(base + "/h", timeout=0.5)
    # the client went away: the server notices and ends the request
    assert wait_until(lambda: server.entries()[0]["end"] == "client_closed", 5)


def test_fault_close_before_anything(server):
    base = server.load("""
        server:
          routes:
            - match: {path: /x}
              response: {fault: close}
    """)
    pieces, end = raw_get(base + "/x")
    assert pieces == [] and end == "eof"


def test_raw_bytes_go_out_exactly(server):
    raw = "HTTP/1.1 200 OK\\r\\nContent-Length: 5\\r\\nX-Bad header\\r\\n\\r\\nhel"
    base = server.load("""
        server:
          routes:
            - match: {path: /raw}
              response: {raw: "%s"}
            - match: {path: /raw64}
              response: {raw_base64: "SFRUUC8xLjEgMjAwIE9LDQpUcmFuc2Zlci1FbmNvZGluZzogY2h1bmtlZA0KDQp6eg0K"}
    """ % raw)
    pieces, end = raw_get(base + "/raw")
    assert b"".join(p for _, p in pieces) == \
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Bad header\r\n\r\nhel"
    pieces, _ = raw_get(base + "/raw64")
    assert b"".join(p for _, p in pieces) == \
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    assert [e["status"] for e in server.entries()] == [200, 200]


def test_custom_reason_phrase(server):
    base = server.load("""
        server:
          routes:
            - match: {path: /x}
              response: {status: 299, reason: "Fine Thanks", headers: [{X-A: "1"}], body: ok}
    """)
    pieces, _ = raw_get(base + "/x")
    data = b"".join(p for _, p in pieces)
    assert data.startswith(b"HTTP/1.1 299 Fine Thanks\r\nX-A: 1\r\n")
    assert data.endswith(b"\r\n\r\nok")


def test_sequences_repeat_cycle_not_found(server, http):
    base = server.load("""
        server:
          routes:
            - name: rep
              match: {path: /rep}
              responses: [{body: a}, {body: b}]
            - name: cyc
              match: {path: /cyc}
              responses: [{body: a}, {body: b}]
              after_last: cycle
            - name: nf
              match: {path: /nf}
              responses: [{body: a}]
              after_last: not_found
    """)
    assert [http.get(base + "/rep").text for _ in range(4)] == ["a", "b", "b", "b"]
    assert [http.get(base + "/cyc").text for _ in range(5)] == ["a", "b", "a", "b", "a"]
    assert [http.get(base + "/nf").status_code for _ in range(3)] == [200, 404, 404]
    nf = [e for e in server.entries() if e["route"] == "nf"]
    assert [e["response_index"] for e in nf] == [0, None, None]
    server.api("POST", "/instances/%s/reset" % server.last["instance"])
    assert http.get(base + "/nf").status_code == 200
    assert len(server.entries()) == 1


def test_matching_and_templates(server, http):
    base = server.load("""
        server:
          routes:
            - name: q
              match: {method: [GET], path: /m, query: {k: {regex: "^v[0-9]$"}}, headers: {X-Key: {present: true}}}
              response:
                headers:
                  - Access-Control-Allow-Origin: "{{request.header.Origin}}"
                  - X-Q: "{{request.query.k}}"
                  - Set-Cookie: a=1
                  - Set-Cookie: b=2
                body: "{{request.method}} {{request.path}} {{request.target}} {{request.count}} {{origin.cross}} {{base}} {{{{x}}"
            - name: re
              match: {path_regex: "^/items/[0-9]+$", method: POST}
              response: {body: "got {{request.body}}"}
    """)
    r = http.get(base + "/m?k=v7", headers={"X-Key": "1", "Origin": "http://o.example"})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "http://o.example"
    assert r.headers["X-Q"] == "v7"
    assert r.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    inst = server.last["instance"]
    assert r.text == "GET /m /m?k=v7 1 %s /s/%s {{x}}" % (server.cross, inst)
    assert http.get(base + "/m?k=v77", headers={"X-Key": "1"}).status_code == 404
    assert http.get(base + "/m?k=v7").status_code == 404
    assert http.post(base + "/items/12", data="hello").text == "got hello"
    assert http.post(base + "/items/x", data="hello").status_code == 404
    routes = [e["route"] for e in server.entries()]
    assert routes == ["q", None, None, "re", None]


def test_both_ports_serve_the_instance(server, http):
    base = server.load("""
        server:
          routes:
            - match: {path: /p}
              response: {body: "{{request.header.Host}}"}
    """)
    path = urllib.parse.urlsplit(base).path
    assert http.get(server.main + path + "/p").status_code == 200
    assert http.get(server.cross + path + "/p").status_code == 200
    assert http.get(server.alt + path + "/p").text.startswith("localhost:")
    e = server.entries()
    assert [x["origin"] for x in e] == ["main", "cross", "main"]
    assert e[1]["port"] == int(server.cross.rsplit(":", 1)[1])


def test_journal_entry_fields(server, http):
    base = server.load("""
        server:
          routes:
            - name: echo
              match: {path: /j}
              response: {status: 201, body: done}
    """)
    u = urllib.parse.urlsplit(base)
    c = http_client.HTTPConnection(u.hostname, u.port)
    c.putrequest("POST", u.path + "/j?a=1")
    c.putheader("X-One", "1")
    c.putheader("x-one", "2")
    c.putheader("Content-Length", "2")
    c.endheaders(b"\x00\xff")
    assert c.getresponse().read() == b"done"
    c.close()
    http.post(base + "/j", data="text body")
    j = server.journal()
    assert j["total"] == 2 and j["dropped"] == 0
    e = j["entries"][0]
    assert e["seq"] == 1 and e["method"] == "POST" and e["path"] == "/j"
    assert e["target"].endswith("/j?a=1") and e["query"] == "a=1"
    assert e["body_base64"] == "AP8=" and e["body_len"] == 2
    names = [n for n, _ in e["headers"]]
    assert names.index("X-One") < names.index("x-one")
    assert e["route"] == "echo" and e["response_index"] == 0 and e["status"] == 201
    assert e["end"] == "complete" and e["bytes_sent"] == 4
    ph = e["phases"]
    assert e["arrived"] <= ph["headers_sent"] <= ph["body_first_byte"] <= ph["body_done"]
    assert j["entries"][1]["body"] == "text body"
    since = server.api("GET", "/instances/%s/journal?since=1" % server.last["instance"]).json()
    assert [x["seq"] for x in since["entries"]] == [2]


def test_wait_api_answers_as_soon_as_enough_requests_arrived(server, http):
    base = server.load("""
        server:
          routes:
            - name: a
              match: {path: /a}
              response: {body: a}
    """)
    inst = server.last["instance"]
    result = {}

    def waiter():
        t0 = time.monotonic()
        r = server.api("GET", "/instances/%s/wait?count=2&route=a&timeout=5000" % inst)
        result.update(code=r.status_code, body=r.json(), t=time.monotonic() - t0)

    th = threading.Thread(target=waiter)
    th.start()
    time.sleep(0.2)
    http.get(base + "/a")
    time.sleep(0.2)
    http.get(base + "/a")
    th.join(10)
    assert result["code"] == 200 and result["body"]["count"] == 2
    assert 0.35 < result["t"] < 1.5
    t0 = time.monotonic()
    r = server.api("GET", "/instances/%s/wait?count=5&timeout=300" % inst)
    assert r.status_code == 408 and r.json()["count"] == 2
    assert 0.28 < time.monotonic() - t0 < 1.0


def test_parallel_instances_are_isolated(server, http):
    yaml = """
        server:
          routes:
            - match: {path: /n}
              responses: [{body: first}, {body: second}]
    """
    a = server.load(yaml)
    ia = server.last["instance"]
    b = server.load(yaml)
    ib = server.last["instance"]
    assert ia != ib
    assert http.get(a + "/n").text == "first"
    assert http.get(b + "/n").text == "first"
    assert http.get(a + "/n").text == "second"
    assert len(server.entries(ia)) == 2 and len(server.entries(ib)) == 1


def test_control_api(server, http):
    assert server.api("GET", "/health").json()["status"] == "ok"
    v = server.api("GET", "/version").json()
    assert v["name"] == "comet-harness" and v["version"]
    assert server.api("GET", "/origins").json() == {"main": server.main, "cross": server.cross,
                                                    "alt": server.alt}
    r = server.api("POST", "/instances", json={"yaml": "id: x\ntitle: t\n"})
    assert r.status_code == 400
    errs = r.json()["errors"]
    assert errs and all({"file", "line", "col", "message"} <= set(e) for e in errs)
    y = "id: ctl.one\ntitle: t\nspec: https://x.org/\nclient:\n  http: {url: /}\n"
    r = server.api("POST", "/instances", json={"yaml": y, "id": "mine"})
    assert r.status_code == 201 and r.json()["instance"] == "mine"
    assert r.json()["urls"]["cross"] == server.cross + "/s/mine"
    assert r.json()["client"] == {"http": {"url": "/"}}
    assert server.api("POST", "/instances", json={"yaml": y, "id": "mine"}).status_code == 409
    ids = [i["instance"] for i in server.api("GET", "/instances").json()["instances"]]
    assert "mine" in ids
    assert server.api("DELETE", "/instances/mine").status_code == 204
    assert server.api("GET", "/instances/mine").status_code == 404
    assert http.get(server.main + "/s/mine/").status_code == 404
    assert server.api("GET", "/nope").status_code == 404
    # the control API is on its own port only; the page is on the scenario ports only
    for origin in (server.main, server.cross):
        assert http.get(origin + "/_harness/health").status_code == 404
        assert http.get(origin + "/_harness/version", headers=server.control_headers()
                        ).status_code == 404
        assert http.get(origin + "/_harness/page").headers["Content-Type"].startswith("text/html")
    assert server.api("GET", "/page").status_code == 404


def test_serve_files_and_journal_limit(harness_bin, tmp_path):
    f = tmp_path / "one.yaml"
    f.write_text("id: lim.one\ntitle: t\nspec: https://x.org/\nclient:\n  http: {url: /}\n"
                 "server:\n  routes:\n    - {match: {path: /}, response: {body: x}}\n")
    s = Server(harness_bin, [str(f), "--journal-limit", "3"])
    try:
        assert s.ready["instances"] == ["lim.one"]
        for _ in range(5):
            assert s.session.get(s.main + "/s/lim.one/").text == "x"
        j = s.journal("lim.one")
        assert j["total"] == 5 and j["dropped"] == 2 and [e["seq"] for e in j["entries"]] == [3, 4, 5]
    finally:
        assert s.stop() == 0
    assert "GET /s/lim.one/" in s.stderr  # one log line per request


def test_serve_refuses_broken_files(harness_bin, tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("id: x\n")
    p = subprocess.run([harness_bin, "serve", str(f)], capture_output=True, text=True, timeout=10)
    assert p.returncode == 1 and "%s:1:1: missing 'title'" % f in p.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_clean_stop_with_suspended_connections(harness_bin, tmp_path, sig):
    f = tmp_path / "hold.yaml"
    f.write_text("id: stop.one\ntitle: t\nspec: https://x.org/\nclient:\n  http: {url: /}\n"
                 "server:\n  routes:\n"
                 "    - {match: {path: /hang}, response: {fault: hang}}\n"
                 "    - {match: {path: /slow}, response: {body: x, delay: 60000}}\n"
                 "    - {match: {path: /drip}, response: {body: xxxxxxxx, trickle: {bytes: 1, every: 10s}}}\n")
    s = Server(harness_bin, [str(f), "--quiet"])
    socks = []
    for path in ("/hang", "/slow", "/drip"):
        c = socket.create_connection(("127.0.0.1", int(s.main.rsplit(":", 1)[1])))
        c.sendall(b"GET /s/stop.one%s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
        socks.append(c)
    assert wait_until(lambda: len(s.journal("stop.one")["entries"]) == 3)
    t0 = time.monotonic()
    assert s.stop(sig) == 0, s.stderr
    assert time.monotonic() - t0 < 3
    for c in socks:
        c.close()


def test_body_file_beside_the_scenario(server, http):
    import os
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures/good/body-file.yaml")
    r = server.api("POST", "/instances", json={"file": path})
    assert r.status_code == 201, r.text
    body = http.get(server.main + r.json()["base"] + "/file").content
    assert body == open(os.path.join(os.path.dirname(path), "data.bin"), "rb").read()
    assert body == b"\x00\x01binary\xff"
