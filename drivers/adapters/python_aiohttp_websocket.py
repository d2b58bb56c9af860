#!/usr/bin/python3
"""python_aiohttp_websocket.py — the adapter for the WebSocket client of Python `aiohttp`
(docs/adapters.md). Capability: websocket.

    /usr/bin/python3 drivers/adapters/python_aiohttp_websocket.py

Uses Debian's python3-aiohttp (its ClientSession.ws_connect); run it with /usr/bin/python3.
Each run has an asyncio event loop of its own, in its own thread (pyproto.AsyncRun).

The library has no events; the adapter maps what it does onto the WebSocket observations
the browsers give (docs/adapters.md, websocket):

    async with aiohttp.ClientSession(trust_env=False) as session:
        ws = await session.ws_connect(url, protocols=protocols)   # library defaults otherwise
                                        # (autoclose, autoping, no compression offered)
        "open" {protocol: ws.protocol, extensions: the response's Sec-WebSocket-Extensions}
        reader: msg = await ws.receive()    # TEXT, BINARY: "message"; CLOSE, CLOSED, ERROR
        script task: await ws.send_str(text) / ws.send_bytes(data) / ws.close(code=, message=)

- A close frame received (WSMsgType.CLOSE): the library answers it (autoclose, always with
  code 1000: its behaviour, recorded by the server's journal); "close" {code: msg.data,
  reason: msg.extra, wasClean: true}; a frame without a code is code 0 in aiohttp, 1005 in
  the observations (the API's "no status").
- The library failed the connection (WSMsgType.ERROR: a protocol error, invalid UTF-8, a
  message over max_msg_size…; it sends a close frame with its error code): "error", then
  "close" {code: ws.close_code, wasClean: false}, as a browser fails the connection.
- The connection dropped without a close frame (WSMsgType.CLOSED): "close" {code:
  ws.close_code — what the library says, 1006 when it found no close frame —, wasClean:
  false}.
- A close of the script's (`close` step), from a task of its own while the reader task
  waits in ws.receive() (the way a full-duplex application uses the library): "close"
  {code: ws.close_code, reason: "", wasClean: true when it is a code}. aiohttp keeps only
  the code of the server's close frame, never its reason (no accessor:
  https://github.com/aio-libs/aiohttp/issues/7682); and before 3.9, with a receive()
  pending, close() sends its frame and drops the connection without waiting for the
  server's, leaving ws.close_code None (https://github.com/aio-libs/aiohttp/issues/7306):
  "close" 1006, wasClean false — no close frame was received.
- A failed handshake (WSServerHandshakeError, a refused connection, any ClientError):
  "error", then "close" 1006, no "open". An invalid URL (InvalidURL) is the "exception"
  (as a browser's constructor throws).
- `close: true` is ws.close() with its defaults (code 1000); a step the library refuses
  (a code that does not fit two bytes) raises: the "exception", which ends the run.
- binary_type: only arraybuffer (binary messages are bytes); blob is unsupported.

The run ends at the "close" event, or at the deadline (its task is cancelled).
"""
import asyncio
import platform
import sys
import time

import aiohttp

from pyproto import (Adapter, AsyncRun, CannotDo, do_close_args, do_send_data, duration_ms,
                     error_info, log, serve, ssl_context, ws_lacks, ws_close_request,
                     ws_protocols, ws_step_messages, ws_steps)

NAME = "python-aiohttp-websocket"
NO_STATUS = 1005      # the close event's code for a close frame without one
ABNORMAL = 1006       # aiohttp's WSCloseCode.ABNORMAL_CLOSURE: no close frame


