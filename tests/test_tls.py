"""TLS in the server (docs/tls.md): the https twins, the CA file, the handshake and the
certificate chain as a raw TLS client (Python's ssl) sees them, each deliberately wrong
certificate refused for its one reason, wss with two libraries, hand-written bytes over
TLS, the per-instance origins of `tls` and `site`, and certificates brought with
--cert/--key/--ca[/--ca-key]."""
import asyncio
import json
import os
import socket
import ssl
import subprocess
import textwrap
import urllib.parse

import pytest
import requests

from conftest import Server, wait_until

FLAWS = {
    # origin: what OpenSSL's verification says (ssl.SSLCertVerificationError.verify_message)
    "cert_expired": "certificate has expired",
    "cert_not_yet_valid": "certificate is not yet valid",
    "cert_wrong_name": "Hostname mismatch",
    "cert_self_signed": "self-signed certificate",
    "cert_untrusted_ca": "self-signed certificate in certificate chain",
}
NAMES = ["localhost", "a.localhost", "www.a.localhost", "b.localhost"]


@pytest.fixture(scope="module")
def tls_server(harness_bin):
    s = Server(harness_bin, ["--quiet"])
    yield s
    ca_dir = os.path.dirname(s.ready["ca"])
    assert s.stop() == 0, s.stderr
    assert not os.path.exists(ca_dir), "the CA's folder outlives the server"


def host_port(origin):
    u = urllib.parse.urlsplit(origin)
    return u.hostname, u.port


def handshake(origin, server_hostname, cafile=None, alpn=None):
    """A TLS handshake with 127.0.0.1:PORT as server_hostname; the SSLSocket (closed by
    the caller) or the verification error."""
    ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
    if alpn:
        ctx.set_alpn_protocols(alpn)
    _, port = host_port(origin)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        return ctx.wrap_socket(raw, server_hostname=server_hostname)
    except Exception:
        raw.close()
        raise


def load(server, yaml_text):
    r = server.api("POST", "/instances", json={"yaml": textwrap.dedent(yaml_text)})
    assert r.status_code == 201, r.text
    return r.json()


def test_ready_line_names_every_https_origin_and_the_ca(tls_server):
    ready = tls_server.ready
    for name in ("main_tls", "cross_tls", "alt_tls", *FLAWS):
        assert ready[name].startswith("https://"), name
    assert ready["insecure"] == "http://insecure.test:%d" % host_port(ready["main"])[1]
    assert host_port(ready["alt_tls"]) == ("localhost", host_port(ready["main_tls"])[1])
    ports = {host_port(ready[k])[1] for k in ("main", "cross", "control", "main_tls",
                                              "cross_tls", *FLAWS)}
    assert len(ports) == 10, "every port is its own"
    with open(ready["ca"]) as f:
        assert f.read().startswith("-----BEGIN CERTIFICATE-----")
    assert oct(os.stat(os.path.dirname(ready["ca"])).st_mode & 0o777) == "0o700"
    r = tls_server.api("GET", "/origins")
    assert r.json() == {k: v for k, v in ready.items()
                        if isinstance(v, str) and v.startswith("http") and k != "control"}


def test_the_ca_is_a_ca_and_the_leaf_names_every_host(tls_server):
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    with open(tls_server.ready["ca"], "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    with handshake(tls_server.ready["main_tls"], "a.localhost", tls_server.ready["ca"]) as tls:
        leaf = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
        assert tls.version() in ("TLSv1.3", "TLSv1.2")
    assert leaf.issuer == ca.subject
    assert leaf.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == \
        "Comet Harness local CA"
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(NAMES) <= set(san.get_values_for_type(x509.DNSName))
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} >= {"127.0.0.1", "::1"}
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


@pytest.mark.parametrize("name", NAMES + ["127.0.0.1"])
def test_handshake_verifies_for_every_name(tls_server, name):
    with handshake(tls_server.ready["main_tls"], name, tls_server.ready["ca"]) as tls:
        assert tls.getpeercert()["subject"]


def test_no_http2_alpn_is_http_1_1_or_none(tls_server):
    # libmicrohttpd 0.9 has no HTTP/2 (README: what that means for SSE)
    with handshake(tls_server.ready["main_tls"], "localhost", tls_server.ready["ca"],
                   alpn=["h2", "http/1.1"]) as tls:
        assert tls.selected_alpn_protocol() in (None, "http/1.1")


def test_without_the_ca_the_good_certificate_is_refused(tls_server):
    with pytest.raises(ssl.SSLCertVerificationError) as err:
        handshake(tls_server.ready["main_tls"], "localhost")
    assert err.value.verify_message == "unable to get local issuer certificate"


@pytest.mark.parametrize("origin", sorted(FLAWS))
def test_each_wrong_certificate_is_refused_for_its_reason(tls_server, origin):
    with pytest.raises(ssl.SSLCertVerificationError) as err:
        handshake(tls_server.ready[origin], "localhost", tls_server.ready["ca"])
    assert FLAWS[origin] in err.value.verify_message


