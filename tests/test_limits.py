"""Hostile clients against the server's limits (docs/control-api.md, "Limits"): clients that
close mid-request, trickle their request, send ambiguous framing, never read, upload more
than the server holds, or hold thousands of requests when the server stops. The figures are
read from /proc/PID (descriptors, resident memory) of the server itself."""
import os
import re
import resource
import select
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import ROOT, Server, wait_until

SCENARIO = """id: lim.t
title: limits
spec: https://example.org/limits
client:
  http: {url: /x}
server:
  channels:
    c: {events: []}
  routes:
    - {match: {path: /x}, response: {body: ok}}
    - {match: {path: /secret}, response: {body: smuggled}}
    - {match: {path: /big}, response: {body_file: big.bin}}
    - {match: {path: /slow}, response: {body: late, delay: 2500}}
    - {match: {path: /held}, response: {body: never, delay: 600000}}
    - match: {path: /poll}
      response: {long_poll: {channel: c, hold_timeout: 600000}}
    - {match: {path: /hang}, response: {fault: hang}}
    - {match: {path: /drip}, response: {body: xxxxxxxx, trickle: {bytes: 1, every: 10s}}}
"""
BIG = 20 * 1000 * 1000


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    d = tmp_path_factory.mktemp("limits")
    (d / "big.bin").write_bytes(os.urandom(BIG))
    (d / "lim.yaml").write_text(SCENARIO)
    return str(d / "lim.yaml")


@pytest.fixture(autouse=True, scope="module")
def many_descriptors():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def start(harness_bin, scenario, *args):
    return Server(harness_bin, [scenario, "--quiet", *args])


def port_of(s):
    return int(s.main.rsplit(":", 1)[1])


def fds(s):
    return len(os.listdir("/proc/%d/fd" % s.proc.pid))


def rss_mib(s, key="VmRSS"):
    with open("/proc/%d/status" % s.proc.pid) as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key + ":")) / 1024


def sanitized(s):
    """Is the server built with AddressSanitizer? Its quarantine and redzones make resident
    memory say nothing about the server's own use: memory checks are skipped then."""
    with open("/proc/%d/maps" % s.proc.pid) as f:
        return "libasan" in f.read()


def connect(s):
    return socket.create_connection(("127.0.0.1", port_of(s)), timeout=10)


def read_all(c, timeout=5.0):
    """Everything until EOF (or the timeout, then '<timeout>' is appended)."""
    c.settimeout(timeout)
    out = b""
    try:
        while True:
            d = c.recv(65536)
            if not d:
                return out
            out += d
    except socket.timeout:
        return out + b"<timeout>"
    except ConnectionResetError:
        return out + b"<reset>"


def status_of(data):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", data)
    return int(m.group(1)) if m else None


HALVES = [
    b"GET /s/li",                                                     # inside the request line
    b"GET /s/lim.t/x HTTP/1.1\r\nHost: x\r\nX-A: ",                   # inside the headers
    b"POST /s/lim.t/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc",  # the body
    b"POST /_harness/instances HTTP/1.1\r\nHost: x\r\nContent-Length: 90\r\n\r\n{",
    b"POST /s/lim.t/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
]


