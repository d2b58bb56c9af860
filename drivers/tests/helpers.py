"""What several test modules share (imported as `helpers`; test modules import nothing
from each other): paths, and the verdicts the fake and real clients get on the test
scenarios of drivers/tests/scenarios/."""
import os

TESTS = os.path.dirname(os.path.abspath(__file__))
DRIVERS = os.path.dirname(TESTS)
ROOT = os.path.dirname(DRIVERS)
SCENARIOS = os.path.join(TESTS, "scenarios")
FAKE_CLIENTS = os.path.join(TESTS, "fakes", "clients.yaml")
JENKINS_XSD = os.path.join(DRIVERS, "schema", "junit-jenkins.xsd")

# What a conforming HTTP client gets on the test scenarios.
CONFORMING = {
    "http.basic.get": "pass",
    "http.headers.custom": "pass",
    "http.headers.should": "non-strict",
    "http.status.not-found": "pass",
    "http.template.query": "pass",
    "http.timeout.read": "pass",
    "sse.basic.open": "unsupported",
}
# The wrong client drops request headers and ignores timeouts: exactly these fail.
WRONG_FAILS = {"http.headers.custom", "http.timeout.read"}


def per_client(outcomes, client):
    """{(id, client): outcome} → {id: outcome} of one client."""
    return {sid: o for (sid, c), o in outcomes.items() if c == client}
