"""Protocol behaviours of the server, checked byte by byte with real clients: CORS and
preflights, cookies, image pings, JSONP, long polling, HTTP streaming and Server-Sent Events
(including malformed streams and reconnection)."""
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest

from conftest import on_schedule, wait_until
from test_server_core import body_of, raw_get


# ----------------------------------------------------------------------------- CORS

CORS = """
    server:
      routes:
        - name: echo
          match: {path: /echo}
          cors: {allow_credentials: true, expose_headers: [X-A, X-B], max_age: 600,
                 allow_methods: [PUT], allow_headers: X-Custom}
          response: {headers: [{X-A: "1"}], body: e}
        - name: star
          match: {path: /star}
          cors: {allow_origin: "*", vary_origin: false}
          response: {body: s}
        - name: none
          match: {path: /none}
          cors: {allow_origin: none}
          response: {body: n}
        - name: wrong
          match: {path: /wrong}
          cors: {allow_origin: wrong, allow_credentials: "TRUE"}
          response: {body: w}
        - name: exact
          match: {path: /exact, method: GET}
          cors: {allow_origin: "http://only.example", preflight: none}
          response: {body: x}
        - name: scripted
          match: {path: /scripted, method: PUT}
          cors: {preflight: {status: 500, body: nope}}
          response: {body: p}
"""


def test_cors_actual_responses(server, http):
    base = server.load(CORS)
    o = {"Origin": "http://client.example"}
    r = http.get(base + "/echo", headers=o)
    assert r.headers["Access-Control-Allow-Origin"] == "http://client.example"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert r.headers["Access-Control-Expose-Headers"] == "X-A, X-B"
    assert r.headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Methods" not in r.headers  # only on preflights
    assert "Access-Control-Allow-Origin" not in http.get(base + "/echo").headers  # no Origin
    r = http.get(base + "/star", headers=o)
    assert r.headers["Access-Control-Allow-Origin"] == "*" and "Vary" not in r.headers
    assert "Access-Control-Allow-Origin" not in http.get(base + "/none", headers=o).headers
    r = http.get(base + "/wrong", headers=o)
    assert r.headers["Access-Control-Allow-Origin"] == "http://wrong.example"
    assert r.headers["Access-Control-Allow-Credentials"] == "TRUE"
    assert http.get(base + "/exact", headers=o).headers["Access-Control-Allow-Origin"] == \
        "http://only.example"
    assert {e["kind"] for e in server.entries()} == {"actual"}


def test_cors_preflights(server, http):
    base = server.load(CORS)
    pre = {"Origin": "http://client.example", "Access-Control-Request-Method": "PUT",
           "Access-Control-Request-Headers": "x-custom"}
    r = http.options(base + "/echo", headers=pre)
    assert r.status_code == 204 and r.content == b""
    assert r.headers["Access-Control-Allow-Origin"] == "http://client.example"
    assert r.headers["Access-Control-Allow-Methods"] == "PUT"
    assert r.headers["Access-Control-Allow-Headers"] == "X-Custom"
    assert r.headers["Access-Control-Max-Age"] == "600"
    assert "Access-Control-Expose-Headers" not in r.headers
    r = http.options(base + "/scripted", headers=pre)
    assert r.status_code == 500 and r.text == "nope"
    r = http.options(base + "/exact", headers=pre)  # preflight: none -> no route answers
    assert r.status_code == 404
    http.put(base + "/scripted", headers={"Origin": "http://client.example"})
    e = server.entries()
    assert [x["kind"] for x in e] == ["preflight", "preflight", "actual", "actual"]
    assert [x["route"] for x in e] == ["echo", "scripted", None, "scripted"]
    assert e[0]["cors"] == {"origin": "http://client.example", "request_method": "PUT",
                            "request_headers": "x-custom"}
    # a preflight does not advance the route's sequence
    assert e[3]["response_index"] == 0 and e[3]["count"] == 1


