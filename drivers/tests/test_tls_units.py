"""The TLS facts that more than one file must spell alike (docs/adapters.md, "TLS"): the
environment variable that carries the CA, the browsers-only loopback name of the
`insecure` origin, and the origin names (the server's enum, the protocol schema, the
driver). Each is written once where it is implemented; these tests fail if a copy drifts.
"""
import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "drivers", "adapters"))


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def test_the_ca_variable_is_one_name():
    from comet_harness.clients import TLS_CA_ENV
    import pyproto
    assert pyproto.TLS_CA_ENV == TLS_CA_ENV == "COMET_TLS_CA"
    assert "export const TLS_CA_ENV = '%s';" % TLS_CA_ENV in read("drivers/adapters/tls-trust.mjs")
    assert "process.env.%s" % TLS_CA_ENV in read("drivers/adapters/puppeteer.mjs")
    assert TLS_CA_ENV in read("drivers/schema/adapter-protocol.schema.json")


def test_the_insecure_host_is_one_name():
    import pyproto
    host = re.search(r'#define ORIGIN_INSECURE_HOST "([^"]+)"',
                     read("harness/src/origins.h")).group(1)
    assert pyproto.INSECURE_HOST == host
    assert "export const INSECURE_HOST = '%s';" % host in read("drivers/adapters/puppeteer.mjs")


@pytest.fixture(scope="module")
def keys():
    binary = os.environ.get("HARNESS_BIN") or os.path.join(ROOT, "build", "harness")
    if not os.path.exists(binary):
        pytest.skip("the harness is not built")
    out = subprocess.run([binary, "keys", "--json"], capture_output=True, check=True,
                         timeout=30).stdout
    return json.loads(out)["tables"]


def test_origin_names_agree(keys):
    names = keys["client.xhr"]["keys"]["origin"]["values"]
    for table in keys:
        if table.startswith("client.") and "origin" in keys[table]["keys"]:
            assert keys[table]["keys"]["origin"]["values"] == names, table
    schema = json.loads(read("drivers/schema/adapter-protocol.schema.json"))
    assert list(schema["$defs"]["run"]["properties"]["origins"]["properties"]) == names
    enums = re.findall(r'"origin": \{\s*"enum": \[([^\]]*)\]',
                       read("drivers/schema/adapter-protocol.schema.json"))
    assert enums and all(json.loads("[%s]" % e) == names for e in enums)
    # the Node adapters' rule on origins without a page names only these
    rule = re.search(r"const NOT_CROSS = /\^\(([^)]*)\)\$/", read("drivers/adapters/protocol.mjs"))
    for alt in rule.group(1).split("|"):
        assert any(re.fullmatch(alt, n) for n in names), alt


def test_site_values_agree(keys):
    assert keys["scenario"]["keys"]["site"]["values"] == ["same", "cross"]
    assert keys["scenario"]["keys"]["tls"]["type"] == "boolean"
    assert keys["route"]["keys"]["tls"]["type"] == "boolean"
