"""Plain records passed between workers and the agent (no TensorFlow)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class LossTerms(NamedTuple):
    """The parts of the A3C loss for one update (or their mean over an episode)."""

    policy: float
    value: float
    entropy: float
    total: float
    grad_norm: float


@dataclass(frozen=True)
class EpisodeReport:
    """What a worker tells the agent about one finished episode."""

    worker: int
    episode: int
    topic: str
    problem: str
    final: str
    steps: int
    reward: float
    win: bool
    losses: LossTerms
    seconds: float
    env_error: str | None = None
    """Set when the environment raised on an action its mask allowed."""
    difficulty: str = ""
    """The Mathy difficulty played ("" for gym topics)."""
    level_change: str = ""
    """Set when this episode moved the worker's curriculum: what changed."""
