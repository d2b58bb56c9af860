"""Comet Harness drivers: the pytest plugin, the grader and the reports.

Modules:
    plugin        pytest hooks: collection of scenario files, one item per scenario x client
    server        the `harness` binary: `check --json`, `serve` and its control API
    adapters      client adapter processes (the adapter protocol) and the client registry
    prepare       the client part made ready for an adapter (URLs, templates, durations)
    grader        pure grading of observations and the journal against `expect`
    expectations  known failures per client (xfail)
    report        results.json, summary.md, report.html
"""
