"""The state of one pytest process (so of one xdist worker, or the controller): the options
as read, the client registry, the scenario files validated so far, the harness server and
the adapter pool, and the records gathered for the reports. Kept in config.stash[STATE].

Scenario files are the *.yaml / *.yml files under a scenario root: the catalogue
(--scenarios, default scenarios/) and every folder named on the command line that does not
hold the catalogue (`pytest ... /path/mine` runs the scenarios under /path/mine), plus the
YAML files named on the command line. A root is validated with one `harness check --json`
the first time one of its files is collected.
"""
import itertools
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import pytest

from . import expectations as expectations_mod
from . import shard as shard_mod
from .clients import (MANIFEST, AdapterPool, ROOT, RegistryError, add_versioned,
                      load_registry)
from .server import HarnessServer, check, default_binary, default_roots

YAML = (".yaml", ".yml")


@dataclass
class SessionState:
    """Everything the plugin keeps for one pytest process (in config.stash)."""
    harness_bin: str
    scenarios_dir: str
    results_dir: str
    clients: List[str]
    registry: dict
    default: List[str]
    grace_s: float
    worker: str
    explicit_files: set
    explicit_dirs: List[str] = field(default_factory=list)
    check_cache: Dict[str, tuple] = field(default_factory=dict)
    roots_checked: set = field(default_factory=set)
    server: Optional[HarnessServer] = None
    pool: Optional[AdapterPool] = None
    expectations: Dict[str, dict] = field(default_factory=dict)
    markers: set = field(default_factory=set)
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))
    records: List[dict] = field(default_factory=list)
    clients_info: Dict[str, dict] = field(default_factory=dict)
    harness_version: Optional[str] = None
    collect_errors: List[dict] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    shard: Optional[tuple] = None          # (K, N) of --shard K/N
    durations: dict = field(default_factory=dict)  # {(id, client): s} of --shard-durations
    shard_meta: Optional[dict] = None      # this shard's part (results.json "shard")
    # the registry files (drivers/clients.yaml, --clients-file): `harness check --clients`
    # rejects a `when: {client: NAME}` naming none of their clients
    registry_files: List[str] = field(default_factory=lambda: [MANIFEST])
    runahead: Optional[object] = None      # runahead.RunAhead: the runs done ahead
    server_lock: threading.Lock = field(default_factory=threading.Lock)

    # -- collection ----------------------------------------------------------------------

    @property
    def roots(self):
        """The scenario roots, the deepest first."""
        return sorted(set([self.scenarios_dir] + self.explicit_dirs), key=len, reverse=True)

    def root_of(self, path):
        path = os.path.abspath(str(path))
        for root in self.roots:
            if path.startswith(root.rstrip(os.sep) + os.sep):
                return root
        return None

    def is_scenario_file(self, path):
        path = os.path.abspath(str(path))
        return path in self.explicit_files or self.root_of(path) is not None

    def checked(self, path):
        """(scenarios, errors) of one file, from `harness check --json`."""
        path = os.path.abspath(str(path))
        root = self.root_of(path)
        if path not in self.check_cache and root is not None and root not in self.roots_checked:
            self.roots_checked.add(root)
            self._fill(check(self.harness_bin, [root], clients=self.registry_files))
        if path not in self.check_cache:
            self._fill(check(self.harness_bin, [path], clients=self.registry_files), also=[path])
        return self.check_cache[path]

    def _fill(self, doc, also=()):
        for f in also:
            self.check_cache.setdefault(f, ([], []))
        for s in doc.get("scenarios") or []:
            f = os.path.abspath(s.get("file", ""))
            self.check_cache.setdefault(f, ([], []))[0].append(s)
        for e in doc.get("errors") or []:
            f = os.path.abspath(e.get("file", ""))
            self.check_cache.setdefault(f, ([], []))[1].append(e)

    def known_ids(self):
        """The ids of every scenario of the catalogue and of the folders and files named
        on the command line (selected or not): what a known-failure entry may name."""
        for root in self.roots:
            if os.path.isdir(root) and root not in self.roots_checked:
                self.roots_checked.add(root)
                self._fill(check(self.harness_bin, [root], clients=self.registry_files))
        for path in self.explicit_files:
            if path not in self.check_cache:
                self._fill(check(self.harness_bin, [path], clients=self.registry_files),
                           also=[path])
        return {s.get("id") for scenarios, _ in self.check_cache.values() for s in scenarios}

    # -- running -------------------------------------------------------------------------

    def get_server(self):
        with self.server_lock:  # runs ahead ask from their threads
            return self._get_server()

    def _get_server(self):
        if self.server is not None and not self.server.alive():
            self.server = None  # it died: the next test gets a new one
        if self.server is None:
            # the server reads scenario files only under its roots (docs/control-api.md,
            # Security): the folders of every scenario this run collected, besides the default
            roots = default_roots() + list(self.roots) + [os.path.dirname(os.path.abspath(p))
                                                          for p in self.explicit_files]
            self.server = HarnessServer(self.harness_bin, roots=roots)
            self.harness_version = self.server.version
            # every adapter trusts this server's CA (a new server: new adapters)
            self.pool.set_tls_ca(self.server.ca)
        return self.server

    def new_instance_id(self, client):
        safe = "".join(c if c.isalnum() else "-" for c in client.lower())
        return "%s-%d-%s-%s" % (self.worker, next(self.counter), safe, secrets.token_hex(3))

    def close(self):
        if self.runahead is not None:
            self.runahead.close()
        if self.pool is not None:
            self.pool.close()
        if self.server is not None:
            self.server.stop()
            self.server = None


