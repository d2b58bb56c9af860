"""WebSockets against real clients — websocket-client (sync) and websockets (asyncio):
the handshake and each of its faults, scripted frames, ping/pong, close, and malformed
frames, checking both what the client observed and what the journal recorded.

`ws_clients.md` beside the results (tests/…/ws-client-matrix) is not written here: run
`/usr/bin/python3 tests/ws_matrix.py` for the table of which malformed frames each client
rejects as RFC 6455 requires."""
import asyncio
import json
import os
import subprocess

import pytest
import websocket  # websocket-client
import websockets

from conftest import wait_until


def ws_url(base, path):
    return base.replace("http://", "ws://") + path


def session(server, instance=None):
    entries = server.entries(instance)
    return entries[-1]["websocket"]


def frames(ws_record, direction=None):
    return [e for e in ws_record["events"] if e["kind"] == "frame"
            and (direction is None or e["dir"] == direction)]


def wait_end(server):
    assert wait_until(lambda: server.entries()[-1].get("websocket", {}).get("end"), 8), \
        server.entries()[-1]
    return server.entries()[-1]


SCRIPT = """
    server:
      routes:
        - name: ws
          match: {path: /ws}
          response:
            websocket:
              script:
                - send: hello
                - send: {binary_base64: AAEC/w==}
                - send: {text: "fragmented text", fragments: 3}
                - ping: pingpayload
                - echo: {count: 1, timeout: 3s}
                - close: {code: 4000, reason: done}
"""


def test_script_with_websocket_client(server):
    base = server.load(SCRIPT)
    c = websocket.create_connection(ws_url(base, "/ws"), timeout=5,
                                    origin="http://page.example",
                                    subprotocols=["chat", "v2"])
    assert c.getsubprotocol() == "chat"
    assert c.recv() == "hello"
    assert c.recv() == b"\x00\x01\x02\xff"
    assert c.recv() == "fragmented text"
    c.send("echo me")
    assert c.recv() == "echo me"
    op, data = c.recv_data(control_frame=True)
    assert op == websocket.ABNF.OPCODE_CLOSE and data == b"\x0f\xa0done"
    c.close()
    e = wait_end(server)
    w = e["websocket"]
    assert e["status"] == 101 and w["upgraded"] is True
    assert w["origin"] == "http://page.example"
    assert w["offered_protocols"] == ["chat", "v2"] and w["protocol_sent"] == "chat"
    assert w["problems"] == []
    out = frames(w, "out")
    assert [f["opcode"] for f in out[:6]] == [1, 2, 1, 0, 0, 9]
    assert [f["fin"] for f in out[2:5]] == [False, False, True]
    assert all(not f["masked"] for f in out)
    inbound = frames(w, "in")
    assert all(f["masked"] for f in inbound)  # a client masks every frame
    pong = [f for f in inbound if f["opcode"] == 10]
    assert pong and pong[0]["payload"] == "pingpayload"  # same payload as the ping
    assert [m["data"] for m in w["events"] if m["kind"] == "message"] == ["echo me"]
    close_in = [x for x in w["events"] if x["kind"] == "close" and x["dir"] == "in"]
    # c.close() answers with 1000 rather than echoing 4000 (an echo is only typical, 5.5.1)
    assert close_in and close_in[0]["code"] == 1000
    assert w["end"] == "closed_by_server"
    assert not [x for x in w["events"] if x["kind"] == "violation"]


def test_script_with_websockets(server):
    base = server.load(SCRIPT)

    async def run():
        async with websockets.connect(ws_url(base, "/ws"), subprotocols=["chat"]) as c:
            got = [await c.recv(), await c.recv(), await c.recv()]
            await c.send("echo me")
            got.append(await c.recv())
            try:
                await c.recv()
            except websockets.ConnectionClosed as closed:  # 4000 is not "OK" to websockets
                got.append((closed.code, closed.reason))
            return got

    got = asyncio.run(run())
    assert got == ["hello", b"\x00\x01\x02\xff", "fragmented text", "echo me", (4000, "done")]
    w = wait_end(server)["websocket"]
    assert [f["payload"] for f in frames(w, "in") if f["opcode"] == 10] == ["pingpayload"]