class AiohttpWebSocketRun(AsyncRun):
    do_verbs = ("send", "close")

    async def aperform(self, verb, do):
        """A script's do step: ws.send_str(DATA), ws.close(code=, message=). Before the
        handshake there is no ClientWebSocketResponse to ask."""
        ws = getattr(self, "ws", None)
        if ws is None:
            raise CannotDo("aiohttp has no WebSocket object before its handshake completes:"
                           " a %s() while CONNECTING cannot be asked of it" % verb)
        if verb == "send":
            data = do_send_data(do)
            await (ws.send_str() if data is None else ws.send_str(data))
            return
        code, reason = do_close_args(do)
        args = {}
        if code is not None:
            args["code"] = code
        if reason is not None:
            args["message"] = reason.encode("utf-8")
        self.set(readyState=2)
        self.closing = True
        try:
            await ws.close(**args)
        finally:
            self.close_done.set()

    async def aexecute(self):
        s = self.spec
        self.messages = 0
        self.changed = asyncio.Event()
        self.closed = False
        self.closing = False   # the script asked for the close
        self.close_done = asyncio.Event()  # ... and ws.close() has returned
        self.response_headers = {}
        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(self.on_response)
        self.ws_connecting(s["url"])
        self.t0 = time.monotonic()
        async with aiohttp.ClientSession(trust_env=False, trace_configs=[trace]) as session:
            try:
                # wss: the harness's CA added to an ssl context (aiohttp's ssl=)
                ws = await session.ws_connect(s["url"], protocols=ws_protocols(s) or (),
                                              ssl=ssl_context())
            except aiohttp.InvalidURL as err:
                self.set(exception=error_info(err))
                return
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - the handshake failed: the client's failure
                log("%s: run %s: %s: %s" % (NAME, self.id, type(err).__name__, err))
                self.ws_handshake_failed()
                return
            self.ws = ws
            self.ws_opened(ws.protocol, self.response_headers.get("Sec-WebSocket-Extensions", ""))
            await self.ws_drive()

    async def on_response(self, _session, _ctx, params):
        self.response_headers = params.response.headers

    async def read(self):
        ws = self.ws
        try:
            while True:
                msg = await ws.receive()
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    self.ws_message(msg.data)
                    self.messages += 1
                    self.changed.set()
                elif msg.type == aiohttp.WSMsgType.CLOSE:
                    self.ws_closed(msg.data or NO_STATUS, msg.extra, True)
                    return
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    log("%s: run %s: %s: %s" % (NAME, self.id, type(msg.data).__name__, msg.data))
                    self.ws_closed(ws.close_code or ABNORMAL, "", False, error=True)
                    return
                elif msg.type == aiohttp.WSMsgType.CLOSED:
                    code = ws.close_code
                    code = ABNORMAL if code is None else code or NO_STATUS
                    # clean: the script's close, answered by the server's close frame
                    self.ws_closed(code, "", self.closing and code != ABNORMAL)
                    return
                elif msg.type == aiohttp.WSMsgType.CLOSING:
                    # the script's ws.close() has begun: it reads the connection until
                    # the server's close frame; receive() again once it is over (CLOSED)
                    await self.close_done.wait()
        finally:
            self.closed = True
            self.changed.set()

    async def script(self):
        ws = self.ws
        for step in ws_steps(self.spec):
            if self.frozen or self.closed:
                return
            if step.get("wait") is not None:
                await asyncio.sleep(duration_ms(step["wait"]) / 1000.0)
            if step.get("wait_messages") is not None:
                n = int(step["wait_messages"])
                while self.messages < n and not self.closed:
                    self.changed.clear()
                    await self.changed.wait()
            if self.frozen or self.closed:
                return
            try:
                for message in ws_step_messages(step):
                    if isinstance(message, str):
                        await ws.send_str(message)
                    else:
                        await ws.send_bytes(message)
                close = ws_close_request(step)
                if close is not None:
                    code, reason = close
                    args = {}
                    if code is not None:
                        args["code"] = code
                    if reason is not None:
                        args["message"] = reason.encode("utf-8")
                    self.set(readyState=2)
                    self.closing = True
                    try:
                        await ws.close(**args)
                    finally:
                        self.close_done.set()
            except asyncio.CancelledError:
                raise
            except ConnectionResetError:
                return  # "Cannot write to closing transport": the reader records the close
            except Exception as err:  # noqa: BLE001 - the library refused the step
                if self.closed:
                    return  # the connection is gone: the reader records the close
                self.set(exception=error_info(err))
                with self.lock:
                    self.frozen = True
                return


def main():
    serve(Adapter(
        name=NAME, version=aiohttp.__version__,
        implementation="aiohttp %s (ClientSession.ws_connect) on %s %s" % (
            aiohttp.__version__, platform.python_implementation(), platform.python_version()),
        capabilities=["websocket", "steps"], run_class=AiohttpWebSocketRun, lacks=ws_lacks,
        details={"python": sys.executable}))


if __name__ == "__main__":
    main()
