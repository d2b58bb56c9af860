"""The scenario's client part made ready for an adapter, and templates in `expect`.

Pure functions, no I/O. What an adapter receives (docs/adapters.md, "Driver → adapter"):
exactly one action key; every `url` absolute (a relative URL resolved against the
instance on the origin named by `origin`; WebSocket URLs with the ws: scheme); the
`{{origin.*}}`, `{{base}}` and `{{instance}}` placeholders expanded.

The origins are the instance's own (the control API's answer to loading, `origins`): its
scenario's `tls` and `site` keys choose the scheme and host names of main, cross and alt
(docs/tls.md); main_tls, cert_expired… are there too. The page a browser runs in is on the
instance's main origin (page_of). Durations are already
milliseconds: `harness check --json` gives every duration of a scenario as a number (one
grammar, in the binary; docs/scenarios.md), so nothing here parses them.
"""
import copy
import json
import re
import urllib.parse

DEFAULT_DEADLINE_MS = 10000
PAGE_PATH = "/_harness/page"
# An instance's journal wait, under its prefix on the scenario ports (harness/src/jwait.h)
INSTANCE_WAIT_PATH = "/_harness/wait"
ACTIONS = ("xhr", "fetch", "eventsource", "websocket", "jsonp", "image", "http")

# Placeholders the driver can expand (the others depend on a request: the server's).
_PLACEHOLDER = re.compile(r"\{\{\{\{|\{\{\s*([a-z_.]+)\s*\}\}")
_ABSOLUTE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


class PrepareError(ValueError):
    """The client part cannot be prepared (a scenario the validator should have refused)."""


class NotServed(PrepareError):
    """The scenario needs an origin this server does not serve (serve --cert without
    --ca-key serves no cert_* origin): the run is unsupported, not an error."""


def origins_of(instance, origins):
    """The instance's origins (its tls and site keys applied), else the server's."""
    mine = instance.get("origins") if isinstance(instance, dict) else None
    return {k: v.rstrip("/") for k, v in (mine or origins).items()}


def page_of(instance, origins):
    """The harness page on the instance's main origin: where a browser runs the action."""
    return origins_of(instance, origins)["main"] + PAGE_PATH


def template_context(origins, instance):
    """The values of the driver-side placeholders for one loaded instance.

    origins: {"main": "http://127.0.0.1:P", "cross": ..., "alt": ..., "main_tls": ...};
    instance: the control API's answer to loading ({"instance": ID, "base": "/s/ID",
    "origins": {...}, ...}).
    """
    ctx = {"origin." + name: value for name, value in origins_of(instance, origins).items()}
    ctx["instance"] = instance["instance"]
    ctx["base"] = instance.get("base") or "/s/" + instance["instance"]
    return ctx


def expand(value, ctx):
    """Expand placeholders in every string of value (dicts and lists recursively).

    `{{{{` is a literal `{{`; a placeholder not in ctx (a `{{request.*}}`, which only the
    server can expand) is left as written.
    """
    if isinstance(value, str):
        def sub(m):
            if m.group(0) == "{{{{":
                return "{{"
            return ctx.get(m.group(1), m.group(0))
        return _PLACEHOLDER.sub(sub, value)
    if isinstance(value, list):
        return [expand(v, ctx) for v in value]
    if isinstance(value, dict):
        return {k: expand(v, ctx) for k, v in value.items()}
    return value


def action_of(client):
    """The client part's action key (its capability): xhr, fetch, eventsource, ...; steps
    for a client script."""
    if isinstance(client, dict) and "steps" in client:
        return "steps"
    if not isinstance(client, dict) or len(client) != 1:
        raise PrepareError("the client part must have exactly one action key, not %r"
                           % (sorted(client) if isinstance(client, dict) else client,))
    return next(iter(client))


