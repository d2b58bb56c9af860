"""The request head as the client put it on the wire (docs/control-api.md, "Journal
entries"): the journal's request_line and header_names keep what libmicrohttpd 0.9.75
keeps -- and the doc's list of what is not kept is held here too, so that a change of the
library shows."""
import socket

import pytest

ROUTES = """
    server:
      routes:
        - name: a
          match: {path: /a}
          response: {body: a}
"""


@pytest.fixture
def instance(server):
    server.load(ROUTES)
    inst = server.last["instance"]
    port = int(server.main.rsplit(":", 1)[1])

    def send(head):
        """Send raw request bytes; the status line of the answer."""
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(head.replace(b"PREFIX", ("/s/%s" % inst).encode()))
            return c.recv(4096).split(b"\r\n")[0]
    return inst, send


def last(server, inst):
    return server.entries(inst)[-1]


def test_names_keep_their_case_order_and_duplicates(server, instance):
    inst, send = instance
    assert send(b"get PREFIX/a?q=%41 HTTP/1.1\r\nhOsT: x\r\nX-UPPER: 1\r\nx-lower: 2\r\n"
                b"X-Dup: 1\r\nx-dup: 2\r\n\r\n").endswith(b"200 OK")
    e = last(server, inst)
    assert e["request_line"] == "get /s/%s/a?q=%%41 HTTP/1.1" % inst  # method case, target bytes
    assert e["header_names"] == ["hOsT", "X-UPPER", "x-lower", "X-Dup", "x-dup"]
    assert [n for n, _ in e["headers"]] == e["header_names"]


def test_what_is_not_preserved(server, instance):
    inst, send = instance
    # bare LF ends a line as CRLF does (not told apart); HTTP/1.0 kept as sent
    send(b"GET PREFIX/a HTTP/1.0\nHost: x\nAccept: */*\n\n")
    e = last(server, inst)
    assert e["request_line"] == "GET /s/%s/a HTTP/1.0" % inst
    assert e["header_names"] == ["Host", "Accept"]
    # the line's separators: spaces before the target are lost, after it kept in the target
    send(b"GET  PREFIX/a  HTTP/1.1\r\nHost: x\r\n\r\n")
    e = last(server, inst)
    assert e["request_line"] == "GET /s/%s/a  HTTP/1.1" % inst
    # a value's leading whitespace is dropped, its trailing whitespace kept (libmicrohttpd
    # 0.9.75); a space before the colon stays in the name
    send(b"GET PREFIX/a HTTP/1.1\r\nHost: x\r\nX-Sp : v\r\nX-Pad:   padded   \r\n\r\n")
    e = last(server, inst)
    assert e["header_names"] == ["Host", "X-Sp ", "X-Pad"]
    assert e["headers"][2] == ["X-Pad", "padded   "]


def test_a_library_request(server, instance, http):
    inst, _ = instance
    http.get(server.main + "/s/%s/a" % inst, headers={"X-Mixed-Case": "1"})
    e = last(server, inst)
    assert e["request_line"] == "GET /s/%s/a HTTP/1.1" % inst
    assert e["header_names"][0] == "Host" and e["header_names"][-1] == "X-Mixed-Case"