STATE = pytest.StashKey[SessionState]()


def state_of(config):
    return config.stash[STATE]


def _holds(folder, path):
    """folder is path or one of its ancestors."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def from_config(config):
    """The session state from the options; pytest.UsageError when they are not usable."""
    invocation = str(config.invocation_params.dir)
    clients_file = config.getoption("clients_file")
    if clients_file:
        clients_file = os.path.join(invocation, clients_file)
        if not os.path.exists(clients_file):
            raise pytest.UsageError("--clients-file %s does not exist" % clients_file)
    try:
        registry, default = load_registry(clients_file)
    except RegistryError as err:
        raise pytest.UsageError(str(err)) from None
    clients = []
    for value in config.getoption("client") or []:
        clients += [c.strip() for c in value.split(",") if c.strip()]
    clients = list(dict.fromkeys(clients)) or default
    try:  # NAME@VERSION: a Node library client at another version, installed with npm
        if not config.getoption("list_clients"):
            add_versioned(registry, clients)
    except RegistryError as err:
        raise pytest.UsageError(str(err)) from None
    unknown = [c for c in clients if c not in registry]
    if unknown and not config.getoption("list_clients"):
        raise pytest.UsageError("unknown client(s): %s (known: %s)" % (
            ", ".join(unknown), ", ".join(sorted(registry))))
    scenarios_dir = os.path.abspath(os.path.join(invocation, config.getoption("scenarios")))
    # config.args is not set under --help / --version: the arguments as given then
    args = getattr(config, "args", None) or list(config.invocation_params.args)
    files, dirs = set(), []
    for arg in args:
        arg = str(arg)
        if arg.startswith("-"):
            continue
        path = os.path.abspath(os.path.join(invocation, arg.split("::")[0]))
        if path.endswith(YAML) and os.path.isfile(path):
            files.add(path)
        elif os.path.isdir(path) and not _holds(path, scenarios_dir):
            dirs.append(path)  # a folder of scenarios of its own (not one holding the catalogue)
    workerinput = getattr(config, "workerinput", None)
    state = SessionState(
        harness_bin=os.path.abspath(os.path.join(invocation, config.getoption("harness_bin")
                                                 or default_binary())),
        scenarios_dir=scenarios_dir,
        results_dir=os.path.abspath(os.path.join(invocation, config.getoption("results"))),
        clients=clients, registry=registry, default=default,
        grace_s=config.getoption("adapter_grace"),
        worker=workerinput["workerid"] if workerinput else "w",
        explicit_files=files, explicit_dirs=dirs,
        registry_files=[MANIFEST] + ([clients_file] if clients_file else []))
    expectations_dir = os.path.join(invocation, config.getoption("expectations")
                                    or expectations_mod.DIR)
    try:
        for name in clients:
            if name in registry:
                state.expectations[name] = expectations_mod.load(name, expectations_dir)
    except expectations_mod.ExpectationsError as err:
        raise pytest.UsageError(str(err)) from None
    try:
        if config.getoption("shard"):
            state.shard = shard_mod.parse(config.getoption("shard"))
        durations = config.getoption("shard_durations")
        if durations and not os.path.exists(os.path.join(invocation, durations)):
            raise shard_mod.ShardError("--shard-durations %s does not exist" % durations)
        state.durations = shard_mod.load_durations(
            os.path.join(invocation, durations or shard_mod.DURATIONS_DEFAULT))
    except shard_mod.ShardError as err:
        raise pytest.UsageError(str(err)) from None
    state.pool = AdapterPool(registry, ROOT, state.grace_s)
    return state
