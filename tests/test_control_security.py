"""The control API's defences (issue 14, docs/control-api.md "Security"): its own port, the
token of the ready line, Host and Origin checks (cross-site pages, DNS rebinding, a real
Chromium page on the scenario origin), and file access confined to the roots with errors
that echo no content. Also --bind off loopback without a token, and --public-host."""
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import ROOT, Server, scenario_text

HERE = os.path.dirname(os.path.abspath(__file__))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/lib/chromium/chromium")
SECRET = "SECRET-FIRST-LINE-4f1c"
GOOD = scenario_text("""
    server:
      routes:
        - {match: {path: /}, response: {body: ok}}
""", "sec.good")


def raw(url, method="GET", path="/_harness/version", headers=(), body=b""):
    """One HTTP/1.1 request written by hand (any Host, any Origin): (status, headers, body)."""
    host, port = url.rsplit("/", 1)[-1].rsplit(":", 1)
    lines = ["%s %s HTTP/1.1" % (method, path)]
    names = {k.lower() for k, _ in headers}
    if "host" not in names:
        lines.append("Host: %s:%s" % (host, port))
    lines += ["%s: %s" % kv for kv in headers]
    lines += ["Content-Length: %d" % len(body), "Connection: close", "", ""]
    with socket.create_connection((host if host != "localhost" else "127.0.0.1", int(port)),
                                  timeout=10) as s:
        s.sendall("\r\n".join(lines).encode() + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    head_lines = head.decode("latin-1").split("\r\n")
    status = int(head_lines[0].split()[1])
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head_lines[1:])}
    return status, hdrs, payload


def loaded_ids(server):
    return {i["instance"] for i in server.api("GET", "/instances").json()["instances"]}


# --------------------------------------------------------------------------- ready line, ports

def test_ready_line_has_control_and_token(server):
    r = server.ready
    assert re.fullmatch(r"[0-9a-f]{64}", r["token"])
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", r["control"])
    ports = {u.rsplit(":", 1)[1] for u in (r["main"], r["cross"], r["control"])}
    assert len(ports) == 3, "the control API has a port of its own"


def test_each_run_has_its_own_token(harness_bin):
    a, b = Server(harness_bin, ["--quiet"]), Server(harness_bin, ["--quiet"])
    try:
        assert a.token != b.token
        assert raw(b.control, headers=[("X-Harness-Token", a.token)])[0] == 401
    finally:
        assert a.stop() == 0 and b.stop() == 0


# --------------------------------------------------------------------------- cross-site, raw

def test_text_plain_post_without_token_is_refused(server):
    """The issue's attack: a CORS-simple text/plain POST reading /etc through body_file."""
    evil = json.dumps({"yaml": scenario_text("""
        server:
          routes:
            - match: {path: /}
              response: {body_file: hostname, headers: {Access-Control-Allow-Origin: '*'}}
    """, "evil.one"), "base_dir": "/etc", "id": "evil-one"}).encode()
    for headers in ([("Content-Type", "text/plain")],
                    [("Content-Type", "text/plain"), ("Origin", "http://evil.example")]):
        status, hdrs, body = raw(server.control, "POST", "/_harness/instances", headers, evil)
        assert status in (401, 403), body
        assert "access-control-allow-origin" not in hdrs
    assert "evil-one" not in loaded_ids(server)


def test_missing_or_wrong_token(server):
    c = server.control
    status, _, body = raw(c)
    assert status == 401 and b"X-Harness-Token" in body
    assert raw(c, headers=[("X-Harness-Token", "0" * 64)])[0] == 401
    assert raw(c, headers=[("X-Harness-Token", server.token[:-1])])[0] == 401
    assert raw(c, headers=[("Authorization", "Bearer " + server.token)])[0] == 200
    assert raw(c, headers=[("X-Harness-Token", server.token)])[0] == 200
    for path in ("/_harness/instances", "/_harness/origins", "/_harness/instances/x/journal"):
        assert raw(c, path=path)[0] == 401
    assert raw(c, "DELETE", "/_harness/instances/x")[0] == 401


