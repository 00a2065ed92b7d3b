"""Counters shared by worker threads, exact under any interleaving."""

from __future__ import annotations

import threading


class EpisodeCounter:
    """Hands out episode numbers up to a limit, and counts finished episodes.

    A worker calls :meth:`claim` before it starts an episode. Claims are
    numbered 0, 1, 2, ... and stop at ``limit``, so exactly ``limit`` episodes
    are ever started; every started episode runs to its end unless training
    is stopped early.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._claimed = 0
        self._finished = 0
        self._lock = threading.Lock()

    def claim(self) -> int | None:
        """The next episode number, or ``None`` once ``limit`` were handed out."""
        with self._lock:
            if self._claimed >= self.limit:
                return None
            self._claimed += 1
            return self._claimed - 1

    def close(self) -> None:
        """Hand out no more episode numbers (episodes already claimed go on)."""
        with self._lock:
            self.limit = self._claimed

    def finish(self) -> int:
        """Record a finished episode; returns how many have finished."""
        with self._lock:
            self._finished += 1
            return self._finished

    @property
    def claimed(self) -> int:
        with self._lock:
            return self._claimed

    @property
    def finished(self) -> int:
        with self._lock:
            return self._finished


class StepCounter:
    """A total that many threads add to."""

    def __init__(self, start: int = 0) -> None:
        self._value = start
        self._lock = threading.Lock()

    def add(self, amount: int = 1) -> int:
        with self._lock:
            self._value += amount
            return self._value

    @property
    def value(self) -> int:
        with self._lock:
            return self._value
