"""The interpreter's turn: worker threads of one process run Python one at a time.

A worker thread holds the turn while it runs Python (acting, stepping its
environment, computing and applying its update). It gives the turn up
between two updates once it has held it for :data:`QUANTUM_S` (a few
updates in a row: each hand-over costs a wake-up of the other thread and
moves the interpreter's shared objects to its CPU's cache; the worker that
takes the turn back resyncs with the global model first), and always while
it sleeps (``worker_wait``) or TensorFlow computes a gym network's gradients,
which needs no interpreter. Left to the GIL alone, the threads would hand the
interpreter back and forth at every numpy call large enough to release it
(acting took 1.0-1.5 ms a step that way, 0.3 ms with turns).

Threads are never pinned to CPUs: the operating system places them, so two
runs side by side (a seed sweep) share the machine's cores as it sees fit.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

#: Seconds a worker keeps the turn across updates before it passes it on
#: (:meth:`Turn.between_updates`); an update comes about every 5 ms on poly
#: easy. Two threads against one, in pairs taken in turn: 0.91 to 0.95x
#: with 20 ms, 0.94 to 0.98x with 100 ms, 0.97 to 1.01x with 10 s
#: (docs/benchmarks.md). It stays 20 ms: with 100 ms, worker 0 alone
#: played every episode of a short run (9 or 12 episodes of a tiny model).
QUANTUM_S = 0.02


class Turn:
    """Held by the one worker thread that runs Python (see the module doc)."""

    def __init__(self, quantum_s: float = QUANTUM_S) -> None:
        self._lock = threading.Lock()
        self.quantum_s = quantum_s
        #: When the current holder took the turn (``time.perf_counter``).
        self._since = 0.0
        #: How many times the turn was taken so far.
        self._taken = 0

    def locked(self) -> bool:
        return self._lock.locked()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the turn for a worker's whole run (given up in :meth:`away`)."""
        with self._lock:
            self._took()
            yield

    @contextlib.contextmanager
    def away(self) -> Iterator[None]:
        """Give up the turn for a block that needs no interpreter (TensorFlow,
        a sleep), or for nothing: to let a waiting worker take its turn."""
        self._lock.release()
        # Hand the GIL over too, so a worker waiting for the turn runs at once
        # instead of after this thread's Python up to its next GIL release
        # (the turn stood idle 12% of the time without this, 6% with it).
        time.sleep(0)
        try:
            yield
        finally:
            self._lock.acquire()
            self._took()

    def _took(self) -> None:
        self._since = time.perf_counter()
        self._taken += 1

    def between_updates(self) -> bool:
        """Called by the holder after an update: let a waiting worker take
        its turn once this one has held it for ``quantum_s``. Returns
        whether another worker held the turn in between."""
        if time.perf_counter() - self._since < self.quantum_s:
            return False
        taken = self._taken
        with self.away():
            pass
        return self._taken != taken + 1