def test_foreign_origin_is_refused_even_with_the_token(server):
    tok = ("X-Harness-Token", server.token)
    for origin in ("http://evil.example", "null", server.main, server.cross, server.alt,
                   server.control.replace("127.0.0.1", "evil.example")):
        status, hdrs, body = raw(server.control, headers=[tok, ("Origin", origin)])
        assert status == 403, (origin, body)
        assert b"Origin" in body and "access-control-allow-origin" not in hdrs
    # the control port's own origin serves no page: harmless, accepted
    assert raw(server.control, headers=[tok, ("Origin", server.control)])[0] == 200


def test_preflight_is_refused(server):
    status, hdrs, _ = raw(server.control, "OPTIONS", "/_harness/instances", [
        ("Origin", server.main), ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "x-harness-token")])
    assert status == 403
    assert not [h for h in hdrs if h.startswith("access-control-")]


def test_dns_rebinding_host_is_refused(server):
    """A rebinding page sends its own name with the right address and port."""
    port = server.control.rsplit(":", 1)[1]
    tok = ("X-Harness-Token", server.token)
    for host in ("evil.example:" + port, "evil.example", "127.0.0.1", "127.0.0.1:1",
                 "localhost.evil.example:" + port):
        status, _, body = raw(server.control, headers=[tok, ("Host", host)])
        assert status == 403 and b"Host" in body, host
    for host in ("127.0.0.1:" + port, "localhost:" + port, "LOCALHOST:" + port):
        assert raw(server.control, headers=[tok, ("Host", host)])[0] == 200, host
    # no Host at all (HTTP/1.0)
    with socket.create_connection(("127.0.0.1", int(port)), timeout=5) as s:
        s.sendall(b"GET /_harness/version HTTP/1.0\r\nX-Harness-Token: %s\r\n\r\n"
                  % server.token.encode())
        assert s.recv(100).split()[1] == b"403"


def test_health_needs_no_token_and_says_nothing_more(server):
    status, _, body = raw(server.control, path="/_harness/health")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    assert raw(server.control, path="/_harness/health",
               headers=[("Origin", "http://evil.example")])[0] == 403
    assert raw(server.control, path="/_harness/health", headers=[("Host", "evil.example")])[0] == 403


def test_control_api_is_not_on_the_scenario_ports(server):
    tok = ("X-Harness-Token", server.token)
    for origin in (server.main, server.cross):
        status, _, body = raw(origin, "POST", "/_harness/instances", [tok],
                              json.dumps({"yaml": GOOD}).encode())
        assert status == 404 and b"control" in body
    assert raw(server.control, path="/s/anything/", headers=[tok])[0] == 404


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="no Chromium at " + CHROMIUM)
def test_chromium_page_on_the_scenario_origin_cannot_reach_the_control_port(server):
    """A real page on the scenario origin, even knowing the token, gets nothing through."""
    before = loaded_ids(server)
    p = subprocess.run(["node", os.path.join(HERE, "control_fetch.mjs"),
                        server.main + "/_harness/page", server.control, server.token],
                       capture_output=True, text=True, timeout=90)
    assert p.returncode == 0, p.stderr
    results = {r["name"]: r for r in json.loads(p.stdout.strip().splitlines()[-1])["results"]}
    for name in ("simple-post", "token-header", "get-instances", "get-health"):
        assert results[name]["ok"] is False, results[name]  # TypeError: Failed to fetch
    # no-cors hands the page an opaque answer: it reads nothing, and nothing was done
    assert results["no-cors-post"]["type"] == "opaque" and not results["no-cors-post"]["text"]
    assert loaded_ids(server) == before
    assert "from-a-page" not in loaded_ids(server)


# --------------------------------------------------------------------------- file roots

