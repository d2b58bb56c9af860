"""Shared fixtures of the drivers' tests (/usr/bin/python3 -m pytest drivers/tests).

The plugin tests run pytest on scenario files in a temporary folder (pytester), with
the fake clients of drivers/tests/fakes/ and the harness binary: $HARNESS_BIN, else
build/harness. Without a binary they are skipped (set HARNESS_BIN to point at one).
"""
import os
import sys

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
DRIVERS = os.path.dirname(TESTS)
ROOT = os.path.dirname(DRIVERS)
if DRIVERS not in sys.path:
    sys.path.insert(0, DRIVERS)

pytest_plugins = ["pytester"]


def harness_binary():
    """The harness binary the tests use, or None."""
    binary = os.environ.get("HARNESS_BIN")
    if binary:
        return os.path.abspath(binary)
    binary = os.path.join(ROOT, "build", "harness")
    return binary if os.path.exists(binary) else None


@pytest.fixture(scope="session")
def harness_bin():
    binary = harness_binary()
    if binary is None:
        pytest.skip("the harness is not built (make harness, or set HARNESS_BIN)")
    if not os.path.exists(binary):
        pytest.fail("HARNESS_BIN=%s does not exist" % binary)
    return binary
