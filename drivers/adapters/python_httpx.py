#!/usr/bin/python3
"""python_httpx.py — the adapter for Python `httpx` (docs/adapters.md). Capability: http.

    /usr/bin/python3 drivers/adapters/python_httpx.py

Uses Debian's python3-httpx (and its httpcore); run it with /usr/bin/python3.

Each run makes one request with a fresh synchronous httpx.Client, the way an application
would:

    with httpx.Client(trust_env=False, timeout=..., follow_redirects=...) as client:
        with client.stream(method, url, headers=[...], content=... | files=...) as response:
            response.read()                    # or: for chunk in response.iter_bytes(n)

trust_env is off (the harness is on loopback: no proxy from the environment). The
"response" event marks the moment the headers arrived; with client.http.stream the body is
read with response.iter_bytes(chunk_size), one "chunk" event for every piece httpx yields
(chunk_size None: as httpx receives them), otherwise with response.read().

Headers are passed as a list of pairs, so a name given twice is sent twice (httpx keeps
them apart). `timeout` is httpx's timeout for connect, read, write and pool alike.
`redirect`: follow (follow_redirects=True), manual (False), error (follow_redirects=True
with max_redirects=0: httpx raises TooManyRedirects at the first redirect).

An httpx exception (httpx.HTTPError and httpx.InvalidURL…: ConnectError, ReadTimeout,
RemoteProtocolError, TooManyRedirects…) is the client's failure: an "error" event {name,
message}; anything else the library raises is the "exception". The protocol loop,
threads, deadlines and socket bookkeeping are pyproto.py's.
"""
import platform
import sys
import time

import httpcore
import httpx

from pyproto import (Adapter, Run, duration_ms, header_pairs, http_request_body, serve,
                     ssl_context)

NAME = "python-httpx"
LIBRARY_ERRORS = (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError)


class HttpxRun(Run):
    def execute(self):
        s = self.spec
        client_kwargs = {"trust_env": False, "follow_redirects": s.get("redirect") != "manual",
                         "verify": ssl_context()}  # the harness's CA added; verification on
        if s.get("redirect") == "error":
            client_kwargs["max_redirects"] = 0
        if s.get("timeout") is not None:
            client_kwargs["timeout"] = duration_ms(s["timeout"]) / 1000.0
        else:
            client_kwargs["timeout"] = None  # no timeout unless asked (the run has a deadline)
        kwargs = {"headers": header_pairs(s.get("headers"))}
        kind, payload = http_request_body(s)
        if kind == "form":  # multipart/form-data, as FormData would send it
            kwargs["files"] = {k: (None, v) for k, v in payload.items()}
        elif kind == "data":
            kwargs["content"] = payload
        method = s.get("method") or "GET"
        self.t0 = time.monotonic()
        try:
            client = httpx.Client(**client_kwargs)
        except Exception as err:  # noqa: BLE001 (the library refused its settings)
            self.library_failed(err, LIBRARY_ERRORS)
            return
        with client:
            try:
                request = client.build_request(method, s["url"], **kwargs)
            except Exception as err:  # noqa: BLE001 (recorded as the client's failure)
                self.library_failed(err, LIBRARY_ERRORS)
                return
            try:
                response = client.send(request, stream=True)
            except Exception as err:  # noqa: BLE001
                self.library_failed(err, LIBRARY_ERRORS)
                return
            try:
                self.http_response(response.status_code, response.reason_phrase,
                                   response.headers.multi_items(), response.url)
                body = self.http_body(bool(s.get("stream")), response.encoding)
                try:
                    if body.stream:
                        for chunk in response.iter_bytes(s.get("chunk_size")):
                            body.piece(chunk)
                    else:
                        response.read()
                        body.piece(getattr(response, "_content", b""))
                finally:
                    body.finish()
            except Exception as err:  # noqa: BLE001
                self.library_failed(err, LIBRARY_ERRORS)
                return
            finally:
                response.close()
            self.event("done")


def main():
    serve(Adapter(
        name=NAME, version=httpx.__version__,
        implementation="httpx %s (httpcore %s) on %s %s" % (
            httpx.__version__, httpcore.__version__, platform.python_implementation(),
            platform.python_version()),
        capabilities=["http", "steps"], run_class=HttpxRun,
        details={"python": sys.executable, "httpcore": httpcore.__version__}))


if __name__ == "__main__":
    main()
