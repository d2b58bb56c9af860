#!/usr/bin/python3
"""curl.py — the adapter for the curl command-line tool (docs/adapters.md). Capability: http.

    /usr/bin/python3 drivers/adapters/curl.py [--curl /usr/bin/curl]

Each run is one curl process, as a shell script would run it (curl's own defaults, no
retries, no --fail):

    curl -q -sS -N --globoff --noproxy '*' [--cacert CA] [-X METHOD | --head] [-H 'Name: value']...
         [--data-binary @- | --form-string name=value...] [--max-time S] [-L [--max-redirs 0]]
         -D /dev/fd/N -w '%{stderr}...%{json}' URL

- -q: no ~/.curlrc; --noproxy '*' and no proxy variables in its environment (the harness is
  on loopback); --globoff: the URL is taken as it is ([] and {} are not patterns);
  --cacert: the harness's CA ($COMET_TLS_CA), verification on (curl resolves *.localhost
  by itself).
- The response headers are written by curl to a pipe of their own (-D /dev/fd/N) as they
  arrive: the end of the last header block (a block that is neither 1xx nor, when
  following, a redirect with a Location) is the "response" event {status}, and its status
  line and fields give status, statusText and headers. The body comes on stdout (-N: curl
  writes it out as it gets it); with client.http.stream each read of the pipe is a "chunk"
  event (chunk_size, when given, is the most one read takes), otherwise the body is read to
  its end. responseText decodes it with the Content-Type's charset, else UTF-8.
- curl's exit code is the outcome: 0 is "done"; anything else is an "error" event named
  after libcurl's code, e.g. {"name": "CURLE_PARTIAL_FILE (18)", "message": "curl: (18)
  transfer closed with 10 bytes remaining to read"} (the message is curl's own line).
  responseURL is curl's url_effective (from -w '%{json}').
- headers: every pair is one -H, in order (a name given twice is sent twice). A body is
  sent with --data-binary from stdin (curl then defaults to POST and adds
  `Content-Type: application/x-www-form-urlencoded` unless one is given — its behaviour);
  form fields with --form-string (multipart/form-data). method: -X METHOD, or --head for
  HEAD (the one way curl does not wait for a body after a HEAD).
- timeout (ms): --max-time, curl's limit on the whole transfer (CURLE_OPERATION_TIMEDOUT
  (28) when it passes, connecting included).
- redirect: follow (the protocol's default: -L, with curl's own limit of 50 hops), manual
  (curl's default: not followed), error (-L --max-redirs 0: CURLE_TOO_MANY_REDIRECTS (47)
  at the first redirect).

At the deadline, or on stop, the curl process is killed.
"""
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

from pyproto import (Adapter, Run, charset_of, duration_ms, header_pairs, http_request_body, log,
                     lower_headers, serve, tls_ca)

NAME = "curl"
MARK = "@@comet-curl-write-out@@"

# libcurl's CURLcode names (curl.h), by exit code.
CURLE = {
    1: "UNSUPPORTED_PROTOCOL", 2: "FAILED_INIT", 3: "URL_MALFORMAT", 4: "NOT_BUILT_IN",
    5: "COULDNT_RESOLVE_PROXY", 6: "COULDNT_RESOLVE_HOST", 7: "COULDNT_CONNECT",
    8: "WEIRD_SERVER_REPLY", 9: "REMOTE_ACCESS_DENIED", 10: "FTP_ACCEPT_FAILED",
    11: "FTP_WEIRD_PASS_REPLY", 12: "FTP_ACCEPT_TIMEOUT", 13: "FTP_WEIRD_PASV_REPLY",
    14: "FTP_WEIRD_227_FORMAT", 15: "FTP_CANT_GET_HOST", 16: "HTTP2", 17: "FTP_COULDNT_SET_TYPE",
    18: "PARTIAL_FILE", 19: "FTP_COULDNT_RETR_FILE", 21: "QUOTE_ERROR",
    22: "HTTP_RETURNED_ERROR", 23: "WRITE_ERROR", 25: "UPLOAD_FAILED", 26: "READ_ERROR",
    27: "OUT_OF_MEMORY", 28: "OPERATION_TIMEDOUT", 30: "FTP_PORT_FAILED",
    31: "FTP_COULDNT_USE_REST", 33: "RANGE_ERROR", 34: "HTTP_POST_ERROR",
    35: "SSL_CONNECT_ERROR", 36: "BAD_DOWNLOAD_RESUME", 37: "FILE_COULDNT_READ_FILE",
    38: "LDAP_CANNOT_BIND", 39: "LDAP_SEARCH_FAILED", 41: "FUNCTION_NOT_FOUND",
    42: "ABORTED_BY_CALLBACK", 43: "BAD_FUNCTION_ARGUMENT", 45: "INTERFACE_FAILED",
    47: "TOO_MANY_REDIRECTS", 48: "UNKNOWN_OPTION", 49: "SETOPT_OPTION_SYNTAX",
    52: "GOT_NOTHING", 53: "SSL_ENGINE_NOTFOUND", 54: "SSL_ENGINE_SETFAILED",
    55: "SEND_ERROR", 56: "RECV_ERROR", 58: "SSL_CERTPROBLEM", 59: "SSL_CIPHER",
    60: "PEER_FAILED_VERIFICATION", 61: "BAD_CONTENT_ENCODING", 63: "FILESIZE_EXCEEDED",
    64: "USE_SSL_FAILED", 65: "SEND_FAIL_REWIND", 66: "SSL_ENGINE_INITFAILED",
    67: "LOGIN_DENIED", 68: "TFTP_NOTFOUND", 69: "TFTP_PERM", 70: "REMOTE_DISK_FULL",
    71: "TFTP_ILLEGAL", 72: "TFTP_UNKNOWNID", 73: "REMOTE_FILE_EXISTS", 74: "TFTP_NOSUCHUSER",
    77: "SSL_CACERT_BADFILE", 78: "REMOTE_FILE_NOT_FOUND", 79: "SSH",
    80: "SSL_SHUTDOWN_FAILED", 81: "AGAIN", 82: "SSL_CRL_BADFILE", 83: "SSL_ISSUER_ERROR",
    84: "FTP_PRET_FAILED", 85: "RTSP_CSEQ_ERROR", 86: "RTSP_SESSION_ERROR",
    87: "FTP_BAD_FILE_LIST", 88: "CHUNK_FAILED", 89: "NO_CONNECTION_AVAILABLE",
    90: "SSL_PINNEDPUBKEYNOTMATCH", 91: "SSL_INVALIDCERTSTATUS", 92: "HTTP2_STREAM",
    93: "RECURSIVE_API_CALL", 94: "AUTH_ERROR", 95: "HTTP3", 96: "QUIC_CONNECT_ERROR",
    97: "PROXY", 98: "SSL_CLIENTCERT", 99: "UNRECOVERABLE_POLL",
}
REDIRECTS = {301, 302, 303, 307, 308}
PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy"}


