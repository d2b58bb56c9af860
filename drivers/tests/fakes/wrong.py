"""A deliberately wrong client: it drops the request headers it is asked to send and
ignores the timeout. Everything else it does right, so it must fail exactly the scenarios
that check request headers or a timeout, and pass the others."""
import sys

import fakelib


def run(msg):
    return {"type": "result",
            "observations": fakelib.http_run(msg["client"], drop_headers=True, ignore_timeout=True)}


if __name__ == "__main__":
    sys.exit(fakelib.serve("fake-wrong", run))