def test_cookie_set_then_sent(server, http):
    base = server.load("""
        server:
          routes:
            - name: login
              match: {path: /login}
              response: {headers: [{Set-Cookie: "sid=abc; Path=/; SameSite=None"}], body: ok}
            - name: me
              match: {path: /me}
              response: {body: "{{request.header.Cookie}}"}
    """)
    http.get(base + "/login")
    assert http.get(base + "/me").text == "sid=abc"
    me = [e for e in server.entries() if e["route"] == "me"][0]
    assert ["Cookie", "sid=abc"] in me["headers"]


# ----------------------------------------------------------------------------- pings, JSONP

def test_image_pings(server, http):
    base = server.load("""
        server:
          routes:
            - name: beacon
              match: {path: /b.gif}
              responses: [{status: 204}, {preset: gif}, {status: 500, preset: gif}, {preset: png}]
    """)
    r = http.get(base + "/b.gif?ev=click&x=1%202")
    assert r.status_code == 204 and r.content == b""
    r = http.get(base + "/b.gif")
    assert r.headers["Content-Type"] == "image/gif" and r.content[:6] == b"GIF89a"
    assert len(r.content) == 43
    assert http.get(base + "/b.gif").status_code == 500
    r = http.get(base + "/b.gif")
    assert r.headers["Content-Type"] == "image/png" and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert server.entries()[0]["query"] == "ev=click&x=1%202"


def test_jsonp(server, http):
    base = server.load("""
        server:
          routes:
            - name: ok
              match: {path: /data}
              response: {jsonp: {data: {n: 1, s: "</script>"}}}
            - name: param
              match: {path: /p}
              response: {jsonp: {param: cb, data_json: "[1,2]"}}
            - name: throws
              match: {path: /t}
              response: {jsonp: {throw: "boom"}}
            - name: nosniff
              match: {path: /n}
              response:
                headers: [{Content-Type: text/plain}, {X-Content-Type-Options: nosniff}]
                jsonp: {data: 1}
            - name: missing
              match: {path: /m}
              response: {status: 404, jsonp: {data: 1}}
    """)
    r = http.get(base + "/data?callback=app.got_1")
    assert r.text == 'app.got_1({"n":1,"s":"</script>"});\n'
    assert r.headers["Content-Type"] == "application/javascript"
    assert http.get(base + "/p?cb=$f").text == "$f([1,2]);\n"
    assert http.get(base + "/t?callback=f").text == 'throw new Error("boom");\n'
    r = http.get(base + "/n?callback=f")
    assert r.headers["Content-Type"] == "text/plain"
    assert r.headers["X-Content-Type-Options"] == "nosniff" and r.text == "f(1);\n"
    assert http.get(base + "/m?callback=f").status_code == 404
    for evil in ("alert(1)//", "a b", "1abc", "a..b", "<script>", "", "x" * 200):
        r = http.get(base + "/data", params={"callback": evil})
        assert r.status_code == 400
        assert evil == "" or evil not in r.text  # never reflected
    assert http.get(base + "/data").status_code == 400
    e = [x for x in server.entries() if x["route"] == "ok"]
    assert e[0]["jsonp"] == {"param": "callback", "callback_valid": True}
    assert e[1]["jsonp"]["callback_valid"] is False


# ----------------------------------------------------------------------------- comet

LONG_POLL = """
    server:
      channels:
        news:
          events:
            - {after: 400, data: first}
      routes:
        - name: poll
          match: {path: /poll}
          response:
            long_poll: {channel: news, hold_timeout: 1500, on_timeout: {status: 204}}
        - name: since
          match: {path: /since}
          response:
            long_poll: {channel: news, cursor_param: cursor, hold_timeout: 300, format: text}
"""