HANDSHAKE_FAULTS = {
    "accept-wrong": "{accept: wrong}",
    "accept-omitted": "{accept: omit}",
    "no-upgrade-header": "{upgrade_header: false}",
    "status-200": "{status: 200}",
    "status-403": "{status: 403}",
    "subprotocol-not-offered": "{subprotocol: notoffered}",
    "extension-not-offered": "{extensions: x-unknown}",
}
KNOWN = {
    ("websocket-client", "extension-not-offered"):
        "websocket-client 1.2.3 does not check Sec-WebSocket-Extensions "
        "(RFC 6455 4.1: the client MUST fail an extension it did not ask for)",
}


@pytest.mark.parametrize("client", ["websocket-client", "websockets"])
@pytest.mark.parametrize("case", sorted(HANDSHAKE_FAULTS))
def test_handshake_faults_are_rejected(server, request, case, client):
    if (client, case) in KNOWN:
        request.applymarker(pytest.mark.xfail(strict=True, reason=KNOWN[client, case]))
    base = server.load("""
        server:
          routes:
            - name: ws
              match: {path: /ws}
              response: {websocket: {handshake: %s, script: [{send: never}]}}
    """ % HANDSHAKE_FAULTS[case])
    if client == "websocket-client":
        with pytest.raises(Exception):
            c = websocket.create_connection(ws_url(base, "/ws"), timeout=3,
                                            subprotocols=["chat"])
            c.recv()
    else:
        async def run():
            async with websockets.connect(ws_url(base, "/ws"), subprotocols=["chat"],
                                          open_timeout=3) as c:
                await c.recv()

        with pytest.raises(Exception):
            asyncio.run(run())
    e = server.entries()[0]
    w = e["websocket"]
    assert w["problems"] == []
    assert w["upgraded"] is (case in ("subprotocol-not-offered", "extension-not-offered"))
    # no message went through a failed handshake
    assert not [x for x in w["events"] if x["kind"] == "message"]


def test_not_a_websocket_request(server, http):
    base = server.load("""
        server:
          routes:
            - name: ws
              match: {path: /ws}
              response: {websocket: {script: []}}
    """)
    r = http.get(base + "/ws")
    assert r.status_code == 400 and "not a WebSocket handshake" in r.text
    assert "no 'Upgrade: websocket'" in server.entries()[0]["websocket"]["problems"]


def test_drop_without_close_frame(server):
    base = server.load("""
        server:
          routes:
            - match: {path: /ws}
              response: {websocket: {script: [{send: bye}, {drop: true}]}}
    """)

    async def run():
        async with websockets.connect(ws_url(base, "/ws")) as c:
            assert await c.recv() == "bye"
            try:
                await c.recv()
            except websockets.ConnectionClosedError as closed:
                return closed.code

    assert asyncio.run(run()) == 1006  # abnormal closure: no close frame
    assert wait_end(server)["websocket"]["end"] == "dropped"


def test_client_close_is_echoed(server):
    base = server.load("""
        server:
          routes:
            - match: {path: /ws}
              response: {websocket: {script: [{wait: 5s}]}}
    """)
    c = websocket.create_connection(ws_url(base, "/ws"), timeout=5)
    c.send_close(status=3001, reason=b"client says bye")
    op, data = c.recv_data(control_frame=True)
    assert op == websocket.ABNF.OPCODE_CLOSE and data[:2] == b"\x0b\xb9"  # echoed code
    c.shutdown()
    w = wait_end(server)["websocket"]
    assert w["end"] == "closed_by_client"
    assert [(x["dir"], x["code"]) for x in w["events"] if x["kind"] == "close"] == \
        [("in", 3001), ("out", 3001)]


def test_client_pings_are_answered(server):
    base = server.load("""
        server:
          routes:
            - match: {path: /ws}
              response: {websocket: {script: [{wait: 1s}, {close: {code: 1000}}]}}
    """)
    c = websocket.create_connection(ws_url(base, "/ws"), timeout=5)
    c.ping("are you there")
    op, data = c.recv_data(control_frame=True)
    assert op == websocket.ABNF.OPCODE_PONG and data == b"are you there"
    c.close()


@pytest.mark.parametrize("fin, payload", [(0, b"frag"), (1, b"p" * 126)],
                         ids=["fragmented", "126-bytes"])
