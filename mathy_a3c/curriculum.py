"""A per-worker curriculum over Mathy difficulties (easy -> normal -> hard).

Each worker keeps one :class:`Curriculum`. For every topic it tracks the
difficulty the worker plays and the environment's win flag of its last
``window`` episodes there. When the window is full and its win rate reaches
``promote_at``, the worker moves one difficulty up; when it falls below
``demote_below``, one difficulty down. Either move starts an empty window, so
every decision is made on ``window`` episodes at the new difficulty.

Pure Python: no TensorFlow, no environments.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .config import DIFFICULTIES


@dataclass(frozen=True)
class LevelChange:
    """A promotion or demotion, as reported with the episode that caused it."""

    topic: str
    old: str
    new: str
    win_rate: float
    window: int

    @property
    def promoted(self) -> bool:
        return DIFFICULTIES.index(self.new) > DIFFICULTIES.index(self.old)

    def describe(self, worker: int) -> str:
        verb = "promoted" if self.promoted else "demoted"
        return (
            f"curriculum: worker {worker} {verb} on {self.topic}: {self.old} -> "
            f"{self.new} (win rate {self.win_rate:.2f} over {self.window} episodes)"
        )


class Curriculum:
    """Difficulty per topic for one worker, moved by its recent win rate."""

    def __init__(
        self,
        window: int,
        promote_at: float,
        demote_below: float,
        start: str = DIFFICULTIES[0],
    ) -> None:
        if not 0.0 <= demote_below < promote_at <= 1.0:
            raise ValueError(
                f"need 0 <= demote_below < promote_at <= 1; got {demote_below}, "
                f"{promote_at}"
            )
        self.window = window
        self.promote_at = promote_at
        self.demote_below = demote_below
        self.start = start
        self._level: dict[str, int] = {}
        self._results: dict[str, deque[bool]] = {}

    def difficulty(self, topic: str) -> str:
        """The difficulty this worker plays on ``topic`` now."""
        return DIFFICULTIES[self._level.get(topic, DIFFICULTIES.index(self.start))]

    def record(self, topic: str, win: bool) -> LevelChange | None:
        """Count one finished episode; returns the level change it caused."""
        results = self._results.setdefault(topic, deque(maxlen=self.window))
        results.append(bool(win))
        if len(results) < self.window:
            return None
        rate = sum(results) / len(results)
        level = self._level.get(topic, DIFFICULTIES.index(self.start))
        if rate >= self.promote_at and level + 1 < len(DIFFICULTIES):
            new = level + 1
        elif rate < self.demote_below and level > 0:
            new = level - 1
        else:
            return None
        self._level[topic] = new
        results.clear()
        return LevelChange(
            topic, DIFFICULTIES[level], DIFFICULTIES[new], rate, self.window
        )
