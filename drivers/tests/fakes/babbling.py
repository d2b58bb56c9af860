"""An adapter that writes a line that is not JSON to stdout during one scenario (--on ID)."""
import sys

import fakelib

ON = fakelib.on_scenario(sys.argv)


def run(msg):
    if msg["scenario"] == ON:
        fakelib.write_raw("Listening on http://localhost:9999 (debug build)")
        return None
    return fakelib.conforming(msg)


if __name__ == "__main__":
    sys.exit(fakelib.serve("fake-babbling", run))
