"""The interpreter's turn: worker threads of one process run Python one at a time.

A worker thread holds the turn while it runs Python (acting, stepping its
environment, computing and applying its update) and gives it up after each
update, so that the threads take turns update by update, and while
TensorFlow computes a gym network's gradients, which needs no interpreter.
Left to the GIL alone, the threads would hand the interpreter back and
forth at every numpy call large enough to release it (acting took 1.0-1.5
ms a step that way, 0.3 ms with turns).

Threads are never pinned to CPUs: the operating system places them, so two
runs side by side (a seed sweep) share the machine's cores as it sees fit.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator


class Turn:
    """Held by the one worker thread that runs Python (see the module doc)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def locked(self) -> bool:
        return self._lock.locked()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the turn for a worker's whole run (given up in :meth:`away`)."""
        with self._lock:
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
