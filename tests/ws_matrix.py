#!/usr/bin/python3
"""Which malformed server frames each WebSocket client rejects as RFC 6455 requires.

    /usr/bin/python3 tests/ws_matrix.py [HARNESS_BIN]

Prints a Markdown table: for each case and client, what the client did (raised, closed
with a code, or accepted the frame) and the close code the journal recorded from it.
RFC 6455 wants the connection failed; with a close frame, 1002 for protocol errors and
1007 for invalid UTF-8 (sections 5.2, 5.4, 5.5, 7.4, 8.1)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import ROOT, Server  # noqa: E402
from test_websocket import (MALFORMED, client_close_code, run_malformed,  # noqa: E402
                            run_malformed_node)

WANT = {"invalid-utf8-text": 1007, "close-reason-invalid-utf8": 1007}


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "harness")
    server = Server(binary, ["--quiet"])
    clients = ["websocket-client", "websockets", "node-ws"]
    print("| case | " + " | ".join(clients) + " |")
    print("|---|" + "---|" * len(clients))
    try:
        for case in sorted(MALFORMED):
            cells = []
            for client in clients:
                if client == "node-ws":
                    got, w = run_malformed_node(server, MALFORMED[case])
                    seen = "close %s" % [e.get("code") for e in got["events"]
                                         if e["type"] == "close"]
                else:
                    seen, w = run_malformed(server, MALFORMED[case], client)
                code = client_close_code(w)
                want = WANT.get(case, 1002)
                ok = code == want or (code is None and w["end"] == "client_gone"
                                      and "accepted" not in (seen or ""))
                cells.append("%s %s (%s; journal close %s)" % ("✅" if ok else "❌", w["end"],
                                                               seen, code))
            print("| %s | %s |" % (case, " | ".join(cells)))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
