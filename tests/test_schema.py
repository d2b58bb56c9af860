"""`harness schema`: the JSON Schema (draft 2020-12) of scenario files, generated from the
loader's key tables (issue 18). Held to the loader: every catalogue scenario and documented
example validates, every fixture `harness check` rejects for a shape reason the schema
rejects too, and the schema's tables are the key tables."""
import glob
import json
import os
import re
import subprocess

import jsonschema
import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BAD = sorted(glob.glob(os.path.join(ROOT, "tests/fixtures/bad/*.yaml")))

# Fixtures `harness check` rejects for what a JSON Schema cannot see: YAML itself (syntax,
# tabs, aliases, duplicate or non-scalar keys), or values only the loader can judge
# (regexes, templates, base64, files, route and channel names, path prefixes).
NOT_SHAPE = {
    "when-client-unknown.yaml": "a name of the client registry (harness check --clients)",
    "alias.yaml": "YAML: aliases are expanded by a YAML parser",
    "bad-base64.yaml": "the base64 alphabet holds, the padding does not",
    "bad-regex.yaml": "a regex of the dialect",
    "duplicate-key.yaml": "YAML: a parser keeps one of the values",
    "duplicate-route-name.yaml": "unique names",
    "eof-no-newline.yaml": "YAML syntax",
    "escaping-body-file.yaml": "a file outside the folder",
    "expect-unknown-route.yaml": "a route name that exists",
    "missing-body-file.yaml": "a file that exists",
    "non-scalar-key.yaml": "YAML: a non-scalar key",
    "non-scalar-key-client.yaml": "YAML: a non-scalar key",
    "regex-dialect.yaml": "a regex of the dialect",
    "steps-bad-reference.yaml": "step ids that exist, each used once, named before use",
    "steps-unknown-field.yaml": "the fields of the events a step produces",
    "steps-unproduced-event.yaml": "the events a step produces",
    "syntax-error.yaml": "YAML syntax",
    "tab-indent.yaml": "YAML syntax",
    "template-multiline.yaml": "a template's placeholders",
    "unknown-channel.yaml": "a channel name that exists",
    "unknown-placeholder.yaml": "a template's placeholders",
}


class CoreLoader(yaml.SafeLoader):
    """YAML 1.2 core schema typing, as `harness` (yamldoc) and yaml-language-server read
    files: only true/false are booleans (not yes/on), no timestamps."""


CoreLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in rs if tag == "tag:yaml.org,2002:null"]
    for ch, rs in yaml.SafeLoader.yaml_implicit_resolvers.items()}
CoreLoader.add_implicit_resolver("tag:yaml.org,2002:bool",
                                 re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
CoreLoader.add_implicit_resolver("tag:yaml.org,2002:int",
                                 re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
                                 list("-+0123456789"))
CoreLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+.0123456789"))


def _int(loader, node):
    text = loader.construct_scalar(node)
    return int(text, 0) if text[:2] in ("0o", "0x") else int(text)


CoreLoader.add_constructor("tag:yaml.org,2002:int", _int)


@pytest.fixture(scope="module")
def schema(harness_bin):
    proc = subprocess.run([harness_bin, "schema"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    jsonschema.Draft202012Validator.check_schema(doc)
    return doc


@pytest.fixture(scope="module")
def validator(schema):
    return jsonschema.Draft202012Validator(schema)


def errors_of(validator, text):
    return [e.message for e in validator.iter_errors(yaml.load(text, Loader=CoreLoader))]


def test_schema_is_draft_2020_12(schema):
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schema_tables_are_the_key_tables(harness_bin, schema):
    """Generated, not written: every table of `harness keys --json` is a $defs entry with
    exactly its keys, and nothing else is allowed in it."""
    tables = json.loads(subprocess.run([harness_bin, "keys", "--json"], capture_output=True,
                                       text=True).stdout)["tables"]
    for table_id, table in tables.items():
        d = schema["$defs"][table_id]
        assert sorted(d["properties"]) == sorted(table["keys"]), table_id
        assert d["additionalProperties"] is False


def catalogue():
    files = []
    for d in ("scenarios", "drivers/tests/scenarios"):
        files += glob.glob(os.path.join(ROOT, d, "**", "*.yaml"), recursive=True)
    return sorted(files)


def test_catalogue_validates(validator):
    files = catalogue()
    assert len(files) > 50
    bad = {}
    for path in files:
        errs = errors_of(validator, open(path).read())
        if errs:
            bad[os.path.relpath(path, ROOT)] = errs[:3]
    assert bad == {}


def test_documented_examples_validate(validator):
    text = open(os.path.join(ROOT, "docs/scenarios.md")).read()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if re.search(r"^id: ", b, re.M)]
    assert blocks
    for block in blocks:
        assert errors_of(validator, block) == [], block


@pytest.mark.parametrize("path", BAD, ids=[os.path.basename(p) for p in BAD])
def test_shape_errors_are_schema_errors(validator, path):
    name = os.path.basename(path)
    if name in NOT_SHAPE:
        pytest.skip("not a shape error: " + NOT_SHAPE[name])
    assert errors_of(validator, open(path).read()), "the schema accepts %s" % name


def test_not_shape_list_names_fixtures():
    names = {os.path.basename(p) for p in BAD}
    assert set(NOT_SHAPE) <= names


@pytest.mark.parametrize("text, ok", [
    ("500ms", True), ("1.5s", True), (".5s", True), ("2min", True), ("2m", True),
    (" 20 ms ", True), ("0.25s", True), ("500", True), ("1.", True),
    ("fast", False), ("-5ms", False), ("1e3", False), ("1.5.s", False), ("2h", False),
    (".", False), ("5 m s", False), ("ms", False), ("5 seconds", False)])
def test_duration_pattern_is_the_loaders_grammar(harness_bin, schema, tmp_path, text, ok):
    """The schema's duration pattern (LD_DURATION_PATTERN) and ld_duration agree."""
    pattern = schema["$defs"]["response"]["properties"]["delay"]["anyOf"][1]["pattern"]
    assert bool(re.search(pattern, text)) == ok
    path = tmp_path / "d.yaml"
    path.write_text("id: d.d\ntitle: t\nspec: https://x.org/\nclient:\n"
                    "  xhr: {url: /x, timeout: %s}\n" % json.dumps(text))
    proc = subprocess.run([harness_bin, "check", str(path)], capture_output=True, text=True)
    assert (proc.returncode == 0) == ok, proc.stderr


def test_expect_client_follows_the_action(validator):
    head = "id: a.b\ntitle: t\nspec: https://x.org/\n"
    assert errors_of(validator, head + "client: {xhr: {url: /}}\nexpect: {client: {responseXML: null}}\n") == []
    assert errors_of(validator, head + "client: {http: {url: /}}\nexpect: {client: {responseXML: null}}\n")


def test_docs_show_the_modeline():
    text = open(os.path.join(ROOT, "docs/scenarios.md")).read()
    assert "# yaml-language-server: $schema=" in text
    assert "harness schema" in text