def test_long_poll_held_until_scheduled_event_then_continues(server, http):
    base = server.load(LONG_POLL)
    inst = server.last["instance"]
    t0 = time.monotonic()
    r = http.get(base + "/poll")
    held = time.monotonic() - t0
    assert r.json() == {"cursor": 1, "events": [{"id": 0, "data": "first"}]}
    assert 0.35 < held < 0.7
    # the next poll continues after what it got: held until a publish
    result = {}

    def poll():
        t = time.monotonic()
        r = http.get(base + "/poll")
        result.update(json=r.json(), t=time.monotonic() - t)

    th = threading.Thread(target=poll)
    th.start()
    time.sleep(0.3)
    p = server.api("POST", "/instances/%s/publish" % inst, json={"channel": "news",
                                                                 "data": {"k": 2}})
    assert p.status_code == 200
    th.join(5)
    assert result["json"] == {"cursor": 2, "events": [{"id": 1, "data": '{"k":2}'}]}
    assert 0.25 < result["t"] < 0.8
    # nothing more: the hold timeout answers 204
    t0 = time.monotonic()
    r = http.get(base + "/poll")
    assert r.status_code == 204 and 1.4 < time.monotonic() - t0 < 2.0
    lp = [e["long_poll"] for e in server.entries()]
    assert lp[0]["timed_out"] is False and lp[2]["timed_out"] is True


def test_channel_events_count_from_the_first_request(server, http):
    """A channel's scheduled events count from the instance's first request, not its load:
    a client that starts late (a loaded machine, a browser making its page) meets the
    schedule its scenario describes. An event published before then is available at once,
    ahead of the scheduled ones."""
    base = server.load(LONG_POLL)
    inst = server.last["instance"]
    time.sleep(0.5)  # past the event's 400 ms, counted from the load
    t0 = time.monotonic()
    r = http.get(base + "/poll")
    held = time.monotonic() - t0
    assert r.json() == {"cursor": 1, "events": [{"id": 0, "data": "first"}]}
    assert 0.35 < held < 0.7
    # after a reset, the clock starts again at the next request; a publish before it stays
    # where it was put
    assert server.api("POST", "/instances/%s/reset" % inst).status_code == 200
    time.sleep(0.5)
    p = server.api("POST", "/instances/%s/publish" % inst, json={"channel": "news",
                                                                 "data": "early"})
    assert p.status_code == 200
    t0 = time.monotonic()
    r = http.get(base + "/poll")
    assert time.monotonic() - t0 < 0.3
    assert r.json() == {"cursor": 1, "events": [{"id": 0, "data": "early"}]}
    t0 = time.monotonic()
    r = http.get(base + "/poll")
    assert r.json() == {"cursor": 2, "events": [{"id": 1, "data": "first"}]}
    assert 0.2 < time.monotonic() - t0 < 0.7


def test_long_poll_cursor_parameter(server, http):
    base = server.load(LONG_POLL)
    assert http.get(base + "/since?cursor=0").status_code == 204  # held 300 ms: the clock starts
    time.sleep(0.15)  # the event is due 400 ms after that first request
    r = http.get(base + "/since?cursor=0")
    assert r.text == "first" and r.headers["X-Harness-Cursor"] == "1"
    assert http.get(base + "/since?cursor=0").text == "first"  # the client owns the cursor
    r = http.get(base + "/since?cursor=1")
    assert r.status_code == 204


def test_http_streaming_chunks_on_schedule(server):
    base = server.load("""
        server:
          routes:
            - match: {path: /stream}
              response:
                headers: [{Content-Type: text/plain}]
                stream: [{data: "one;"}, {after: 200, data: "two;"}, {after: 200, data: "{{request.query.x}};"}]
    """)
    pieces, end = raw_get(base + "/stream?x=three")
    data = b"".join(p for _, p in pieces)
    assert b"Transfer-Encoding: chunked" in data
    assert data.endswith(b"4\r\none;\r\n4\r\ntwo;\r\n6\r\nthree;\r\n0\r\n\r\n")
    # each item against its due time from the request (0, 200, 400 ms), wherever the reads
    # happened to split them
    times = [t for t, p in pieces for _ in range(p.count(b";"))]
    assert len(times) == 3
    assert all(on_schedule(t, due) for t, due in zip(times, (0.0, 0.2, 0.4))), times