def test_invalid_ping_gets_1002_not_a_pong(server, fin, payload):
    """RFC 6455 5.5: control frames are at most 125 bytes and never fragmented; an endpoint
    that gets one otherwise fails the connection (7.1.7) with 1002 (7.4.1): no pong."""
    base = server.load("""
        server:
          routes:
            - match: {path: /ws}
              response: {websocket: {script: [{wait: 5s}]}}
    """)
    c = websocket.create_connection(ws_url(base, "/ws"), timeout=5)
    c.send_frame(websocket.ABNF(fin=fin, opcode=websocket.ABNF.OPCODE_PING, data=payload))
    op, data = c.recv_data(control_frame=True)
    assert op == websocket.ABNF.OPCODE_CLOSE and data[:2] == b"\x03\xea"  # 1002
    c.shutdown()
    w = wait_end(server)["websocket"]
    assert w["end"] == "protocol_error"
    assert not [f for f in frames(w, "out") if f["opcode"] == 10]  # never a pong
    assert [x["code"] for x in w["events"] if x["kind"] == "close"] == [1002]


def test_receive_timeout_recorded(server):
    base = server.load("""
        server:
          routes:
            - match: {path: /ws}
              response: {websocket: {script: [{receive: 300}, {close: {code: 1000}}]}}
    """)
    c = websocket.create_connection(ws_url(base, "/ws"), timeout=5)
    op, _ = c.recv_data(control_frame=True)
    assert op == websocket.ABNF.OPCODE_CLOSE
    c.close()
    w = wait_end(server)["websocket"]
    assert [x["waiting"] for x in w["events"] if x["kind"] == "timeout"] == ["a message"]


# Malformed server frames: RFC 6455 says the client must fail the connection (and, when it
# sends a close, use 1002 for protocol errors and 1007 for invalid UTF-8).
MALFORMED = {
    "masked-server-frame": "{frame: {opcode: 1, masked: true, payload: x}}",
    "rsv1-without-extension": "{frame: {opcode: 1, rsv1: true, payload: x}}",
    "reserved-opcode-3": "{frame: {opcode: 3, payload: x}}",
    "reserved-control-opcode-11": "{frame: {opcode: 11, payload: x}}",
    "ping-over-125": "{frame: {opcode: 9, payload: '%s'}}" % ("p" * 126),
    "fragmented-ping": "{frame: {opcode: 9, fin: false, payload: p}}",
    "continuation-without-start": "{frame: {opcode: 0, payload: x}}",
    "invalid-utf8-text": "{frame: {opcode: 1, payload_base64: '/w=='}}",
    "close-code-1005": "{close: {code: 1005}}",
    "close-code-1006": "{close: {code: 1006}}",
    "close-code-1015": "{close: {code: 1015}}",
    "close-code-0": "{close: {code: 0}}",
    "close-code-999": "{close: {code: 999}}",
    "close-code-5000": "{close: {code: 5000}}",
    "close-reason-invalid-utf8": "{close: {code: 1000, reason_base64: '/w=='}}",
}


def run_malformed(server, step, client):
    """Send one malformed frame; what the client raised or saw, and the journal entry."""
    base = server.load("""
        server:
          routes:
            - match: {path: /ws}
              response: {websocket: {script: [%s, {wait: 1500}], linger: 500}}
    """ % step)
    seen = None
    if client == "websocket-client":
        c = websocket.create_connection(ws_url(base, "/ws"), timeout=3)
        try:
            while True:
                op, data = c.recv_data(control_frame=True)
                if op == websocket.ABNF.OPCODE_CLOSE:
                    seen = "close frame received"
                    c.send_close()
                    break
                seen = "accepted opcode %d" % op
        except Exception as err:  # the library's rejection
            seen = "raised %s" % type(err).__name__
        finally:
            c.shutdown()
    else:
        async def run():
            async with websockets.connect(ws_url(base, "/ws"), open_timeout=3) as c:
                try:
                    while True:
                        await asyncio.wait_for(c.recv(), 3)
                except websockets.ConnectionClosed as closed:
                    return "closed %s" % closed.code
                except Exception as err:
                    return "raised %s" % type(err).__name__
        try:
            seen = asyncio.run(run())
        except Exception as err:
            seen = "raised %s" % type(err).__name__
    entry = wait_end(server)
    return seen, entry["websocket"]


