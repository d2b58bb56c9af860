"""A small EventSource in Python, written from the HTML standard's processing model and
parser, used only to test the catalogue: conforming, it must pass the SSE scenarios that
apply to a non-browser client; each MUTANT breaks one rule and must fail exactly the
scenarios aimed at that rule.

    /usr/bin/python3 drivers/tests/fakes/eventsource_py.py [--mutant NAME]

Mutants:
    ignore-cr            only LF ends a line (CR and CRLF streams go wrong)
    no-last-event-id     never sends Last-Event-ID when it reconnects
    reconnect-after-204  treats 204 No Content as a reason to reconnect, not to stop
    reconnect-early      reconnects after a tenth of the reconnection time (retry)

https://html.spec.whatwg.org/multipage/server-sent-events.html
"""
import http.client
import socket
import sys
import threading
import time
import urllib.parse

import fakelib

MUTANT = sys.argv[sys.argv.index("--mutant") + 1] if "--mutant" in sys.argv else None


class Run:
    def __init__(self, spec, deadline_ms):
        self.spec = spec
        self.url = spec["url"]
        self.t0 = time.monotonic()
        self.end = self.t0 + deadline_ms / 1000.0
        self.events = []
        self.ready_state = 0
        self.last_event_id = ""
        self.retry_ms = 3000
        self.messages = 0
        self.closed = False
        close_after = spec.get("close_after") or {}
        self.close_messages = close_after.get("messages")
        self.close_events = close_after.get("events")
        self.close_ms = close_after.get("ms")
        self.types = {"message"} | set(spec.get("event_types") or [])

    def event(self, kind, **fields):
        if self.closed:
            return
        self.events.append(dict(type=kind, t=round((time.monotonic() - self.t0) * 1000, 3),
                                **fields))
        if kind == "message":
            self.messages += 1
        if (self.close_messages and self.messages >= self.close_messages) or \
                (self.close_events and len(self.events) >= self.close_events):
            self.closed = True  # close()
            self.ready_state = 2

    def origin(self):
        u = urllib.parse.urlsplit(self.url)
        return "%s://%s" % (u.scheme, u.netloc)

    # -- the parser -------------------------------------------------------------------
    def lines(self, resp):
        """Yield decoded lines as the bytes arrive (CR, LF, CRLF end lines)."""
        decoder_buf = b""
        text = ""
        first = True
        pending_cr = False
        while not self.closed and time.monotonic() < self.end:
            try:
                chunk = resp.read1(65536)
            except (socket.timeout, OSError, http.client.HTTPException):
                return
            if not chunk:
                if text:
                    pass  # an unterminated last line is discarded with the event
                return
            decoder_buf += chunk
            # decode what is complete; keep a partial UTF-8 sequence for the next chunk
            for cut in range(len(decoder_buf), max(len(decoder_buf) - 4, -1), -1):
                try:
                    piece = decoder_buf[:cut].decode("utf-8")
                    decoder_buf = decoder_buf[cut:]
                    break
                except UnicodeDecodeError as err:
                    if err.reason != "unexpected end of data":
                        piece = decoder_buf.decode("utf-8", "replace")
                        decoder_buf = b""
                        break
            else:
                piece = ""
            if first and piece:
                if piece.startswith("\ufeff"):
                    piece = piece[1:]
                first = False
            for ch in piece:
                if pending_cr:
                    pending_cr = False
                    if ch == "\n":
                        continue
                if ch == "\n":
                    yield text
                    text = ""
                elif ch == "\r" and MUTANT != "ignore-cr":
                    yield text
                    text = ""
                    pending_cr = True
                else:
                    text += ch

    def stream(self, resp):
        data, etype, id_buf = "", "", self.last_event_id
        for line in self.lines(resp):
            if line == "":
                self.last_event_id = id_buf
                if data == "":
                    etype = ""
                    continue
                if data.endswith("\n"):
                    data = data[:-1]
                name = etype or "message"
                if name in self.types:
                    self.event("message", event=name, data=data, lastEventId=self.last_event_id,
                               origin=self.origin())
                data, etype = "", ""
                if self.closed:
                    return
                continue
            if line.startswith(":"):
                continue
            if ":" in line:
                field, value = line.split(":", 1)
                if value.startswith(" "):
                    value = value[1:]
            else:
                field, value = line, ""
            if field == "event":
                etype = value
            elif field == "data":
                data += value + "\n"
            elif field == "id":
                if "\0" not in value:
                    id_buf = value
            elif field == "retry":
                if value and value.isdigit() and value.isascii():
                    self.retry_ms = int(value)

    # -- the processing model ----------------------------------------------------------
    def connect(self):
        u = urllib.parse.urlsplit(self.url)
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_event_id and MUTANT != "no-last-event-id":
            headers["Last-Event-ID"] = self.last_event_id
        target = u.path + ("?" + u.query if u.query else "")
        for _ in range(10):  # redirects
            # a quiet stream is not a broken one: reads wait until the run's deadline
            conn = http.client.HTTPConnection(u.hostname, u.port,
                                              timeout=max(0.5, self.end - time.monotonic()))
            try:
                conn.request("GET", target, headers=headers)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException):
                conn.close()
                return None, None
            if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
                loc = urllib.parse.urljoin(self.url, resp.getheader("Location"))
                resp.read()
                conn.close()
                self.url = loc
                u = urllib.parse.urlsplit(loc)
                target = u.path + ("?" + u.query if u.query else "")
                continue
            return conn, resp
        return None, None

    def run(self):
        while not self.closed and time.monotonic() < self.end:
            conn, resp = self.connect()
            if resp is None:
                self.reestablish()
                continue
            ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
            if resp.status == 204 and MUTANT == "reconnect-after-204":
                conn.close()
                self.reestablish()
                continue
            if resp.status != 200 or ctype != "text/event-stream":
                conn.close()
                self.ready_state = 2
                self.event("error", readyState=2)
                return
            self.ready_state = 1
            self.event("open", readyState=1)
            self.stream(resp)
            conn.close()
            if self.closed:
                return
            self.reestablish()

    def reestablish(self):
        if self.closed:
            return
        self.ready_state = 0
        self.event("error", readyState=0)
        delay = self.retry_ms / 1000.0 / (10 if MUTANT == "reconnect-early" else 1)
        time.sleep(min(delay, max(0.0, self.end - time.monotonic())))


def run(msg):
    spec = msg["client"]["eventsource"]
    r = Run(spec, msg.get("deadline_ms", 10000))
    done = threading.Event()

    def go():
        try:
            r.run()
        finally:
            done.set()

    threading.Thread(target=go, daemon=True).start()
    finished = done.wait(max(0.0, r.end - time.monotonic()) + 0.05)
    obs = {"events": list(r.events), "readyState": r.ready_state, "url": spec["url"],
           # no DOM events: what a page would show of them is not observable here
           "unobserved": ["bubbles", "cancelable", "initialReadyState", "interface"]}
    if not finished:
        obs["deadline"] = True
    return {"type": "result", "observations": obs}


if __name__ == "__main__":
    name = "eventsource-py" + ("-" + MUTANT if MUTANT else "")
    sys.exit(fakelib.serve(name, run, capabilities=("eventsource",)))