def test_untrusted_ca_chain_is_the_leaf_then_its_ca(tls_server):
    _, port = host_port(tls_server.ready["cert_untrusted_ca"])
    out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                          "-servername", "localhost", "-showcerts"],
                         input=b"", capture_output=True, timeout=30).stdout.decode()
    assert out.count("-----BEGIN CERTIFICATE-----") == 2
    assert "Comet Harness" in out


def test_a_scenario_over_tls_is_journaled_with_tls_and_sni(tls_server):
    inst = load(tls_server, """
        id: t.tls.basic
        title: t
        spec: https://example.org/
        tls: true
        site: cross
        server:
          routes:
            - {name: hello, tls: true, match: {path: /hello},
               response: {body: "{{origin.main}} {{origin.cross}} {{origin.main_http}}"}}
        client:
          http: {url: /hello}
        """)
    o = inst["origins"]
    main_tls, cross_tls = (host_port(tls_server.ready[k])[1] for k in ("main_tls", "cross_tls"))
    assert o["main"] == "https://a.localhost:%d" % main_tls
    assert o["cross"] == "https://b.localhost:%d" % cross_tls
    assert o["alt"] == "https://b.localhost:%d" % main_tls
    assert o["main_http"] == "http://a.localhost:%d" % host_port(tls_server.ready["main"])[1]
    assert inst["urls"]["main"] == o["main"] + inst["base"]
    # a raw client: 127.0.0.1, with the name as SNI and Host
    with handshake(o["main"], "a.localhost", tls_server.ready["ca"]) as tls:
        tls.sendall(("GET %s/hello HTTP/1.1\r\nHost: a.localhost:%d\r\nConnection: close\r\n\r\n"
                     % (inst["base"], main_tls)).encode())
        data = b""
        while True:
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body.decode() == "%s %s %s" % (o["main"], o["cross"], o["main_http"])
    entry = tls_server.entries(inst["instance"])[0]
    assert entry["tls"] is True and entry["sni"] == "a.localhost"
    assert entry["origin"] == "main_tls" and entry["route"] == "hello"
    # the same route over plain http: no route matches
    r = requests.get(tls_server.ready["main"] + inst["base"] + "/hello", timeout=10)
    assert r.status_code == 404
    plain = tls_server.entries(inst["instance"])[1]
    assert plain["tls"] is False and plain["route"] is None and "sni" not in plain


def test_hand_written_bytes_go_through_the_tls_session(tls_server):
    inst = load(tls_server, r"""
        id: t.tls.raw
        title: t
        spec: https://example.org/
        tls: true
        server:
          routes:
            - name: raw
              match: {path: /raw}
              response:
                raw: "HTTP/1.1 299 Hand Written\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nabcdefghij"
                trickle: {bytes: 70, every: 100}
        client:
          http: {url: /raw}
        """)
    out = subprocess.run(["curl", "-sS", "-i", "--cacert", tls_server.ready["ca"],
                          inst["urls"]["main"] + "/raw"], capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(b"HTTP/1.1 299 Hand Written\r\n")
    assert out.stdout.endswith(b"\r\n\r\nabcdefghij")
    # the end is journaled when libmicrohttpd completes the request, maybe after curl exits
    assert wait_until(lambda: tls_server.entries(inst["instance"])[0]["end"] is not None)
    entry = tls_server.entries(inst["instance"])[0]
    assert entry["end"] == "complete" and entry["tls"] is True


WSS_SCENARIO = """
    id: t.tls.wss
    title: t
    spec: https://example.org/
    tls: true
    site: same
    server:
      routes:
        - name: ws
          tls: true
          match: {path: /ws}
          response:
            websocket:
              script: [{echo: {count: 2, timeout: 3s}}, {send: bye}, {close: {code: 1000}}]
    client:
      websocket: {url: /ws}
    """


def wss_url(inst):
    return inst["urls"]["main"].replace("https://", "wss://") + "/ws"


@pytest.fixture
def localhost_names(monkeypatch):
    """*.localhost resolved to 127.0.0.1 in this process (as pyproto.py does for the Python
    adapters; glibc here does not): the libraries still send the name as Host and SNI."""
    original = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return original(host, *args, **kwargs)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_wss_with_websocket_client(tls_server, localhost_names):
    import websocket
    inst = load(tls_server, WSS_SCENARIO)
    ws = websocket.create_connection(wss_url(inst), sslopt={"ca_certs": tls_server.ready["ca"]},
                                     timeout=10)
    for text in ("one", "two"):
        ws.send(text)
        assert ws.recv() == text
    assert ws.recv() == "bye"
    ws.close()
    entry = tls_server.entries(inst["instance"])[0]
    assert entry["tls"] is True and entry["sni"] == "a.localhost"
    assert entry["websocket"]["upgraded"] is True


def test_wss_with_websockets(tls_server, localhost_names):
    import websockets
    inst = load(tls_server, WSS_SCENARIO)
    ctx = ssl.create_default_context(cafile=tls_server.ready["ca"])

    async def talk():
        async with websockets.connect(wss_url(inst), ssl=ctx) as ws:
            got = []
            for text in ("one", "two"):
                await ws.send(text)
                got.append(await ws.recv())
            got.append(await ws.recv())
            await asyncio.wait_for(ws.wait_closed(), 5)
            return got, ws.close_code
    got, code = asyncio.run(talk())
    assert got == ["one", "two", "bye"] and code == 1000
    entry = tls_server.entries(inst["instance"])[0]
    assert entry["websocket"]["end"] == "closed_by_server"


def make_ca(tmp_path, name="Brought CA"):
    key, crt = tmp_path / (name.replace(" ", "") + ".key"), tmp_path / (name.replace(" ", "") + ".pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "2", "-subj", "/CN=%s" % name, "-addext",
                    "basicConstraints=critical,CA:TRUE", "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign"],
                   check=True, capture_output=True, timeout=60)
    return crt, key