def client_close_code(w):
    codes = [x["code"] for x in w["events"] if x["kind"] == "close" and x["dir"] == "in"]
    return codes[0] if codes else None


@pytest.mark.parametrize("client", ["websocket-client", "websockets"])
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_frames_reach_the_client_and_its_answer_is_journaled(server, case, client):
    seen, w = run_malformed(server, MALFORMED[case], client)
    out = frames(w, "out")
    assert out, "the malformed frame went out"
    sent = out[0]
    if case == "masked-server-frame":
        assert sent["masked"] is True
    if case == "rsv1-without-extension":
        assert sent["rsv"] == [True, False, False]
    if case.startswith("close-code-"):
        assert sent["opcode"] == 8
        assert [x["code"] for x in w["events"] if x["kind"] == "close" and x["dir"] == "out"][0] \
            == int(case.rsplit("-", 1)[1])
    # the journal's view agrees with the client's: a client that reports a close code sent
    # that close frame; a client that sent nothing shows as gone
    code = client_close_code(w)
    if code is not None:
        assert w["end"] in ("closed_by_client", "closed_by_server")
    else:
        assert w["end"] in ("client_gone", "closed_by_server", "close_timeout")
    assert seen is not None


# ----------------------------------------------------------------------------- Node ws

NODE_CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ws_node_client.mjs")


