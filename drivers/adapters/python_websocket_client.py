#!/usr/bin/python3
"""python_websocket_client.py — the adapter for Python `websocket-client` (the `websocket`
module; docs/adapters.md). Capability: websocket.

    /usr/bin/python3 drivers/adapters/python_websocket_client.py

Uses Debian's python3-websocket; run it with /usr/bin/python3.

The library is synchronous and has no events; the adapter maps what it does onto the
WebSocket observations the browsers give (docs/adapters.md, websocket):

    ws = websocket.WebSocket(enable_multithread=True)
    ws.connect(url, subprotocols=protocols)        # "open" {protocol, extensions}
    reader thread: ws.recv_data_frame(True)        # "message" text / binary; a close frame:
                                                   #   "close" {code, reason, wasClean: true}
    script thread: ws.send(text) / ws.send_binary(bytes) / ws.send_close(code, reason)

- `open`: protocol is ws.getsubprotocol(), extensions the response's
  Sec-WebSocket-Extensions header (the library negotiates none and checks none).
- A text frame whose payload is not UTF-8, or a protocol error the library raises
  (WebSocketProtocolException, WebSocketPayloadException): "error", then "close" 1006
  wasClean false, as a browser fails the connection.
- A failed handshake (WebSocketBadStatusException, a refused connection, a bad header):
  "error", then "close" 1006, no "open".
- The connection lost without a close frame (WebSocketConnectionClosedException, a
  socket error): "close" 1006 wasClean false.
- A close frame from the server: the library answers it with its own send_close() (always
  code 1000, whatever was received — its behaviour, recorded by the server's journal);
  "close" carries the received code (1005 when the frame had none) and reason.
- Script steps: `close: true` is the library's send_close() with its defaults (code
  1000), not a close frame without a code as a browser's close() sends; an invalid code
  is what the library refuses (ValueError outside 0–65535) — a browser refuses more.
  A step that raises is the "exception" and ends the run.
- binary_type: only arraybuffer (binary messages are bytes); blob is unsupported.

The run ends at the "close" event, or at the deadline (its socket is shut down).
"""
import platform
import sys
import threading
import time

import websocket
from websocket import ABNF

from pyproto import (Adapter, CannotDo, Run, close_payload_fields, do_close_args, do_send_data,
                     error_info, serve, ws_lacks, ws_close_request, ws_protocols,
                     ws_step_messages, ws_steps, duration_ms, tls_ca)

NAME = "python-websocket-client"
PROTOCOL_ERRORS = (websocket.WebSocketProtocolException, websocket.WebSocketPayloadException,
                   UnicodeDecodeError)