@pytest.mark.parametrize("then,ends", [("hang", "timeout"), ("reset", "reset")])
def test_stream_endings(server, then, ends):
    base = server.load("""
        server:
          routes:
            - match: {path: /s}
              response: {stream: [{data: a}], then: %s}
    """ % then)
    pieces, end = raw_get(base + "/s", timeout=0.6)
    assert end == ends
    assert b"1\r\na\r\n" in b"".join(p for _, p in pieces)


# ----------------------------------------------------------------------------- SSE

def test_sse_bytes_content_type_and_timing(server, http):
    base = server.load("""
        server:
          routes:
            - match: {path: /events}
              response:
                sse:
                  line_ending: cr
                  final_blank_line: false
                  events:
                    - {id: "1", data: "a\\nb"}
                    - {after: 250, event: tick, data: x, retry: 1000}
    """)
    pieces, end = raw_get(base + "/events")
    data = b"".join(p for _, p in pieces)
    assert b"Content-Type: text/event-stream\r\n" in data
    assert b"Cache-Control: no-store" in data
    assert body_of(pieces) == (b"17\r\nid: 1\rdata: a\rdata: b\r\r\r\n"
                               b"20\r\nevent: tick\rretry: 1000\rdata: x\r\r\n0\r\n\r\n")
    times = [t for t, p in pieces for _ in range(p.count(b"data: "))]
    assert len(times) == 3  # a, b, then x
    assert all(on_schedule(t, due) for t, due in zip(times, (0.0, 0.0, 0.25))), times


@pytest.mark.parametrize("ctype,expected", [
    ('content_type: "text/plain"', b"Content-Type: text/plain\r\n"),
    ('content_type: ""', None),
    ('content_type: "text/event-stream; charset=utf-8"',
     b"Content-Type: text/event-stream; charset=utf-8\r\n"),
])
def test_sse_content_types(server, ctype, expected):
    base = server.load("""
        server:
          routes:
            - match: {path: /e}
              response: {sse: {%s, events: [{data: x}]}}
    """ % ctype)
    head = b"".join(p for _, p in raw_get(base + "/e")[0]).split(b"\r\n\r\n")[0] + b"\r\n"
    if expected:
        assert expected in head
    else:
        assert b"Content-Type" not in head


def test_sse_malformed_bytes(server):
    base = server.load("""
        server:
          routes:
            - match: {path: /e}
              response:
                sse:
                  bom: true
                  data_space: false
                  line_ending: mixed
                  events:
                    - {id: "a\\0b", data: x}
                    - {lines: ["data", ":comment", "field without colon", "data:  two spaces"]}
                    - {raw_base64: "ZGF0YTog/w0KDQo="}
    """)
    body = body_of(raw_get(base + "/e")[0])
    chunks, rest = [], body
    while rest:
        size, rest = rest.split(b"\r\n", 1)
        n = int(size, 16)
        if n == 0:
            break
        chunks.append(rest[:n])
        rest = rest[n + 2:]
    # the three events are due together: one chunk, one write (docs/scenarios.md, sse)
    assert chunks == [b"\xef\xbb\xbfid:a\x00b\ndata:x\r\r\n"
                      b"data\n:comment\rfield without colon\r\ndata:  two spaces\n"
                      b"data: \xff\r\n\r\n"]


