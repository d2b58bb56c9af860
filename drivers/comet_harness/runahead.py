"""Run-ahead: the runs of the items this pytest process will run, carried out ahead of
pytest and several at once, so that a process is not idle while one run waits for its
scenario's timers.

pytest still takes the items one by one, in its order (items.py: the setup of an item takes
its run's outcome, or waits for it); a thread per run carries them out meanwhile, started
in that same order, as long as the run's client has a free slot (its `parallel` in
drivers/clients.yaml: how many of its runs may go on at once in one pytest process) and the
process has one (--parallel, all clients together). An item pytest runs that is not in the
plan (an xdist worker given another's items after a crash) is run in its setup, as without
run-ahead. Nothing starts before pytest asks for the first run (--collect-only runs none).
"""
import collections
import threading
import time
from dataclasses import dataclass
from typing import Optional

DEFAULT_LIMIT = 12   # runs at once in one pytest process, all clients together (--parallel)
CLOSE_WAIT_S = 30.0  # at the end, how long the runs still going on are waited for


@dataclass
class Done:
    """A run's outcome: what its setup raises (None: nothing) and how long it took."""
    error: Optional[BaseException]
    duration: float


def perform(item):
    """Carry out an item's run (item.carry_out) now, in this thread."""
    t0 = time.monotonic()
    try:
        item.carry_out()
        error = None
    except BaseException as exc:  # a skip, an error: setup raises it in pytest's thread
        error = exc
    return Done(error, time.monotonic() - t0)


class RunAhead:
    """The runs of `items` (in pytest's order), run ahead. parallel_of(client): the
    client's slots; limit: the process's."""

    def __init__(self, items, parallel_of, limit=DEFAULT_LIMIT):
        self.limit = max(1, int(limit))
        self.parallel_of = parallel_of
        self.planned = set()
        self.queues = collections.OrderedDict()   # client → deque of (position, item)
        for n, item in enumerate(items):
            self.planned.add(item.nodeid)
            self.queues.setdefault(item.client, collections.deque()).append((n, item))
        self.results = {}
        self.busy = collections.Counter()  # client → runs going on
        self.inflight = 0
        self.cond = threading.Condition()
        self.started = False
        self.closed = False
        self.peak = 0

    def _next(self):
        """The first item in pytest's order whose client has a free slot (cond held)."""
        best = None
        for client, queue in self.queues.items():
            if queue and self.busy[client] < self.parallel_of(client):
                if best is None or queue[0][0] < best[0][0]:
                    best = queue
        return best.popleft()[1] if best is not None else None

    def _dispatch(self):
        with self.cond:
            while not self.closed:
                item = self._next() if self.inflight < self.limit else None
                if item is not None:
                    self.busy[item.client] += 1
                    self.inflight += 1
                    self.peak = max(self.peak, self.inflight)
                    threading.Thread(target=self._run, args=(item,), daemon=True,
                                     name="run %s" % item.nodeid).start()
                    continue
                if not any(self.queues.values()):
                    return  # everything started
                self.cond.wait()

    def _run(self, item):
        done = perform(item)
        with self.cond:
            self.results[item.nodeid] = done
            self.busy[item.client] -= 1
            self.inflight -= 1
            self.cond.notify_all()

    def take(self, item):
        """The outcome of item's run, once done; None when it is not in the plan (run it
        now)."""
        with self.cond:
            if item.nodeid not in self.planned or self.closed:
                return None
            if not self.started:
                self.started = True
                threading.Thread(target=self._dispatch, daemon=True, name="run-ahead").start()
            while item.nodeid not in self.results:
                self.cond.wait()
            self.planned.discard(item.nodeid)
            return self.results.pop(item.nodeid)

    def close(self, timeout=CLOSE_WAIT_S):
        """Start no more runs; wait for those going on (before their adapters stop)."""
        end = time.monotonic() + timeout
        with self.cond:
            self.closed = True
            self.cond.notify_all()
            while self.inflight and time.monotonic() < end:
                self.cond.wait(max(0.0, end - time.monotonic()))
