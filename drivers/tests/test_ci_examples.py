"""The CI examples run: docs/ci/github-actions.yml and docs/ci/gitlab-ci.yml are parsed
and the command lines they contain (GitHub's `run:`, GitLab's `script:`) are run as the
CI would, shard jobs first (each matrix value, each CI_NODE_INDEX), then the job that
merges, so the examples cannot rot.

What differs from CI: the package installation lines (apt-get, before_script) are left
out (the machine has the packages); the commands run in a scratch folder whose Makefile,
drivers/, scenarios/, harness/, scripts/ and grid/ are links to this repository, with a few test
scenarios (drivers/tests/scenarios) and the fake clients (drivers/tests/fakes), given to
make as SCENARIOS= and extra CONFORMANCE_ARGS; GitHub's ${{ }} expressions and GitLab's
variables are given the values the CI would.
"""
import json
import os
import re
import shlex
import shutil
import subprocess

import pytest
import yaml

from helpers import FAKE_CLIENTS, ROOT, SCENARIOS

CI = os.path.join(ROOT, "docs", "ci")
LINKS = ("Makefile", "drivers", "scenarios", "harness", "scripts", "grid")
EXTRA = "--clients-file %s --client fake-conforming --progress 0" % os.path.relpath(
    FAKE_CLIENTS, ROOT)


@pytest.fixture
def scratch(tmp_path, harness_bin):
    for name in LINKS:
        os.symlink(os.path.join(ROOT, name), str(tmp_path / name))
    shutil.copytree(SCENARIOS, str(tmp_path / "small"))
    return tmp_path


def small(command, harness_bin):
    """A make command line of the examples, on the small scenarios and the fake clients."""
    if not re.match(r"^make (conformance|merge)\b", command):
        return command
    extra = EXTRA
    m = re.search(r'CONFORMANCE_ARGS="([^"]*)"', command)
    if m:
        extra += " " + m.group(1)
        command = command[:m.start()] + command[m.end():]
    if command.startswith("make conformance"):
        command += " SCENARIOS=small CONFORMANCE_ARGS=%s" % shlex.quote(extra)
    return command + " BUILD=%s" % shlex.quote(os.path.dirname(harness_bin))


def run(lines, cwd, env, harness_bin):
    for line in lines:
        if line.startswith("apt-get "):
            continue  # the machine has the packages
        command = small(line, harness_bin)
        done = subprocess.run(["sh", "-ec", command], cwd=str(cwd), env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, "%s\n%s\n%s" % (command, done.stdout[-3000:],
                                                     done.stderr[-3000:])


def merged_results(cwd):
    with open(os.path.join(str(cwd), "results", "results.json"), encoding="utf-8") as f:
        doc = json.load(f)
    return {(r["id"], r["client"]): r["outcome"] for r in doc["results"]}, doc


EXPECTED = {("http.basic.get", "fake-conforming"): "pass",
            ("http.headers.custom", "fake-conforming"): "pass",
            ("http.headers.should", "fake-conforming"): "non-strict",
            ("http.status.not-found", "fake-conforming"): "pass",
            ("http.template.query", "fake-conforming"): "pass",
            ("http.timeout.read", "fake-conforming"): "pass",
            ("sse.basic.open", "fake-conforming"): "unsupported"}


def expressions(text, values):
    """GitHub's ${{ expr }} replaced by values[expr] (an unknown one fails the test)."""
    def sub(m):
        assert m.group(1) in values, "no value for ${{ %s }}" % m.group(1)
        return str(values[m.group(1)])
    return re.sub(r"\$\{\{\s*([^}]+?)\s*\}\}", sub, text)


def test_github_actions(scratch, harness_bin):
    with open(os.path.join(CI, "github-actions.yml"), encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    jobs = doc["jobs"]
    shards = jobs["shard"]["strategy"]["matrix"]["shard"]
    assert len(shards) >= 2
    assert jobs["report"]["needs"] == "shard" and jobs["report"]["if"] == "always()"
    summary = scratch / "step-summary.md"
    env = dict(os.environ, GITHUB_STEP_SUMMARY=str(summary))
    for k in shards:
        values = {"matrix.shard": k, "strategy.job-total": len(shards)}
        steps = jobs["shard"]["steps"]
        run([expressions(s["run"], values) for s in steps if "run" in s], scratch, env,
            harness_bin)
        uploads = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact")]
        assert uploads and uploads[0]["if"] == "always()"
        assert expressions(uploads[0]["with"]["path"], values) == "results-%d" % k
        assert (scratch / ("results-%d" % k) / "results.json").exists()
    values = {"github.server_url": "https://github.example", "github.repository": "o/r",
              "github.run_id": 1}
    run([expressions(s["run"], values) for s in jobs["report"]["steps"] if "run" in s],
        scratch, env, harness_bin)
    outcomes, doc = merged_results(scratch)
    assert outcomes == EXPECTED
    assert sorted(s["index"] for s in doc["shards"]) == list(range(1, len(shards) + 1))
    assert (scratch / "results" / "junit.xml").exists()
    assert summary.read_text().startswith("## Comet Harness conformance: 7 runs")
    assert "https://github.example/o/r/actions/runs/1" in summary.read_text()
    posts = [s for s in jobs["report"]["steps"] if "sticky-pull-request-comment" in s.get("uses", "")]
    assert posts and posts[0]["with"]["path"] == "results/summary.md"


def test_gitlab_ci(scratch, harness_bin):
    with open(os.path.join(CI, "gitlab-ci.yml"), encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    job, report = doc["conformance"], doc["report"]
    total = job["parallel"]
    assert total >= 2
    for k in range(1, total + 1):
        env = dict(os.environ, CI_NODE_INDEX=str(k), CI_NODE_TOTAL=str(total))
        run(job["script"], scratch, env, harness_bin)
        junit = job["artifacts"]["reports"]["junit"].replace("$CI_NODE_INDEX", str(k))
        assert (scratch / junit).exists()
        assert 'file="' in (scratch / junit).read_text()  # --junit-locations: GitLab links them
    assert report["needs"] == ["conformance"] and report["when"] == "always"
    env = dict(os.environ, CI_JOB_URL="https://gitlab.example/o/r/-/jobs/1")
    run(report["script"], scratch, env, harness_bin)
    outcomes, doc = merged_results(scratch)
    assert outcomes == EXPECTED
    assert len(doc["shards"]) == total
    assert "https://gitlab.example/o/r/-/jobs/1/artifacts/file/results/report.html" in \
        (scratch / "results" / "summary.md").read_text()
    assert report["artifacts"]["paths"] == ["results/"]