def absolute_url(url, action, origin_name, instance, origins):
    """Resolve a client URL against the instance prefix on one origin."""
    if not _ABSOLUTE.match(url):
        prefix = (instance.get("urls") or {}).get(origin_name)
        if not prefix:
            prefix = origins_of(instance, origins)[origin_name] + (instance.get("base") or "")
        elif re.match(r"^[a-z]+://[^/]+/?$", prefix):  # an origin only: add the prefix
            prefix = prefix.rstrip("/") + (instance.get("base") or "")
        prefix = prefix.rstrip("/")
        if url.startswith(("?", "#")) or url == "":
            url = prefix + "/" + url if url else prefix + "/"
        else:
            url = prefix + ("" if url.startswith("/") else "/") + url
    if action == "websocket":
        url = re.sub(r"^http(s?):", r"ws\1:", url)
    return url


def step_action(step):
    """The action key of a request step of a client script, or None (wait, wait_for, do)."""
    return next((k for k in step if k in ACTIONS), None) if isinstance(step, dict) else None


def needed_capabilities(client):
    """The capabilities a client part needs: its action; for a script, steps and the
    action of every request step."""
    action = action_of(client)
    if action != "steps":
        return [action]
    return ["steps"] + sorted({step_action(s) for s in client["steps"]} - {None})


def _prepare_action(action, body, instance, origins, where):
    """One request (a single action, or a request step of a script) made ready: its origin
    served, its URL absolute."""
    if not isinstance(body, dict):
        raise PrepareError("%s must be a mapping" % where)
    origin_name = body.get("origin", "main")
    served = origins_of(instance, origins)
    if origin_name not in served:
        raise NotServed("this server serves no %s origin (%s.origin; served: %s)"
                        % (origin_name, where, ", ".join(sorted(served))))
    missing = [n for n in _PLACEHOLDER.findall(json.dumps(body)) if n.startswith("origin.")]
    if missing:
        raise NotServed("this server serves no %s origin" % missing[0][len("origin."):])
    if "url" not in body:
        raise PrepareError("%s has no url" % where)
    body["url"] = absolute_url(str(body["url"]), action, origin_name, instance, origins)
    return body


def _prepare_script(client, instance, origins):
    """A client script: every request step's URL absolute, every journal wait given the
    URL of the instance's own journal wait (docs/control-api.md, "Waiting for the
    journal")."""
    ctx = template_context(origins, instance)
    body = expand(copy.deepcopy(client), ctx)
    for n, step in enumerate(body.get("steps") or []):
        action = step_action(step)
        if action:
            _prepare_action(action, step[action], instance, origins,
                            "client.steps[%d].%s" % (n + 1, action))
        journal = (step.get("wait_for") or {}).get("journal") if isinstance(step, dict) else None
        if isinstance(journal, dict):
            query = {"count": journal.get("count", 1)}
            if journal.get("route") is not None:
                query["route"] = journal["route"]
            # the instance's own wait on its main origin (the page's origin: no CORS, no
            # token): /s/ID/_harness/wait (harness/src/jwait.h)
            journal["url"] = absolute_url("%s?%s" % (INSTANCE_WAIT_PATH,
                                                     urllib.parse.urlencode(query)),
                                          "http", "main", instance, origins)
    deadline = body.get("deadline", DEFAULT_DEADLINE_MS)
    return "steps", body, deadline


def prepare_client(client, instance, origins):
    """The run message's `client` and `deadline_ms` for one loaded instance.

    Returns (action, prepared_client, deadline_ms). The input is not modified.
    """
    action = action_of(client)
    if action == "steps":
        return _prepare_script(client, instance, origins)
    ctx = template_context(origins, instance)
    body = expand(copy.deepcopy(client[action]) or {}, ctx)
    body = _prepare_action(action, body, instance, origins, "client.%s" % action)
    deadline = body.get("deadline", DEFAULT_DEADLINE_MS)
    return action, {action: body}, deadline


def expect_of(scenario, instance, origins):
    """The scenario's `expect` part with the driver-side placeholders expanded."""
    return expand(copy.deepcopy(scenario.get("expect") or {}), template_context(origins, instance))
