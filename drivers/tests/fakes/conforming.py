"""A conforming fake client: does what the run asks with http.client, reports it truly."""
import sys

import fakelib

if __name__ == "__main__":
    sys.exit(fakelib.serve("fake-conforming", fakelib.conforming))