class WSClientRun(Run):
    do_verbs = ("send", "close")
    signals_ready = True  # the WebSocket object exists before connect(): do may act on it

    def perform(self, verb, do, failed):
        """A script's do step on the WebSocket object, from any thread (the library's
        enable_multithread): ws.send(DATA) / send_binary, ws.send_close(status, reason)."""
        ws = self.ws
        if verb == "send":
            data = do_send_data(do)
            ws.send() if data is None else ws.send(data)
        elif verb == "close":
            code, reason = do_close_args(do)
            args = {}
            if code is not None:
                args["status"] = code
            if reason is not None:
                args["reason"] = reason.encode("utf-8")
            ws.send_close(**args)
            self.set(readyState=2)
        else:
            raise CannotDo("websocket-client cannot %s" % verb)

    def execute(self):
        s = self.spec
        self.cond = threading.Condition()
        self.messages = 0
        self.closed = False
        self.finished = threading.Event()
        # wss: the harness's CA as the library documents it (sslopt ca_certs)
        sslopt = {"ca_certs": tls_ca()} if tls_ca() else None
        ws = websocket.WebSocket(enable_multithread=True, sslopt=sslopt)
        self.ws = ws
        self.ws_connecting(s["url"])
        self.object_ready()
        self.t0 = time.monotonic()
        try:
            ws.connect(s["url"], subprotocols=ws_protocols(s))
        except websocket.WebSocketAddressException as err:
            self.set(exception=error_info(err))  # as a browser's constructor throws
            return
        except Exception as err:  # noqa: BLE001 - the handshake failed: the client's failure
            if self.frozen:
                return
            self.ws_handshake_failed()
            log_failure(self, err)
            return
        headers = ws.getheaders() or {}
        self.ws_opened(ws.getsubprotocol(), headers.get("sec-websocket-extensions", ""))
        threading.Thread(target=self.script, name="script-%s" % self.id, daemon=True).start()
        try:
            self.read()
        finally:
            with self.cond:
                self.closed = True
                self.cond.notify_all()
            try:
                ws.shutdown()
            except Exception:  # noqa: BLE001 - closing anyway
                pass

    def read(self):
        ws = self.ws
        while not self.finished.is_set():
            try:
                opcode, frame = ws.recv_data_frame(True)
            except PROTOCOL_ERRORS as err:
                log_failure(self, err)
                self.ws_closed(1006, "", False, error=True)
                return
            except Exception as err:  # noqa: BLE001 - the connection is gone
                log_failure(self, err)
                self.ws_closed(1006, "", False)
                return
            if opcode == ABNF.OPCODE_TEXT:
                try:
                    text = frame.data.decode("utf-8") if isinstance(frame.data, bytes) else frame.data
                except UnicodeDecodeError as err:
                    log_failure(self, err)
                    self.ws_closed(1006, "", False, error=True)
                    return
                self.ws_message(text)
                self.count_message()
            elif opcode == ABNF.OPCODE_BINARY:
                self.ws_message(bytes(frame.data))
                self.count_message()
            elif opcode == ABNF.OPCODE_CLOSE:
                code, reason = close_payload_fields(frame.data)
                self.ws_closed(code, reason, True)
                return

    def count_message(self):
        with self.cond:
            self.messages += 1
            self.cond.notify_all()

    def script(self):
        ws = self.ws
        try:
            for step in ws_steps(self.spec):
                if self.frozen or self.closed:
                    return
                if step.get("wait") is not None:
                    time.sleep(duration_ms(step["wait"]) / 1000.0)
                if step.get("wait_messages") is not None:
                    n = int(step["wait_messages"])
                    with self.cond:
                        self.cond.wait_for(lambda: self.messages >= n or self.closed or self.frozen)
                if self.frozen or self.closed:
                    return
                try:
                    for message in ws_step_messages(step):
                        if isinstance(message, str):
                            ws.send(message)
                        else:
                            ws.send_binary(message)
                    close = ws_close_request(step)
                    if close is not None:
                        code, reason = close
                        args = {}
                        if code is not None:
                            args["status"] = code
                        if reason is not None:
                            args["reason"] = reason.encode("utf-8")
                        ws.send_close(**args)
                        self.set(readyState=2)
                except Exception as err:  # noqa: BLE001 - the library refused the step
                    if self.frozen or self.closed:
                        return
                    self.set(exception=error_info(err))
                    self.end_now()
                    return
        except Exception as err:  # noqa: BLE001 - the adapter's own failure
            self.failure = err
            self.end_now()

    def end_now(self):
        """The run ends here (a step raised): record nothing more, drop the connection."""
        with self.lock:
            self.frozen = True
        self.finished.set()
        self.cancel()


def log_failure(run, err):
    from pyproto import log
    log("%s: run %s: %s: %s" % (NAME, run.id, type(err).__name__, err))


def main():
    serve(Adapter(
        name=NAME, version=websocket.__version__,
        implementation="websocket-client %s on %s %s" % (
            websocket.__version__, platform.python_implementation(), platform.python_version()),
        capabilities=["websocket", "steps"], run_class=WSClientRun, lacks=ws_lacks,
        details={"python": sys.executable}))


if __name__ == "__main__":
    main()
