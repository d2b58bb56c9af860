#!/usr/bin/python3
"""python_websockets.py — the adapter for Python `websockets` (docs/adapters.md), its
asyncio client. Capability: websocket.

    /usr/bin/python3 drivers/adapters/python_websockets.py

Uses Debian's python3-websockets (10.4); run it with /usr/bin/python3. Each run has an
asyncio event loop of its own, in its own thread (pyproto.AsyncRun).

The library has no events; the adapter maps what it does onto the WebSocket observations
the browsers give (docs/adapters.md, websocket):

    ws = await websockets.connect(url, subprotocols=protocols)   # library defaults otherwise
                                                     # (permessage-deflate offered, pings)
    "open" {protocol: ws.subprotocol, extensions: the response's Sec-WebSocket-Extensions}
    reader: await ws.recv()                          # "message" (str: text, bytes: binary)
    ... ConnectionClosed                             # "close" {code, reason, wasClean}
    script task: await ws.send(str | bytes), await ws.close(code, reason)

- "close": code and reason are ws.close_code / ws.close_reason (the received close frame's;
  1005 when it had no code, 1006 when none was received); wasClean is true when a close
  frame was both sent and received.
- When the library itself failed the connection (it sent a close frame with an error code:
  1002 protocol error, 1007 invalid UTF-8, 1009 too big…, without receiving one), an
  "error" precedes the "close", as a browser fails the connection. A connection dropped
  without a close frame gives "close" 1006 only.
- A failed handshake (InvalidStatusCode, InvalidHandshake, a refused connection, the open
  timeout): "error", then "close" 1006, no "open". An invalid URI is the "exception" (as a
  browser's constructor throws).
- `close: true` is ws.close() with its defaults (code 1000); a code the library refuses
  raises (ProtocolError): the "exception", which ends the run.
- binary_type: only arraybuffer (binary messages are bytes); blob is unsupported.

The run ends at the "close" event, or at the deadline (its task is cancelled).
"""
import asyncio
import platform
import sys
import time

import websockets
import websockets.exceptions

from pyproto import (Adapter, AsyncRun, CannotDo, do_close_args, do_send_data, duration_ms,
                     error_info, log, serve, ws_lacks, ws_close_request, ws_protocols,
                     ws_step_messages, ws_steps, ssl_context)

NAME = "python-websockets"


class WebsocketsRun(AsyncRun):
    do_verbs = ("send", "close")

    async def aperform(self, verb, do):
        """A script's do step: ws.send(DATA), ws.close(code, reason). Before the handshake
        there is no connection object to ask (websockets.connect() returns it open)."""
        ws = getattr(self, "ws", None)
        if ws is None:
            raise CannotDo("websockets has no connection object before its handshake completes:"
                           " a %s() while CONNECTING cannot be asked of it" % verb)
        if verb == "send":
            data = do_send_data(do)
            await (ws.send() if data is None else ws.send(data))
        else:
            code, reason = do_close_args(do)
            args = {k: v for k, v in (("code", code), ("reason", reason)) if v is not None}
            self.set(readyState=2)
            await ws.close(**args)

    async def aexecute(self):
        s = self.spec
        self.messages = 0
        self.changed = asyncio.Event()
        self.closed = False
        self.ws_connecting(s["url"])
        self.t0 = time.monotonic()
        try:
            # wss: an ssl context with the harness's CA (websockets refuses one for ws:)
            tls = {"ssl": ssl_context()} if s["url"].lower().startswith("wss:") else {}
            ws = await websockets.connect(s["url"], subprotocols=ws_protocols(s), **tls)
        except websockets.exceptions.InvalidURI as err:
            self.set(exception=error_info(err))
            return
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - the handshake failed: the client's failure
            log("%s: run %s: %s: %s" % (NAME, self.id, type(err).__name__, err))
            self.ws_handshake_failed()
            return
        self.ws = ws
        self.ws_opened(ws.subprotocol, ws.response_headers.get("Sec-WebSocket-Extensions", ""))
        try:
            await self.ws_drive()
        finally:
            ws.transport.abort()  # the connection is no longer needed

    async def read(self):
        ws = self.ws
        try:
            while True:
                self.ws_message(await ws.recv())
                self.messages += 1
                self.changed.set()
        except websockets.exceptions.ConnectionClosed as err:
            await ws.wait_closed()
            failed = ws.close_rcvd is None and ws.close_sent is not None \
                and ws.close_sent.code != 1000
            self.ws_closed(ws.close_code, ws.close_reason,
                           ws.close_rcvd is not None and ws.close_sent is not None, failed)
            log("%s: run %s: %s" % (NAME, self.id, err))
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
                    await ws.send(message)
                close = ws_close_request(step)
                if close is not None:
                    code, reason = close
                    args = {}
                    if code is not None:
                        args["code"] = code
                    if reason is not None:
                        args["reason"] = reason
                    self.set(readyState=2)
                    await ws.close(**args)
            except asyncio.CancelledError:
                raise
            except websockets.exceptions.ConnectionClosed:
                return  # the reader records the close
            except Exception as err:  # noqa: BLE001 - the library refused the step
                self.set(exception=error_info(err))
                with self.lock:
                    self.frozen = True
                return


def main():
    serve(Adapter(
        name=NAME, version=websockets.__version__,
        implementation="websockets %s (asyncio client) on %s %s" % (
            websockets.__version__, platform.python_implementation(),
            platform.python_version()),
        capabilities=["websocket", "steps"], run_class=WebsocketsRun, lacks=ws_lacks,
        details={"python": sys.executable}))


if __name__ == "__main__":
    main()
