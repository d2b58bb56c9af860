"""Known failures per client: drivers/expectations/<client>.yaml.

A file maps scenario ids (or fnmatch patterns such as `sse.reconnect.*`) to the reason
the client fails them, with a link to the spec section or the bug:

    xhr.timeout.delayed-headers: https://crbug.com/123456 fires load after the timeout
    sse.reconnect.*:
      reason: does not send Last-Event-ID after a reconnection
      link: https://github.com/EventSource/eventsource/issues/1

A listed scenario that fails is *xfail* (does not fail the run); one that passes is
*xpass*, reported as a failure (strict), so that the list is kept up to date.
"""
import fnmatch
import os

import yaml

DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "expectations")


class ExpectationsError(ValueError):
    """An expectations file is not valid."""


def load(client, directory=DIR):
    """{pattern: reason} for one client (empty if it has no file)."""
    path = os.path.join(directory, client + ".yaml")
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        try:
            doc = yaml.safe_load(f) or {}
        except yaml.YAMLError as err:
            raise ExpectationsError("%s: %s" % (path, err)) from None
    if not isinstance(doc, dict):
        raise ExpectationsError("%s: expected a mapping of scenario id to reason" % path)
    out = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            reason = str(value.get("reason", "")).strip()
            link = str(value.get("link", "")).strip()
            value = (reason + (" " if reason and link else "") + link).strip()
        if not isinstance(value, str) or not value.strip():
            raise ExpectationsError("%s: %s needs a reason (with a spec or bug link)"
                                    % (path, key))
        out[str(key)] = value.strip()
    return out


def lookup(expectations, scenario_id):
    """The reason a scenario is expected to fail, or None (exact ids before patterns)."""
    if scenario_id in expectations:
        return expectations[scenario_id]
    for pattern, reason in expectations.items():
        if fnmatch.fnmatchcase(scenario_id, pattern):
            return reason
    return None


def stale(expectations, scenario_ids):
    """Entries that name no known scenario (to be removed from the file)."""
    ids = list(scenario_ids)
    return sorted(p for p in expectations
                  if p not in ids and not any(fnmatch.fnmatchcase(i, p) for i in ids))
