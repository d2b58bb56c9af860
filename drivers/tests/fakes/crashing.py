"""An adapter that crashes in the middle of the run of one scenario (--on ID)."""
import os
import sys

import fakelib

ON = fakelib.on_scenario(sys.argv)


def run(msg):
    if msg["scenario"] == ON:
        print("fake-crashing: about to crash in the middle of %s" % ON)
        sys.stderr.flush()
        os._exit(3)
    return fakelib.conforming(msg)


if __name__ == "__main__":
    sys.exit(fakelib.serve("fake-crashing", run))