def test_mid_request_closes_leave_no_descriptor(harness_bin, scenario):
    """3,000 clients send half a request, then FIN (half of them) or close: no descriptor
    stays open, and the server answers afterwards."""
    s = start(harness_bin, scenario)
    try:
        base = fds(s)
        for i in range(3000):
            c = connect(s)
            c.sendall(HALVES[i % len(HALVES)])
            if i % 2:
                c.shutdown(socket.SHUT_WR)
            c.close()
        assert wait_until(lambda: fds(s) <= base, timeout=20), (base, fds(s))
        print("descriptors: %d before, %d after 3,000 mid-request closes" % (base, fds(s)))
        c = connect(s)
        c.sendall(b"GET /s/lim.t/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_all(c).endswith(b"\r\n\r\nok")
        c.close()
    finally:
        assert s.stop() == 0, s.stderr


def test_slowloris_gets_408_at_the_header_deadline(harness_bin, scenario):
    """One byte every 0.2 s is never idle, so only the header deadline ends it: 408 and
    close, judged against the absolute deadline (1 s after the connection) with a tolerance
    for a loaded machine. A body trickled the same way meets the body deadline."""
    s = start(harness_bin, scenario, "--header-timeout", "1", "--body-timeout", "1")
    try:
        for head, trickle in [(b"", b"GET /s/lim.t/x HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 60),
                              (b"POST /s/lim.t/x HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\n"
                               b"\r\n", b"b" * 60)]:
            c = connect(s)
            t0 = time.monotonic()
            c.sendall(head)
            got, ended = b"", None
            for byte in trickle:
                try:
                    c.send(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    ended = time.monotonic() - t0
                    break
                r, _, _ = select.select([c], [], [], 0.2)
                if r:
                    d = c.recv(4096)
                    got += d
                    if not d:
                        ended = time.monotonic() - t0
                        break
            c.close()
            assert got.startswith(b"HTTP/1.1 408 "), got
            # the deadline is 1 s; the sweep runs every 0.25 s
            assert ended is not None and 0.95 <= ended <= 1.0 + 0.25 + 1.0, ended
        assert s.entries("lim.t") == []  # neither reached its route
    finally:
        assert s.stop() == 0, s.stderr


def test_idle_timeout_spares_held_requests(harness_bin, scenario):
    """--idle-timeout 1: an idle keep-alive connection goes after about 1 s, but a delay of
    2.5 s (suspended: not idle in libmicrohttpd's sense) still gets its answer."""
    s = start(harness_bin, scenario, "--idle-timeout", "1")
    try:
        idle = connect(s)
        slow = connect(s)
        t0 = time.monotonic()
        slow.sendall(b"GET /s/lim.t/slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_all(idle, timeout=8) == b""
        assert 0.9 <= time.monotonic() - t0 <= 1.0 + 2.0
        data = read_all(slow, timeout=8)
        assert data.endswith(b"\r\n\r\nlate"), data
        assert time.monotonic() - t0 >= 2.5
    finally:
        assert s.stop() == 0, s.stderr


def test_idle_timeout_spares_websocket_sessions(harness_bin, scenario):
    """An upgraded connection belongs to its session: --idle-timeout 1 does not end a
    session that waits 2.5 s before it speaks."""
    import websocket
    s = start(harness_bin, scenario, "--idle-timeout", "1")
    try:
        base = s.load("""
            server:
              routes:
                - match: {path: /ws}
                  response: {websocket: {script: [{wait: 2500}, {send: late}]}}
        """)
        c = websocket.create_connection(base.replace("http://", "ws://") + "/ws", timeout=8)
        assert c.recv() == "late"
        c.close()
    finally:
        assert s.stop() == 0, s.stderr


def test_connection_cap_refuses_the_extra_and_recovers(harness_bin, scenario):
    s = start(harness_bin, scenario, "--max-connections", "20")
    try:
        held = [connect(s) for _ in range(20)]
        for c in held:  # each is accepted and waits for its request
            c.sendall(b"GET /s/lim.t/x HTTP/1.1\r\nHost: x\r\n")
        assert wait_until(lambda: fds(s) >= 20)
        extra = connect(s)
        extra.sendall(b"GET /s/lim.t/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status_of(read_all(extra)) is None  # refused: closed without an answer
        extra.close()
        for c in held[:5]:
            c.close()
        c = connect(s)
        c.sendall(b"GET /s/lim.t/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_all(c).endswith(b"\r\n\r\nok")
        for c in held[5:]:
            c.close()
    finally:
        assert s.stop() == 0, s.stderr


SMUGGLE = b"GET /s/lim.t/secret HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("path", ["/s/lim.t/x", "/_harness/instances"])
@pytest.mark.parametrize("framing", [
    b"Content-Length: 5\r\nContent-Length: 46\r\n",
    b"Content-Length: 5\r\nContent-Length: 5\r\n",
    b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    b"Transfer-Encoding: gzip\r\n",
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    b"Content-Length: +5\r\n",
])
def test_ambiguous_framing_gets_400_and_close(harness_bin, scenario, path, framing):
    s = start(harness_bin, scenario)
    try:
        c = connect(s)
        c.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + framing +
                  b"\r\n0\r\n\r\n" + SMUGGLE)
        data = read_all(c)
        c.close()
        assert status_of(data) == 400, data
        assert b"Connection: close" in data and b"smuggled" not in data
        # a Content-Length that is not a number libmicrohttpd refuses itself
        assert b"bad request framing" in data or b"+5" in framing
        assert [e["path"] for e in s.entries("lim.t")] == []  # neither request ran
    finally:
        assert s.stop() == 0, s.stderr


def test_slow_readers_share_one_body(harness_bin, scenario):
    """50 clients ask for a 20 MB body_file and never read: the body is sent from the
    scenario's one copy, so the server stays under the body plus 64 MiB (docs: Limits)."""
    s = start(harness_bin, scenario)
    try:
        before = rss_mib(s)
        socks = []
        for _ in range(50):
            c = connect(s)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.sendall(b"GET /s/lim.t/big HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append(c)
        assert wait_until(lambda: len(s.entries("lim.t")) == 50, timeout=20)
        time.sleep(1.0)  # let every connection fill its socket buffers
        rss = rss_mib(s)
        print("RSS with 50 slow readers of a 20 MB body: %.1f MiB (%.1f before)" % (rss, before))
        assert sanitized(s) or rss < BIG / 2**20 + 64, rss
        for c in socks:
            c.close()
    finally:
        assert s.stop() == 0, s.stderr


def upload(s, length, send, results, i):
    """Announce length bytes, send `send` of them, then wait for an answer (or not)."""
    c = connect(s)
    try:
        c.sendall(b"POST /s/lim.t/x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % length)
        chunk = b"u" * (1 << 20)
        sent = 0
        while sent < send:
            r, _, _ = select.select([c], [], [], 0)
            if r:
                break  # an answer (a refusal) before the body: stop sending
            n = min(len(chunk), send - sent)
            c.sendall(chunk[:n])
            sent += n
        results[i] = (sent, c)
    except (BrokenPipeError, ConnectionResetError):
        results[i] = (None, c)


def test_unfinished_uploads_stay_under_the_budget(harness_bin, scenario):
    """8 clients announce 60 MB and send 59 MB, never finishing: the bodies that fit in
    --max-buffered (default 256 MiB: 4 of them) are read, the others get 503 at once; the
    server's memory stays under the budget plus 64 MiB. Over --max-body: 413."""
    s = start(harness_bin, scenario)
    try:
        results = [None] * 8
        threads = [threading.Thread(target=upload, args=(s, 60_000_000, 59_000_000, results, i))
                   for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        time.sleep(0.5)
        rss = rss_mib(s)
        peak = rss_mib(s, "VmHWM")
        refused = 0
        for sent, c in results:
            c.setblocking(False)
            try:
                data = c.recv(4096)
            except BlockingIOError:
                data = b""
            if status_of(data) == 503:
                refused += 1
            c.close()
        print("RSS with 8 unfinished 60 MB uploads: %.1f MiB (peak %.1f), %d refused with 503"
              % (rss, peak, refused))
        assert refused == 4
        assert sanitized(s) or peak < 256 + 64, peak
        c = connect(s)
        c.sendall(b"POST /s/lim.t/x HTTP/1.1\r\nHost: x\r\nContent-Length: 67108865\r\n\r\n")
        assert status_of(read_all(c)) == 413
    finally:
        assert s.stop() == 0, s.stderr


def test_chunked_body_over_max_body_is_closed(harness_bin, scenario):
    s = start(harness_bin, scenario, "--max-body", "1M")
    try:
        c = connect(s)
        c.sendall(b"POST /s/lim.t/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"100000\r\n" + b"c" * 0x100000 + b"\r\n"
        try:
            for _ in range(3):
                c.sendall(chunk)
            data = read_all(c)
        except (BrokenPipeError, ConnectionResetError):
            data = b""
        assert status_of(data) is None  # closed mid-body, never answered
        assert s.entries("lim.t") == []
    finally:
        assert s.stop() == 0, s.stderr


def test_sigterm_with_5000_held_requests_exits_0(harness_bin, scenario):
    """5,000 requests held every way the server holds one (a delay, a long poll, a hang, a
    trickle's pause), then SIGTERM: exit 0 within seconds, and under the sanitizer build no
    LeakSanitizer report (make sanitizer-tests runs this with the ASan binary)."""
    s = start(harness_bin, scenario)
    socks = []
    try:
        paths = [b"/held", b"/poll", b"/hang", b"/drip"]
        for i in range(5000):
            c = connect(s)
            c.sendall(b"GET /s/lim.t%s HTTP/1.1\r\nHost: x\r\n\r\n" % paths[i % 4])
            socks.append(c)
        assert wait_until(lambda: s.journal("lim.t")["total"] == 5000, timeout=60)
        t0 = time.monotonic()
        code = s.stop(signal.SIGTERM, timeout=60)
        took = time.monotonic() - t0
        print("SIGTERM with 5,000 held: exit %s in %.2f s" % (code, took))
        assert code == 0, s.stderr[-3000:]
        assert "LeakSanitizer" not in s.stderr and "AddressSanitizer" not in s.stderr
        assert took < 20
    finally:
        for c in socks:
            c.close()
        if s.proc.poll() is None:
            s.stop()


def test_limits_documented_as_the_binary_says(harness_bin):
    """Every option of --help's Limits is a row of docs/control-api.md's Limits table with
    the same default, and a row of harness(1)."""
    out = subprocess.run([harness_bin, "serve", "--help"], capture_output=True, text=True,
                         timeout=10).stdout
    limits = out.split("\nLimits", 1)[1].split("\n\n", 1)[0]
    helped = dict(re.findall(r"^  --([a-z-]+) \S+ .*\(default (\S+)\)$", limits, re.M))
    assert len(helped) == 8, out
    with open(os.path.join(ROOT, "docs/control-api.md")) as f:
        doc = f.read().split("## Limits", 1)[1]
    documented = dict(re.findall(r"^\| `--([a-z-]+)` \| `([^`]+)` \|", doc, re.M))
    assert documented == helped
    with open(os.path.join(ROOT, "man/harness.1")) as f:
        man = f.read()
    for name, default in helped.items():
        flag = r"\\-\\-" + name.replace("-", r"\\-") + r"(?!\\-)"
        within = r"[^\n]*\n(?:[^\n]*\n){0,2}[^\n]*\(default %s\b" % re.escape(default)
        assert re.search(flag + within, man), name


# What a request takes of --conn-memory (server.c, head_fits): the head's bytes, ENTRY for
# each header line (query parameter, cookie), RESERVE for the response's headers.
ENTRY, RESERVE = 64, 512
LIMIT_3K = 3072 - RESERVE - 2 * ENTRY  # the largest head of two lines (Host, X-Pad) at 3K


def test_conn_memory_formula_documented():
    """docs/control-api.md gives the same formula as the server and these tests."""
    with open(os.path.join(ROOT, "docs/control-api.md")) as f:
        row = next(l for l in f if l.startswith("| `--conn-memory` |"))
    assert "plus %d bytes for each header line, query parameter and cookie, plus %d for " \
           "the response's headers" % (ENTRY, RESERVE) in row, row
    assert "a `Cookie` header's value counts twice" in row, row
    assert "at `3K`: %.1f KB on one header line" % (LIMIT_3K / 1000) in row, row


@pytest.mark.parametrize("memory, head, status, who", [
    (None, LIMIT_3K, 200, None),        # the default (3K) takes a head up to its limit
    (None, LIMIT_3K + 1, 431, "harness"),  # one byte more: the server's 431, which says why
    (None, 5000, 431, "libmicrohttpd"),  # beyond what libmicrohttpd reads: its own 431
    ("8K", 7000, 200, None),             # long tokens, many cookies: raise it
    ("4K", 4096 - RESERVE - 2 * ENTRY, 200, None),
    ("4K", 5000, 431, "libmicrohttpd"),
])
def test_conn_memory_bounds_the_request_head(harness_bin, scenario, memory, head, status, who):
    """--conn-memory is libmicrohttpd's pool per connection: the request head must fit in it
    with room for the response's headers (docs/control-api.md); a larger one gets 431, a
    line on stderr names --conn-memory, and the server goes on. Without the server's own
    check, a head that libmicrohttpd reads but that leaves no room for the response's
    headers would get the connection closed without a byte."""
    args = [] if memory is None else ["--conn-memory", memory]
    s = start(harness_bin, scenario, *args)
    try:
        start_line = b"GET /s/lim.t/x HTTP/1.1\r\nHost: x\r\nX-Pad: "
        pad = head - len(start_line) - 4
        c = connect(s)
        c.sendall(start_line + b"a" * pad + b"\r\n\r\n")
        data = read_all(c, timeout=3)
        c.close()
        assert status_of(data) == status, data[:200]
        if who == "harness":
            assert b"--conn-memory" in data and b"(%d bytes)" % head in data, data
        c = connect(s)  # a small request still works afterwards
        c.sendall(b"GET /s/lim.t/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status_of(read_all(c)) == 200
        c.close()
    finally:
        assert s.stop() == 0, s.stderr
    said = [l for l in s.stderr.splitlines() if "--conn-memory" in l]
    assert len(said) == (1 if who else 0), s.stderr
    if who:
        assert "/s/lim.t/x" in said[0] and "431" in said[0], said


COOKIE_HEAD = b"GET /s/lim.t/x HTTP/1.1\r\nHost: x\r\nCookie: "
# the largest Cookie value at 3K: the head (with the value), the value's copy and its NUL,
# three records (Host, Cookie, the one cookie a=...) and the reserve
COOKIE_3K = (3072 - RESERVE - 3 * ENTRY - len(COOKIE_HEAD) - 4 - 1) // 2


@pytest.mark.parametrize("value, status", [
    (COOKIE_3K, 200), (COOKIE_3K + 1, 431),
    (COOKIE_3K + 240, 431),  # libmicrohttpd alone would close this one without a byte
])
def test_a_cookie_counts_twice_in_conn_memory(harness_bin, scenario, value, status):
    """libmicrohttpd splits a copy of the Cookie header in its pool: the server counts it, so
    that a head with a long cookie gets a 431 naming --conn-memory, not a silent close."""
    s = start(harness_bin, scenario)
    try:
        c = connect(s)
        c.sendall(COOKIE_HEAD + b"a=" + b"x" * (value - 2) + b"\r\n\r\n")
        data = read_all(c, timeout=3)
        c.close()
        assert status_of(data) == status, data[:200]
        assert (b"--conn-memory" in data) == (status == 431), data
    finally:
        assert s.stop() == 0, s.stderr


def test_request_and_fin_together_end_the_connection(harness_bin, scenario):
    """A whole request and the client's FIN in one go: the answer comes, and the server
    closes its side soon after -- under epoll libmicrohttpd 0.9.75 would never look at that
    socket again; the sweep (every 0.25 s) finds the FIN. Judged against the absolute time
    since the FIN, with a tolerance for a loaded machine."""
    s = start(harness_bin, scenario)
    try:
        base = fds(s)
        for keep in (True, False):
            c = connect(s)
            c.sendall(b"GET /s/lim.t/x HTTP/1.1\r\nHost: x\r\n"
                      + (b"" if keep else b"Connection: close\r\n") + b"\r\n")
            c.shutdown(socket.SHUT_WR)
            t0 = time.monotonic()
            data = read_all(c, timeout=5.0)
            ended = time.monotonic() - t0
            c.close()
            assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\r\n\r\nok"), data
            assert ended <= 0.25 * 2 + 1.0, ended  # two sweep periods at most, plus slack
        assert wait_until(lambda: fds(s) <= base, timeout=5), (base, fds(s))
    finally:
        assert s.stop() == 0, s.stderr
