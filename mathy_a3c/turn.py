"""The interpreter's turn: worker threads of one process run Python one at a time.

A worker thread holds the turn while it runs Python (acting, stepping its
environment, computing and applying its update). It gives the turn up
between two updates once it has held it for its quantum (:meth:`Turn.quantum`:
:data:`QUANTUM_S` at first, longer as the run goes on, up to
:data:`MAX_QUANTUM_S`, since each hand-over costs the next worker time;
the worker that takes the turn back resyncs with the global model
first), and always while it sleeps (``worker_wait``), waits for its
coordinator (the processes backend), or TensorFlow computes a gym
network's gradients, which needs no interpreter. Left to the GIL alone,
the threads would hand the interpreter back and forth at every numpy call
large enough to release it (acting took 1.0-1.5 ms a step that way, 0.3 ms
with turns).

Threads are never pinned to CPUs: the operating system places them, so two
runs side by side (a seed sweep) share the machine's cores as it sees fit.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

#: Seconds a worker keeps the turn across updates before it passes it on
#: (:meth:`Turn.between_updates`), when the run starts; an update comes
#: about every 5 ms on poly easy. Short, so that in a short run every
#: worker plays (with 100 ms from the start, worker 0 alone played every
#: episode of a 9- or 12-episode run of a tiny model).
QUANTUM_S = 0.02
#: Seconds the quantum grows by for every second since the turn was first
#: taken: 20 ms at the start, 100 ms after 4 s, :data:`MAX_QUANTUM_S` after 9 s.
QUANTUM_GROWTH = 0.02
#: The longest quantum. Each hand-over costs the next worker time (a
#: millisecond or several, cause not pinned down: docs/benchmarks.md): 4
#: workers in 2 processes on 2 cores ran 0.89 to 0.93x as fast as 2 workers
#: with a 20 ms quantum, 0.92 to 1.0x with 10 s, and 0.96 to 1.11x (median
#: 0.983 in nine pairs) with this growing one. A worker waits for the turn
#: about this long for each other worker that shares it.
MAX_QUANTUM_S = 0.2


class Turn:
    """Held by the one worker thread that runs Python (see the module doc)."""

    def __init__(
        self,
        quantum_s: float = QUANTUM_S,
        growth: float = QUANTUM_GROWTH,
        max_quantum_s: float = MAX_QUANTUM_S,
    ) -> None:
        self._lock = threading.Lock()
        self.quantum_s = quantum_s
        self.growth = growth
        self.max_quantum_s = max(max_quantum_s, quantum_s)
        #: When the turn was first taken (``time.perf_counter``), if it was.
        self._first: float | None = None
        #: When the current holder took the turn.
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
        if self._first is None:
            self._first = self._since
        self._taken += 1

    def quantum(self, now: float) -> float:
        """How long a worker keeps the turn across updates at ``now``
        (``time.perf_counter``): ``quantum_s``, plus ``growth`` for every
        second since the turn was first taken, at most ``max_quantum_s``."""
        age = 0.0 if self._first is None else now - self._first
        return min(self.max_quantum_s, self.quantum_s + self.growth * age)

    def between_updates(self) -> bool:
        """Called by the holder after an update: let a waiting worker take
        its turn once this one has held it for its :meth:`quantum`. Returns
        whether another worker held the turn in between."""
        now = time.perf_counter()
        if now - self._since < self.quantum(now):
            return False
        taken = self._taken
        with self.away():
            pass
        return self._taken != taken + 1