@pytest.fixture
def rooted(harness_bin, tmp_path):
    """A server whose only root is tmp/root; a secret file beside it."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "good.yaml").write_text(GOOD)
    (root / "data.bin").write_bytes(b"inside")
    secret = tmp_path / "secret.yaml"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    (root / "escape.yaml").symlink_to(secret)
    (root / "zero.yaml").symlink_to("/dev/zero")
    (root / "outdir").symlink_to(tmp_path)
    os.mkfifo(root / "fifo.yaml")
    with open(root / "big.yaml", "wb") as f:
        f.truncate(16 * 1024 * 1024 + 1)  # sparse: costs nothing
    s = Server(harness_bin, ["--quiet"], roots=[root])
    s.root = root
    s.tmp = tmp_path
    yield s
    assert s.stop() == 0, s.stderr


def refused(server, doc, status, words):
    t0 = time.monotonic()
    r = server.api("POST", "/instances", json=doc)
    assert time.monotonic() - t0 < 5, "it must not block"
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert words in err, err
    assert SECRET not in r.text and "\x00" not in r.text
    return err


def test_file_inside_the_roots_loads(rooted):
    r = rooted.api("POST", "/instances", json={"file": str(rooted.root / "good.yaml")})
    assert r.status_code == 201, r.text
    assert r.json()["file"] == str(rooted.root / "good.yaml")


def test_files_outside_the_roots_are_refused(rooted):
    root, tmp = rooted.root, rooted.tmp
    out = "outside the allowed folders"
    refused(rooted, {"file": str(tmp / "secret.yaml")}, 403, out)
    refused(rooted, {"file": "/etc/hostname"}, 403, out)
    refused(rooted, {"file": "/etc/shadow"}, 403, out)
    refused(rooted, {"file": str(root / ".." / "secret.yaml")}, 403, out)
    refused(rooted, {"file": str(root / "escape.yaml")}, 403, out)
    refused(rooted, {"file": str(root / "outdir" / "secret.yaml")}, 403, out)
    refused(rooted, {"file": str(root / "zero.yaml")}, 403, out)
    refused(rooted, {"file": "/dev/zero"}, 403, out)
    refused(rooted, {"file": "relative/../../x.yaml"}, 403, out)
    # a missing file says nothing about what exists outside
    refused(rooted, {"file": "/etc/no-such-file.yaml"}, 403, out)
    refused(rooted, {"file": str(root / "nope.yaml")}, 400, "No such file")
    refused(rooted, {"yaml": GOOD, "base_dir": "/etc"}, 403, out)
    refused(rooted, {"yaml": GOOD, "base_dir": str(root / "..")}, 403, out)
    refused(rooted, {"yaml": GOOD, "base_dir": str(root / "outdir")}, 403, out)


def test_fifo_device_and_oversized_files_are_refused(rooted, harness_bin):
    root = rooted.root
    refused(rooted, {"file": str(root / "fifo.yaml")}, 400, "not a regular file (a FIFO)")
    refused(rooted, {"file": str(root / "big.yaml")}, 400,
            "larger than the limit of 16777216 bytes")
    refused(rooted, {"file": str(root)}, 400, "not a regular file (a folder)")
    refused(rooted, {"yaml": GOOD, "base_dir": str(root / "good.yaml")}, 400, "not a folder")
    # a device inside a root is refused for what it is
    s = Server(harness_bin, ["--quiet"], roots=["/dev"])
    try:
        r = s.api("POST", "/instances", json={"file": "/dev/zero"})
        assert r.status_code == 400 and "a character device" in r.json()["error"], r.text
    finally:
        assert s.stop() == 0
    assert rooted.api("GET", "/health").status_code == 200


def test_no_roots_no_file_access(harness_bin):
    s = Server(harness_bin, ["--quiet"], roots=())
    try:
        r = s.api("POST", "/instances", json={"file": os.path.join(HERE, "fixtures/good/body-file.yaml")})
        assert r.status_code == 403 and "--root" in r.json()["error"], r.text
        # posted YAML without files still loads
        assert s.api("POST", "/instances", json={"yaml": GOOD}).status_code == 201
    finally:
        assert s.stop() == 0


def test_files_served_are_roots(harness_bin, tmp_path):
    f = tmp_path / "served.yaml"
    f.write_text(GOOD)
    s = Server(harness_bin, [str(f), "--quiet"], roots=())
    try:
        r = s.api("POST", "/instances", json={"file": str(f), "id": "again"})
        assert r.status_code == 201, r.text
        r = s.api("POST", "/instances", json={"yaml": GOOD, "base_dir": str(tmp_path)})
        assert r.status_code == 403, "a served file is a root, not its folder"
    finally:
        assert s.stop() == 0


def test_body_file_escapes_are_refused(rooted):
    for rel, words in (("../secret.yaml", "outside"), ("escape.yaml", "outside"),
                       ("zero.yaml", "outside"), ("/etc/hostname", "relative")):
        y = scenario_text("""
            server:
              routes:
                - {match: {path: /}, response: {body_file: "%s"}}
        """ % rel, "sec.bf")
        r = rooted.api("POST", "/instances", json={"yaml": y, "base_dir": str(rooted.root)})
        assert r.status_code == 400, r.text
        assert words in r.text and SECRET not in r.text


@pytest.mark.parametrize("name", ["fifo.yaml", "big.yaml"])
def test_body_file_fifo_and_oversized_are_refused(harness_bin, tmp_path, name):
    root = tmp_path / "root"
    root.mkdir()
    os.mkfifo(root / "fifo.yaml")
    with open(root / "big.yaml", "wb") as f:
        f.truncate(64 * 1024 * 1024 + 1)  # over LD_BODY_FILE_MAX (harness/src/ld.h)
    s = Server(harness_bin, ["--quiet"], roots=[root])
    try:
        y = scenario_text("""
            server:
              routes:
                - {match: {path: /}, response: {body_file: %s}}
        """ % name, "sec.bf")
        try:
            r = s.api("POST", "/instances", json={"yaml": y, "base_dir": str(root)}, timeout=3)
        except Exception as err:  # a FIFO read blocks the control port
            pytest.fail("no answer: %s" % err)
        assert r.status_code == 400 and ("regular" in r.text or "larger" in r.text), r.text
    finally:
        s.stop(signal.SIGKILL, timeout=5)


# --------------------------------------------------------------------------- bind, token, host

def serve_fails(harness_bin, args, env=None):
    p = subprocess.run([harness_bin, "serve", "--quiet", *args], capture_output=True, text=True,
                       timeout=10, env=env)
    return p.returncode, p.stderr


def test_bind_off_loopback_needs_a_token(harness_bin):
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_TOKEN"}
    code, err = serve_fails(harness_bin, ["--bind", "0.0.0.0"], env)
    assert code == 2 and "--bind 0.0.0.0 is not a loopback address" in err and "--token" in err
    code, err = serve_fails(harness_bin, ["--bind", "0.0.0.0", "--token", "short"], env)
    assert code == 2 and "bad token" in err
    code, err = serve_fails(harness_bin, ["--token", "a-b", "--token-file", "/nope"], env)
    assert code == 2


def test_given_token_public_host_and_bind_any(harness_bin, tmp_path):
    token = "given-token-0123456789"
    s = Server(harness_bin, ["--quiet", "--bind", "0.0.0.0", "--public-host", "harness.test",
                             "--token", token])
    try:
        assert s.token == token
        cport = s.control.rsplit(":", 1)[1]
        assert s.control == "http://harness.test:" + cport
        assert s.main.startswith("http://harness.test:") and s.cross.startswith("http://harness.test:")
        direct = "http://127.0.0.1:" + cport
        tok = ("X-Harness-Token", token)
        assert raw(direct, headers=[tok, ("Host", "harness.test:" + cport)])[0] == 200
        assert raw(direct, headers=[tok])[0] == 200  # the address the connection reached
        assert raw(direct, headers=[tok, ("Host", "evil.example:" + cport)])[0] == 403
        assert raw(direct, headers=[("X-Harness-Token", "wrong-token-0123456789")])[0] == 401
        r = json.loads(raw(direct, "POST", "/_harness/instances", [tok],
                           json.dumps({"yaml": GOOD}).encode())[2])
        assert r["urls"]["main"] == s.main + "/s/sec.good"
    finally:
        assert s.stop() == 0
    f = tmp_path / "tok"
    f.write_text(token + "\n")
    env = dict(os.environ, HARNESS_TOKEN="env-token-0123456789")
    p = subprocess.Popen([harness_bin, "serve", "--quiet", "--token-file", str(f)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert json.loads(p.stdout.readline())["token"] == token
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
    p = subprocess.Popen([harness_bin, "serve", "--quiet"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert json.loads(p.stdout.readline())["token"] == "env-token-0123456789"
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
    p.stdout.close()
    p.stderr.close()


def test_docs_examples_use_the_token():
    """The docs' curl examples carry the token header."""
    with open(os.path.join(ROOT, "docs", "control-api.md")) as f:
        text = f.read()
    curls = [l for l in text.splitlines() if l.lstrip().startswith("curl ")]
    assert curls and all("X-Harness-Token" in l or "/health" in l for l in curls)


