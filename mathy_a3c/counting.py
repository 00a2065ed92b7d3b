"""Counters shared by worker threads, exact under any interleaving."""

from __future__ import annotations

import heapq
import threading


class EpisodeCounter:
    """Hands out episode numbers up to a limit, and counts finished episodes.

    A worker calls :meth:`claim` before it starts an episode. Claims are
    numbered 0, 1, 2, ... and stop at ``limit``, so exactly ``limit`` episodes
    are ever started; every started episode runs to its end unless training
    is stopped early, or the worker playing it is lost: :meth:`release` then
    hands its number out again, before any new one.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._claimed = 0
        self._finished = 0
        self._closed = False
        #: Numbers given back by :meth:`release`, smallest first.
        self._returned: list[int] = []
        self._lock = threading.Lock()

    def claim(self) -> int | None:
        """The next episode number, or ``None`` once ``limit`` were handed out
        (or the counter was closed)."""
        with self._lock:
            if self._closed:
                return None
            if self._returned:
                return heapq.heappop(self._returned)
            if self._claimed >= self.limit:
                return None
            self._claimed += 1
            return self._claimed - 1

    def release(self, episode: int) -> None:
        """A claimed episode will never finish (its worker is gone): hand its
        number out again."""
        with self._lock:
            heapq.heappush(self._returned, episode)

    def close(self) -> None:
        """Hand out no more episode numbers (episodes already claimed go on)."""
        with self._lock:
            self._closed = True

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        with self._lock:
            return self._closed

    @property
    def exhausted(self) -> bool:
        """True when :meth:`claim` can hand out nothing more."""
        with self._lock:
            return self._closed or (not self._returned and self._claimed >= self.limit)

    def finish(self) -> int:
        """Record a finished episode; returns how many have finished."""
        with self._lock:
            self._finished += 1
            return self._finished

    @property
    def claimed(self) -> int:
        """Numbers handed out and not given back."""
        with self._lock:
            return self._claimed - len(self._returned)

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
