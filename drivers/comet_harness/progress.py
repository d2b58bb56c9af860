"""A progress line per client while the run goes on: runs done of the client's total,
failures so far (fail, xpass, error) and an estimate of the time left.

    progress: chromium 120/213, 2 failing, about 1m 40s left

The controller (the only process under xdist that sees every result) counts the items
collected per client and each item's end (its teardown report). It writes a line for each
client every --progress seconds (default 30; 0 turns the lines off), and a last one when
a client's runs are all done. The time left of a client is its runs not done, at the pace
its runs have gone so far (the clients run side by side, each file's scenario against
every client in turn).
"""
import re
import time
from collections import Counter, OrderedDict

from . import report

_CLIENT = re.compile(r"\[([^\[\]]+)\]$")


def client_of(nodeid):
    m = _CLIENT.search(nodeid)
    return m.group(1) if m else None


def duration_text(seconds):
    seconds = int(round(max(0.0, seconds)))
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm %02ds" % divmod(seconds, 60)
    h, rest = divmod(seconds, 3600)
    return "%dh %02dm" % (h, rest // 60)


class Progress:
    def __init__(self, write, every_s, clock=time.monotonic):
        self.write = write          # a function writing one line
        self.every_s = every_s
        self.clock = clock
        self.total = OrderedDict()  # client → items collected
        self.done = Counter()
        self.failing = Counter()
        self.started = None
        self.last = None
        self.seen = set()

    def collected(self, nodeids):
        """Items collected (by one xdist worker: each sees the same list)."""
        if self.total:
            return
        for nodeid in nodeids:
            client = client_of(nodeid)
            if client is not None:
                self.total[client] = self.total.get(client, 0) + 1
        self.started = self.last = self.clock()

    def result(self, nodeid, when, outcome=None):
        """A report: its Comet outcome (when it decided one), and the end of the item at
        teardown."""
        client = client_of(nodeid)
        if client not in self.total:
            return
        if outcome in report.FAILING and nodeid not in self.seen:
            self.seen.add(nodeid)
            self.failing[client] += 1
        if when != "teardown":
            return
        self.done[client] += 1
        now = self.clock()
        if self.done[client] == self.total[client]:
            self.write(self.line(client, now))
        elif self.every_s > 0 and now - self.last >= self.every_s:
            self.last = now
            for c in self.total:
                if 0 < self.done[c] < self.total[c] or self.done[c] == 0:
                    self.write(self.line(c, now))

    def line(self, client, now):
        done, total = self.done[client], self.total[client]
        text = "progress: %s %d/%d, %d failing" % (client, done, total, self.failing[client])
        elapsed = now - (self.started or now)
        if done >= total:
            return text + ", done in " + duration_text(elapsed)
        if done == 0 or elapsed <= 0:
            return text + ", time left unknown"
        return text + ", about %s left" % duration_text(elapsed / done * (total - done))
