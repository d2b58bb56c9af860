"""Comet Harness drivers: the pytest plugin, the grader and the reports.

Modules:
    plugin        the pytest hooks and options (the entry point: -p comet_harness.plugin)
    session       the state of one pytest process: options, registry, scenario roots, server
    items         collection of scenario files, one item per scenario x client, the run
    outcome       a pytest report -> the Comet outcome, its message and record
    recorder      records, the reports at the end, the terminal summary
    progress      the progress line per client
    junit         the JUnit XML: classnames, properties, one suite per client
    clients       the client registry (drivers/clients.yaml) and the adapter processes
    server        the `harness` binary: `check --json`, `serve` and its control API
    prepare       the client part made ready for an adapter (URLs, templates, durations)
    grader        pure grading of observations and the journal against `expect`
    expectations  known failures per client (xfail)
    report        results.json, summary.md, report.html
"""