def test_sse_reconnection_sequence_with_required_last_event_id(server, http):
    base = server.load("""
        server:
          routes:
            - name: stream
              match: {path: /events}
              responses:
                - sse: {events: [{id: "7", data: one, retry: 100}]}
                - require: {headers: {Last-Event-ID: "7"}}
                  sse: {events: [{data: two}]}
                - {status: 204}
    """)
    http.get(base + "/events")
    time.sleep(0.1)
    http.get(base + "/events", headers={"Last-Event-ID": "7"})
    time.sleep(0.05)
    assert http.get(base + "/events").status_code == 204
    e = server.entries()
    assert "require" not in e[0]
    assert e[1]["require"] == {"met": True, "failed": []}
    assert [x["status"] for x in e] == [200, 200, 204]
    gap = e[1]["arrived"] - e[0]["ended"]
    assert gap >= 90  # the journal shows the gap between attempts

    base = server.load("""
        server:
          routes:
            - name: stream
              match: {path: /events}
              response:
                require: {headers: {Last-Event-ID: {regex: "^[0-9]+$"}}}
                sse: {events: [{data: x}]}
    """)
    http.get(base + "/events")
    assert server.entries()[0]["require"] == {"met": False, "failed": ["Last-Event-ID"]}


def test_sse_then_hang_and_client_leaves(server):
    base = server.load("""
        server:
          routes:
            - match: {path: /e}
              response: {sse: {events: [{data: x}], then: hang}}
    """)
    pieces, end = raw_get(base + "/e", timeout=0.4)
    assert end == "timeout" and b"data: x" in b"".join(p for _, p in pieces)
    assert wait_until(lambda: server.entries()[0]["end"] == "client_closed", 3)


def test_curl_sees_the_stream_incrementally(server):
    base = server.load("""
        server:
          routes:
            - match: {path: /e}
              response: {sse: {events: [{data: a}, {after: 300, data: b}]}}
    """)
    p = subprocess.run(["curl", "-sN", "-w", "%{time_total}", base + "/e"], capture_output=True,
                       text=True, timeout=10)
    assert p.stdout.startswith("data: a\n\ndata: b\n\n")
    assert float(p.stdout.rsplit("\n", 1)[1]) >= 0.28


# ------------------------------------------------- a stream's pieces written by the timer

def test_stream_over_http10_is_close_delimited_and_on_schedule(server):
    """Between pieces the timer thread writes a stream by hand (deliver.c): over HTTP/1.0
    the pieces go out bare, each on its schedule, and the connection's close ends them."""
    base = server.load("""
        server:
          routes:
            - match: {path: /s}
              response: {stream: [{data: "a;"}, {after: 200, data: "bb;"}, {after: 200, data: "c;"}]}
    """)
    u = urllib.parse.urlsplit(base + "/s")
    c = socket.create_connection((u.hostname, u.port), timeout=5)
    c.sendall(("GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (u.path, u.netloc)).encode())
    t0 = time.monotonic()
    pieces = []
    while True:
        d = c.recv(65536)
        if not d:
            break
        pieces.append((time.monotonic() - t0, d))
    c.close()
    data = b"".join(p for _, p in pieces)
    assert b"Transfer-Encoding" not in data
    assert body_of(pieces) == b"a;bb;c;"
    times = [t for t, p in pieces for _ in range(p.count(b";"))]
    assert all(on_schedule(t, due) for t, due in zip(times, (0.0, 0.2, 0.4))), times
    e = server.entries()[0]
    assert e["bytes_sent"] == 7 and e["end"] == "complete", e


def test_stream_client_leaving_between_pieces_is_noticed_at_the_next_piece(server):
    """A client gone while its stream waits (suspended, no thread reads it) is found when
    the next piece is written: the journal says client_closed, and what was sent."""
    base = server.load("""
        server:
          routes:
            - match: {path: /s}
              response: {sse: {events: [{data: x}, {after: 300, data: y}, {after: 300, data: z}]}}
    """)
    u = urllib.parse.urlsplit(base + "/s")
    c = socket.create_connection((u.hostname, u.port), timeout=5)
    c.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (u.path, u.netloc)).encode())
    got = b""
    while b"data: x" not in got:
        got += c.recv(65536)
    c.close()
    # the next piece (due at 0.3 s) meets the closed socket; the one after it, a reset
    assert wait_until(lambda: server.entries()[0].get("end") == "client_closed", 5), \
        server.entries()[0]
    assert server.entries()[0]["bytes_sent"] >= len(b"data: x\n\n")
