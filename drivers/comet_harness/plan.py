"""The plan of a run: which pytest process carries out which scenario × client runs, and in
which order, so that every process stays busy to the end.

Each run has a cost (shard.py's: its duration in a previous results.json, else its
client's median, else 1; a run the client's capabilities cannot do almost nothing). The
runs of each client are spread over the N processes (xdist workers) by longest processing
time first, each to the process that has the least of that client so far (then the least
in all): the runs of one client go on a few at a time in a process (its `parallel`), so
each process must get its share of every client, not only of the total. Each process takes
its runs costliest first: the long ones start at once, the short ones fill the gaps.

Under xdist the controller's scheduler (PlannedScheduling, for `--dist load`, the default)
sends each worker its whole part at once, and every worker computes the same plan from the
same inputs (the collection, the registry, the durations file), so it knows which runs it
will be asked for and can run them ahead (runahead.py). Without xdist the one process
takes every run, costliest first. A worker that was not given the plan (another --dist, a
worker started again after a crash) runs what it is given one by one.
"""
import os
import re

from . import prepare
from . import shard as shard_mod

_NAME = re.compile(r"^(.*)\[([^\[\]]*)\]$")
PLAN_KEY = "comet_plan"   # in an xdist worker's workerinput: the controller sends the plan


def supported(registry, scenario, client):
    """Whether the client's registry capabilities can do the scenario's client part (a
    part that does not prepare counts as supported: its run says what is wrong)."""
    spec = registry.get(client)
    try:
        return spec is None or \
            prepare.action_of(scenario.get("client") or {}) in spec.capabilities
    except prepare.PrepareError:
        return True


def runs_of(state, nodeids, rootdir):
    """(nodeid, scenario id, client, supported) of each node id `FILE::ID[CLIENT]` (one
    that is not a scenario run: (nodeid, None, None, True))."""
    out = []
    for nodeid in nodeids:
        path, _, name = nodeid.rpartition("::")
        m = _NAME.match(name)
        if not path or m is None:
            out.append((nodeid, None, None, True))
            continue
        sid, client = m.group(1), m.group(2)
        scenarios, _ = state.checked(os.path.normpath(os.path.join(str(rootdir), path)))
        scenario = next((s for s in scenarios if s.get("id") == sid), None)
        out.append((nodeid, sid, client,
                    scenario is None or supported(state.registry, scenario, client)))
    return out


def assign(runs, durations, n):
    """n lists of indices into runs: each process's runs, costliest first."""
    cost = shard_mod.costs(runs, durations)
    by_client = {}
    for i, run in enumerate(runs):
        by_client.setdefault(run[2] or "", []).append(i)
    parts = [[] for _ in range(n)]
    total = [0.0] * n
    for client in sorted(by_client):
        mine = [0.0] * n
        for i in sorted(by_client[client], key=lambda i: (-cost[runs[i][0]], i)):
            k = min(range(n), key=lambda j: (mine[j], total[j], j))
            parts[k].append(i)
            mine[k] += cost[runs[i][0]]
            total[k] += cost[runs[i][0]]
    return [sorted(part, key=lambda i: (-cost[runs[i][0]], i)) for part in parts]


def part_of(state, nodeids, rootdir, index, count):
    """The indices (into nodeids) of process `index` of `count`, in its order."""
    parts = assign(runs_of(state, nodeids, rootdir), state.durations, count)
    return parts[index] if 0 <= index < count else []


def worker_number(gateway_id):
    """gw3 → 3 (None for another name)."""
    m = re.match(r"^gw(\d+)$", str(gateway_id))
    return int(m.group(1)) if m else None


def make_scheduler(config, log, state):
    """An xdist scheduler that gives each worker its part of the plan at once."""
    from xdist.scheduler import LoadScheduling

    class PlannedScheduling(LoadScheduling):
        """LoadScheduling whose first distribution is the plan (the one a worker computes
        for itself); what a crashed worker leaves goes to its replacement as usual."""

        def schedule(self):
            if self.collection is not None or not self.collection_is_completed:
                return super().schedule()
            if not self._check_nodes_have_same_collection():
                self.log("**Different tests collected, aborting run**")
                return None
            self.collection = list(self.node2collection.values())[0]
            if not self.collection:
                return None
            parts = assign(runs_of(state, self.collection, config.rootpath), state.durations,
                           self.numnodes)
            nodes = {worker_number(node.gateway.id): node for node in self.nodes}
            for k, part in enumerate(parts):
                node = nodes.get(k)
                if node is None:
                    self.pending.extend(part)
                elif part:
                    self.node2pending[node].extend(part)
                    node.send_runtest_some(part)
            for node in self.nodes:
                if self.pending:
                    self.check_schedule(node)
                else:
                    node.shutdown()
            return None

    return PlannedScheduling(config, log)
