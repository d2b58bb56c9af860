#!/usr/bin/python3
"""python_aiohttp.py — the adapter for Python `aiohttp`'s client (docs/adapters.md).
Capability: http.

    /usr/bin/python3 drivers/adapters/python_aiohttp.py

Uses Debian's python3-aiohttp; run it with /usr/bin/python3.

Each run has an asyncio event loop of its own (in its own thread, so runs go on
concurrently) and makes one request with a fresh ClientSession, the way an application
would:

    async with aiohttp.ClientSession(trust_env=False, timeout=...) as session:
        async with session.request(method, url, headers=[...], data=...,
                                   allow_redirects=...) as response:
            await response.read()        # or: async for chunk in response.content.iter_any()

The "response" event marks the moment the headers arrived; with client.http.stream the
body is read with response.content.iter_any() (chunk_size None: each piece as it
arrives) or iter_chunked(chunk_size), one "chunk" event a piece.

Headers are passed as a list of pairs (aiohttp keeps a name given twice as two fields).
A form is sent as multipart/form-data (aiohttp.FormData would send plain fields
urlencoded; a MultipartWriter of form-data parts is what FormData sends in a browser).
`timeout` (ms) is aiohttp.ClientTimeout(sock_connect=t, sock_read=t): the connect and the
read timeout, as for requests. `redirect`: follow (allow_redirects=True), manual (False);
`error` is unsupported (aiohttp has no way to refuse a redirect: max_redirects=0 is no
limit).

An aiohttp.ClientError (ClientConnectorError, ServerTimeoutError, ClientPayloadError,
ServerDisconnectedError, TooManyRedirects…) or an asyncio.TimeoutError raised by the
library is the client's failure: an "error" event {name, message}; anything else it
raises is the "exception". At the deadline the run's task is cancelled (pyproto.AsyncRun).
"""
import asyncio
import platform
import sys
import time

import aiohttp
import multidict
import yarl

from pyproto import (Adapter, AsyncRun, charset_of, duration_ms, header_pairs,
                     http_request_body, serve, ssl_context)

NAME = "python-aiohttp"
LIBRARY_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


def form_body(fields):
    writer = aiohttp.MultipartWriter("form-data")
    for name, value in fields.items():
        part = writer.append(str(value), {"Content-Type": "text/plain; charset=utf-8"})
        part.set_content_disposition("form-data", name=str(name))
    return writer


class AiohttpRun(AsyncRun):
    async def aexecute(self):
        s = self.spec
        timeout = aiohttp.ClientTimeout(total=None)
        if s.get("timeout") is not None:
            t = duration_ms(s["timeout"]) / 1000.0
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=t, sock_read=t)
        kwargs = {"headers": header_pairs(s.get("headers")),
                  "allow_redirects": s.get("redirect") != "manual",
                  "ssl": ssl_context()}  # the harness's CA added; verification on
        kind, payload = http_request_body(s)
        if kind is not None:
            kwargs["data"] = form_body(payload) if kind == "form" else payload
        method = s.get("method") or "GET"
        self.t0 = time.monotonic()
        async with aiohttp.ClientSession(trust_env=False, timeout=timeout) as session:
            try:
                response = await session.request(method, s["url"], **kwargs)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 (recorded as the client's failure)
                self.library_failed(err, LIBRARY_ERRORS)
                return
            async with response:
                self.http_response(response.status, response.reason,
                                   response.headers.items(), response.url)
                body = self.http_body(bool(s.get("stream")),
                                      charset_of(response.headers.get("Content-Type")))
                try:
                    if body.stream:
                        size = s.get("chunk_size")
                        it = (response.content.iter_chunked(size) if size
                              else response.content.iter_any())
                        async for chunk in it:
                            body.piece(chunk)
                    else:
                        body.piece(await response.read())
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # noqa: BLE001
                    self.library_failed(err, LIBRARY_ERRORS)
                    return
                finally:
                    body.finish()
                self.event("done")


def lacks(action, spec):
    if spec.get("redirect") == "error":
        return "aiohttp cannot treat a redirect as an error (redirect: error)"
    return None


def main():
    serve(Adapter(
        name=NAME, version=aiohttp.__version__,
        implementation="aiohttp %s (multidict %s, yarl %s) on %s %s" % (
            aiohttp.__version__, multidict.__version__, yarl.__version__,
            platform.python_implementation(), platform.python_version()),
        capabilities=["http", "steps"], run_class=AiohttpRun, lacks=lacks,
        details={"python": sys.executable}))


if __name__ == "__main__":
    main()