def make_leaf(tmp_path, ca, ca_key):
    key, csr, crt = (tmp_path / n for n in ("leaf.key", "leaf.csr", "leaf.pem"))
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost"],
                   check=True, capture_output=True, timeout=60)
    ext = tmp_path / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey",
                    str(ca_key), "-CAcreateserial", "-out", str(crt), "-days", "2", "-extfile",
                    str(ext)], check=True, capture_output=True, timeout=60)
    return crt, key


def test_bring_your_own_certificate(harness_bin, tmp_path):
    ca, ca_key = make_ca(tmp_path)
    crt, key = make_leaf(tmp_path, ca, ca_key)
    s = Server(harness_bin, ["--quiet", "--cert", str(crt), "--key", str(key), "--ca", str(ca)])
    try:
        assert s.ready["ca"] == str(ca)
        assert not [k for k in s.ready if k.startswith("cert_")], "no CA key: no flawed origins"
        with handshake(s.ready["main_tls"], "localhost", str(ca)) as tls:
            assert tls.getpeercert()["subject"] == ((("commonName", "localhost"),),)
    finally:
        assert s.stop() == 0, s.stderr
    s = Server(harness_bin, ["--quiet", "--cert", str(crt), "--key", str(key), "--ca", str(ca),
                             "--ca-key", str(ca_key)])
    try:
        with pytest.raises(ssl.SSLCertVerificationError) as err:
            handshake(s.ready["cert_expired"], "localhost", str(ca))
        assert err.value.verify_message == "certificate has expired"
    finally:
        assert s.stop() == 0, s.stderr


@pytest.mark.parametrize("args, says", [
    (["--cert", "C"], "bring --cert, --key and --ca together"),
    (["--cert", "MISSING", "--key", "MISSING", "--ca", "MISSING"], "MISSING"),
    (["--cert", "LEAF", "--key", "OTHERKEY", "--ca", "CA"], "OTHERKEY"),
])
def test_bad_certificate_options_stop_the_start(harness_bin, tmp_path, args, says):
    ca, ca_key = make_ca(tmp_path)
    crt, key = make_leaf(tmp_path, ca, ca_key)
    _, other_key = make_ca(tmp_path, "Other")
    names = {"C": str(crt), "LEAF": str(crt), "CA": str(ca), "OTHERKEY": str(other_key),
             "MISSING": str(tmp_path / "missing.pem")}
    argv = [names.get(a, a) for a in args]
    proc = subprocess.run([harness_bin, "serve", "--port", "0", *argv], capture_output=True,
                          timeout=30, stdin=subprocess.DEVNULL)
    assert proc.returncode != 0
    assert names.get(says, says) in proc.stderr.decode(), proc.stderr
    assert b'"event":"ready"' not in proc.stdout


def test_instance_origins_follow_tls_and_site(tls_server):
    plain = load(tls_server, """
        id: t.tls.plain
        title: t
        spec: https://example.org/
        client:
          http: {url: /}
        """)["origins"]
    assert {k: plain[k] for k in ("main", "cross", "alt")} == \
        {k: tls_server.ready[k] for k in ("main", "cross", "alt")}
    same = load(tls_server, """
        id: t.tls.same
        title: t
        spec: https://example.org/
        site: same
        client:
          http: {url: /}
        """)["origins"]
    assert [host_port(same[k])[0] for k in ("main", "cross", "alt")] == \
        ["a.localhost", "a.localhost", "www.a.localhost"]
    assert same["main"].startswith("http://") and same["main_tls"].startswith("https://a.")
    assert host_port(same["cert_expired"]) == ("a.localhost",
                                               host_port(tls_server.ready["cert_expired"])[1])
    assert json.dumps(same).count("insecure.test") == 1
