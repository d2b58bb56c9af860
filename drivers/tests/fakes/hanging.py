"""An adapter that never answers the run of one scenario (--on ID), nor anything after."""
import sys
import time

import fakelib

ON = fakelib.on_scenario(sys.argv)


def run(msg):
    if msg["scenario"] == ON:
        print("fake-hanging: hanging in %s" % ON)
        while True:
            time.sleep(60)
    return fakelib.conforming(msg)


if __name__ == "__main__":
    sys.exit(fakelib.serve("fake-hanging", run))