def curl_error_name(code):
    if code < 0:
        return "signal %s" % signal.Signals(-code).name
    return "CURLE_%s (%d)" % (CURLE.get(code, "UNKNOWN"), code)


def find_curl():
    argv = sys.argv[1:]
    if "--curl" in argv:
        i = argv.index("--curl")
        if i + 1 >= len(argv):
            print("usage: curl.py [--curl PATH]", file=sys.stderr)
            sys.exit(2)
        return argv[i + 1]
    if argv:
        print("usage: curl.py [--curl PATH]", file=sys.stderr)
        sys.exit(2)
    return "/usr/bin/curl" if os.path.exists("/usr/bin/curl") else (shutil.which("curl") or "curl")


CURL = find_curl()


def curl_version():
    out = subprocess.run([CURL, "--version"], capture_output=True, text=True, timeout=10).stdout
    first = out.splitlines()[0] if out else ""
    m = re.match(r"curl (\S+)", first)
    if not m:
        raise RuntimeError("%s --version said %r" % (CURL, first))
    return m.group(1), first


class CurlRun(Run):
    proc = None

    def command(self, header_fd):
        s = self.spec
        method = (s.get("method") or "GET").upper() if s.get("method") else None
        argv = [CURL, "-q", "-sS", "-N", "--globoff", "--noproxy", "*"]
        if tls_ca():  # the harness's CA (curl resolves *.localhost itself)
            argv += ["--cacert", tls_ca()]
        if method == "HEAD":
            # --head writes the header block where the body would go: keep stdout for bodies
            argv += ["--head", "-o", "/dev/null"]
        elif method is not None and not (method == "GET" and not self.has_data()) \
                and not (method == "POST" and self.has_data()):
            argv += ["-X", s["method"]]
        for name, value in header_pairs(s.get("headers")):
            argv += ["-H", "%s: %s" % (name, value) if value != "" else "%s;" % name]
        kind, payload = http_request_body(s)
        if kind == "form":
            for name, value in payload.items():
                argv += ["--form-string", "%s=%s" % (name, value)]
        elif kind == "data":
            argv += ["--data-binary", "@-"]
        if s.get("timeout") is not None:
            argv += ["--max-time", "%.3f" % (duration_ms(s["timeout"]) / 1000.0)]
        redirect = s.get("redirect") or "follow"
        if redirect in ("follow", "error"):
            argv.append("-L")
            if redirect == "error":
                argv += ["--max-redirs", "0"]
        argv += ["-D", "/dev/fd/%d" % header_fd, "-w", "%{stderr}\n" + MARK + "%{json}\n",
                 "--", s["url"]]
        return argv

    def has_data(self):
        """A body to send besides form fields (body or body_base64)."""
        s = self.spec
        return s.get("body_base64") is not None or s.get("body") is not None

    def body_bytes(self):
        """The bytes curl reads on stdin (--data-binary @-), or None."""
        kind, payload = http_request_body(self.spec)
        return payload if kind == "data" else None

    def execute(self):
        s = self.spec
        self.following = (s.get("redirect") or "follow") in ("follow", "error")
        self.headers_done = threading.Event()
        self.final_headers = None
        hr, hw = os.pipe()
        env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARS}
        env.pop("CURL_HOME", None)
        argv = self.command(hw)
        body = self.body_bytes()
        self.t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE if body is not None else subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         pass_fds=(hw,), env=env)
        finally:
            os.close(hw)
        if self.frozen:  # the deadline hit while starting
            self.cancel()
        stderr_box = []
        readers = [threading.Thread(target=self.read_headers, args=(hr,), daemon=True),
                   threading.Thread(target=lambda: stderr_box.append(self.proc.stderr.read()),
                                    daemon=True)]
        for t in readers:
            t.start()
        if body is not None:
            threading.Thread(target=self.feed, args=(body,), daemon=True).start()
        body = self.read_body(bool(s.get("stream")), s.get("chunk_size"))
        code = self.proc.wait()
        for t in readers:
            t.join(5)
        err_text = (stderr_box[0] if stderr_box else b"").decode("utf-8", "replace")
        summary, messages = {}, []
        for line in err_text.splitlines():
            if line.startswith(MARK):
                try:
                    summary = json.loads(line[len(MARK):])
                except ValueError:
                    pass
            elif line.strip():
                messages.append(line.strip())
        if messages:
            log("curl: run %s: %s" % (self.id, " | ".join(messages)))
        if self.final_headers is not None:
            body.encoding = charset_of(self.content_type())
            body.finish()
        if summary.get("url_effective"):
            self.set(responseURL=summary["url_effective"])
        if code == 0:
            self.event("done")
        else:
            message = next((m for m in messages if m.startswith("curl: (")),
                           summary.get("errormsg") or (messages[-1] if messages else ""))
            self.event("error", name=curl_error_name(code), message=message or "")

    def feed(self, body):
        try:
            self.proc.stdin.write(body)
            self.proc.stdin.close()
        except OSError:
            pass  # curl went away (it may not read a body it does not send)

    def read_headers(self, fd):
        """Header blocks as curl writes them; the last one is the response's."""
        buf = b""
        with os.fdopen(fd, "rb", buffering=0) as f:
            while True:
                data = f.read(65536)
                if not data:
                    break
                buf += data
                while b"\r\n\r\n" in buf or b"\n\n" in buf:
                    i = buf.find(b"\r\n\r\n")
                    sep = 4
                    j = buf.find(b"\n\n")
                    if i < 0 or (0 <= j < i):
                        i, sep = j, 2
                    block, buf = buf[:i], buf[i + sep:]
                    self.header_block(block.decode("iso-8859-1"))
        self.headers_done.set()

    def header_block(self, text):
        lines = text.replace("\r\n", "\n").split("\n")
        m = re.match(r"HTTP/\S+\s+(\d{3})(?:\s(.*))?$", lines[0].strip()) if lines else None
        if not m:
            return
        status, reason = int(m.group(1)), (m.group(2) or "")
        pairs = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                pairs.append((name.strip(), value.strip()))
        if 100 <= status < 200 and status != 101:
            return  # an interim response
        if self.following and status in REDIRECTS and "location" in lower_headers(pairs):
            return  # curl follows it (or fails with TOO_MANY_REDIRECTS)
        if self.final_headers is None:
            headers = self.http_response(status, reason, pairs)
            self.final_headers = (status, reason, headers)
            self.headers_done.set()

    def read_body(self, stream, chunk_size):
        body = self.http_body(stream)
        fd = self.proc.stdout.fileno()
        size = int(chunk_size) if chunk_size else 65536
        while True:
            try:
                data = os.read(fd, size)
            except OSError:
                break
            if not data:
                break
            if stream:
                # curl writes the headers before the body: let their event come first.
                self.headers_done.wait(2)
                if body.encoding is None:
                    body.encoding = charset_of(self.content_type())
            body.piece(data)
        self.proc.stdout.close()
        return body

    def content_type(self):
        return (self.final_headers or (0, "", {}))[2].get("content-type", "")

    def cancel(self):
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                proc.kill()
            except OSError:
                pass
        super().cancel()


def main():
    try:
        version, line = curl_version()
    except Exception as err:  # noqa: BLE001 - answered at start
        version, line = None, str(err)
    adapter = Adapter(
        name=NAME, version=version or "?",
        implementation="%s (%s)" % (line, CURL), capabilities=["http", "steps"], run_class=CurlRun,
        details={"curl": CURL, "python": "%s %s" % (platform.python_implementation(),
                                                    platform.python_version())})
    if version is None:
        # No curl to run: every start is answered with the reason.
        adapter.started = lambda msg: {"id": msg.get("id"), "type": "error",
                                       "message": "cannot run curl: %s" % line}
    serve(adapter)


if __name__ == "__main__":
    main()