def node_ws(url, **opts):
    p = subprocess.run(["node", NODE_CLIENT, url, json.dumps(opts)], capture_output=True,
                       text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_script_with_node_ws(server):
    base = server.load(SCRIPT)
    got = node_ws(ws_url(base, "/ws"), protocols=["chat"], send=["echo me"])
    ev = got["events"]
    assert ev[0]["type"] == "open" and ev[0]["protocol"] == "chat"
    msgs = [e for e in ev if e["type"] == "message"]
    assert [m.get("data") or m.get("data_base64") for m in msgs] == \
        ["hello", "AAEC/w==", "fragmented text", "echo me"]
    assert [e for e in ev if e["type"] == "ping"] == [{"type": "ping", "data": "pingpayload"}]
    assert ev[-1] == {"type": "close", "code": 4000, "reason": "done"}
    w = wait_end(server)["websocket"]
    close_in = [x for x in w["events"] if x["kind"] == "close" and x["dir"] == "in"]
    assert close_in[0]["code"] == 4000  # ws echoes the close code
    assert [f["payload"] for f in frames(w, "in") if f["opcode"] == 10] == ["pingpayload"]


@pytest.mark.parametrize("case", sorted(HANDSHAKE_FAULTS))
def test_handshake_faults_with_node_ws(server, case):
    base = server.load("""
        server:
          routes:
            - match: {path: /ws}
              response: {websocket: {handshake: %s, script: [{send: never}]}}
    """ % HANDSHAKE_FAULTS[case])
    got = node_ws(ws_url(base, "/ws"), protocols=["chat"], ms=4000)
    types = [e["type"] for e in got["events"]]
    assert "open" not in types and "error" in types, got
    assert not [e for e in got["events"] if e["type"] == "message"]


def run_malformed_node(server, step):
    """run_malformed() for Node ws: what it observed, and the journal's session."""
    base = server.load("""
        server:
          routes:
            - match: {path: /ws}
              response: {websocket: {script: [%s, {wait: 1500}], linger: 500}}
    """ % step)
    got = node_ws(ws_url(base, "/ws"), ms=4000)
    return got, wait_end(server)["websocket"]


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_frames_with_node_ws(server, case):
    got, w = run_malformed_node(server, MALFORMED[case])
    code = client_close_code(w)
    want = 1007 if "utf8" in case else 1002
    # ws fails the connection with the code RFC 6455 asks for, and the journal shows it
    assert code == want, (got, w["end"])


# --- the handshake is built by ws_handshake_response() with the exchange's template context

def raw_handshake(base, path, origin="http://page.example", timeout=5):
    """Send a valid opening handshake on a plain socket; return (status line, headers as a
    list of (name, value), the socket)."""
    import socket
    import urllib.parse
    u = urllib.parse.urlsplit(base)
    s = socket.create_connection((u.hostname, u.port), timeout=timeout)
    s.sendall(("GET %s%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\nOrigin: %s\r\n\r\n"
               % (u.path, path, u.netloc, origin)).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    head = data.split(b"\r\n\r\n")[0].decode()
    lines = head.split("\r\n")
    headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
    return lines[0], headers, s


def header(headers, name):
    values = [v for n, v in headers if n.lower() == name.lower()]
    return values[0] if values else None


TEMPLATE = "h={{request.header.Origin}} q={{request.query.a}}"


@pytest.mark.parametrize("handshake", ["{}", "{status: 403}", "{accept: wrong}"])
def test_handshake_headers_use_the_request_template_context(server, http, handshake):
    base = server.load("""
        server:
          routes:
            - name: ws
              match: {path: /ws}
              response:
                websocket:
                  handshake: {headers: {X-Echo: "%s"}, %s}
                  script: [{send: hi}]
            - name: plain
              match: {path: /plain}
              response: {headers: {X-Echo: "%s"}, body: ok}
    """ % (TEMPLATE, handshake.strip("{}"), TEMPLATE))
    plain = http.get(base + "/plain?a=1", headers={"Origin": "http://page.example"})
    assert plain.headers["X-Echo"] == "h=http://page.example q=1"
    status, headers, s = raw_handshake(base, "/ws?a=1")
    s.close()
    assert header(headers, "X-Echo") == "h=http://page.example q=1", (status, headers)
    w = server.entries()[-1]["websocket"]
    if handshake != "{}":  # written by hand: the journal has the bytes
        assert "X-Echo: h=http://page.example q=1\r\n" in w["handshake_bytes"]


def test_wrong_accept_is_the_tested_one(server):
    base = server.load("""
        server:
          routes:
            - name: ws
              match: {path: /ws}
              response: {websocket: {handshake: {accept: wrong}, script: []}}
    """)
    status, headers, s = raw_handshake(base, "/ws")
    s.close()
    sent = header(headers, "Sec-WebSocket-Accept")
    # ws_wrong_accept_for(): the right digest with its first byte inverted
    import base64
    import hashlib
    right = hashlib.sha1(b"dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
    wrong = base64.b64encode(bytes([right[0] ^ 0xFF]) + right[1:]).decode()
    assert sent == wrong and sent != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert server.entries()[-1]["websocket"]["accept_sent"] == wrong


# Every form of `upgrade_header` that docs/scenarios.md documents: true (the default),
# false (no Upgrade header), a string (that value; "WebSocket" in any case is still valid).
UPGRADE_FORMS = {
    "default": ("", "websocket", True),
    "true": ("upgrade_header: true", "websocket", True),
    "false": ("upgrade_header: false", None, False),
    "mixed-case": ('upgrade_header: "WebSocket"', "WebSocket", True),
    "lower-case-string": ('upgrade_header: "websocket"', "websocket", True),
    "other-value": ('upgrade_header: "h2c"', "h2c", False),
}


@pytest.mark.parametrize("form", sorted(UPGRADE_FORMS))
def test_upgrade_header_forms(server, form):
    key, sent, upgrades = UPGRADE_FORMS[form]
    base = server.load("""
        server:
          routes:
            - name: ws
              match: {path: /ws}
              response:
                websocket:
                  handshake: {%s}
                  script: [{send: hello}, {close: {code: 1000}}]
    """ % key)
    status, headers, s = raw_handshake(base, "/ws")
    s.close()
    assert status.startswith("HTTP/1.1 101 "), status
    assert header(headers, "Upgrade") == sent
    if upgrades:
        # a valid handshake: a conforming client opens and the script runs
        c = websocket.create_connection(ws_url(base, "/ws"), timeout=5)
        assert c.recv() == "hello"
        c.close()
        e = wait_end(server)
        assert e["websocket"]["upgraded"] is True and e["status"] == 101
        assert [f for f in frames(e["websocket"], "out") if f["opcode"] == 1]
    else:
        with pytest.raises(Exception):
            websocket.create_connection(ws_url(base, "/ws"), timeout=3).recv()
        assert all(e["websocket"]["upgraded"] is False for e in server.entries())
