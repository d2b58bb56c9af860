#!/usr/bin/python3
"""python_requests.py — the adapter for Python `requests` (docs/adapters.md). Capability: http.

    /usr/bin/python3 drivers/adapters/python_requests.py

Uses Debian's python3-requests (and its urllib3); run it with /usr/bin/python3, whose
dist-packages hold them. Standard library otherwise.

Each run makes one request with a fresh requests.Session, the way an application would:

    session.request(method, url, headers=..., data=..., timeout=..., stream=True,
                    allow_redirects=...)

(with session.trust_env off: the harness is on loopback, and a proxy from the environment
must not come between them; the browsers are launched without proxies too.)

and then reads the body — with response.iter_content(chunk_size) when client.http.stream
is true, reporting every chunk the library yields as a "chunk" event, or with
response.content otherwise. `stream=True` is always passed so that the "response" event
marks the moment the headers arrived; response.content then reads the body exactly as
requests does for stream=False. chunk_size is client.http.chunk_size, default None (which
requests documents as "as the data arrives"; for a body that is not chunked, urllib3 then
reads it to its end in one go — a property of the library the scenarios may observe).

A requests exception (requests.exceptions.RequestException: ConnectTimeout, ReadTimeout,
ConnectionError, ChunkedEncodingError, TooManyRedirects…) is the client's failure and is
recorded as an "error" event {name, message}; any other exception raised by the library
call (a ValueError for a bad header, say) is recorded as "exception". Only a failure of the
adapter's own code is answered as an "error" message.

Runs go on concurrently, each in its own thread. A run never outlives its deadline: the run
answers what it saw plus {"deadline": true} and the sockets its request opened are shut
down, which unblocks the library. The protocol loop, the threads, the deadlines and the
socket bookkeeping are pyproto.py's, shared with the other Python adapters.
"""
import platform
import sys
import time

import requests
import urllib3

from pyproto import (Adapter, Run, duration_ms, header_dict, http_request_body, serve,
                     tls_ca)

NAME = "python-requests"


class RequestsRun(Run):
    """One request with a fresh requests.Session."""

    def execute(self):
        s = self.spec
        kwargs = {"headers": header_dict(s.get("headers")), "stream": True}
        kind, payload = http_request_body(s)
        if kind == "form":  # multipart/form-data, as FormData would send it
            kwargs["files"] = {k: (None, v) for k, v in payload.items()}
        elif kind == "data":
            kwargs["data"] = payload
        if s.get("timeout") is not None:
            kwargs["timeout"] = duration_ms(s["timeout"]) / 1000.0
        if s.get("redirect") == "manual":
            kwargs["allow_redirects"] = False
        method = s.get("method") or "GET"
        stream = bool(s.get("stream"))
        chunk_size = s.get("chunk_size")

        session = requests.Session()
        # The harness is on loopback: no proxy from the environment (nor .netrc).
        session.trust_env = False
        # The harness's CA, as requests documents it (verify=CA_BUNDLE); verification on.
        session.verify = tls_ca() or True
        response = None
        self.t0 = time.monotonic()
        try:
            try:
                response = session.request(method, s["url"], **kwargs)
            except Exception as err:  # noqa: BLE001 (recorded as the client's failure)
                self.library_failed(err, requests.exceptions.RequestException)
                return
            self.http_response(response.status_code, response.reason,
                               response.headers.items(), response.url)
            try:
                if stream:
                    self.read_stream(response, chunk_size)
                else:
                    response.content  # reads the body as requests does for stream=False
                    self.set(responseText=response.text)
            except Exception as err:  # noqa: BLE001
                self.library_failed(err, requests.exceptions.RequestException)
                return
            self.event("done")
        finally:
            if response is not None:
                response.close()
            session.close()

    def read_stream(self, response, chunk_size):
        body = self.http_body(True, response.encoding)
        try:
            for chunk in response.iter_content(chunk_size=chunk_size):
                body.piece(chunk)
        finally:
            # responseText as response.text gives it, from what was read so far.
            response._content = body.data()
            response._content_consumed = True
            body.finish(response.text)


def lacks(action, spec):
    if spec.get("redirect") == "error":
        return "requests cannot treat a redirect as an error (redirect: error)"
    return None


def main():
    serve(Adapter(
        name=NAME, version=requests.__version__,
        implementation="requests %s (urllib3 %s) on %s %s" % (
            requests.__version__, urllib3.__version__,
            platform.python_implementation(), platform.python_version()),
        capabilities=["http", "steps"], run_class=RequestsRun, lacks=lacks,
        details={"python": sys.executable, "urllib3": urllib3.__version__}))


if __name__ == "__main__":
    main()
