"""What the user sees while training: progress bar, episode lines, TensorBoard.

Workers never print. They hand episodes, ``--show`` lines and profiles to a
:class:`QueueReporter`; the agent's main thread drains it and calls the
callbacks here, in order, so output from different threads never interleaves.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from .config import DIFFICULTIES
from .event_file import ScalarWriter
from .types import EpisodeReport

WINDOW = 100


@dataclass
class RunStats:
    """Totals for the run and rolling figures over the last ``WINDOW`` episodes."""

    episodes: int = 0
    steps: int = 0
    wins: int = 0
    recent_wins: deque[bool] = field(default_factory=lambda: deque(maxlen=WINDOW))
    recent_rewards: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))

    def add(self, report: EpisodeReport) -> None:
        self.episodes += 1
        self.steps += report.steps
        self.wins += int(report.win)
        self.recent_wins.append(report.win)
        self.recent_rewards.append(report.reward)

    @property
    def win_rate(self) -> float:
        return (
            sum(self.recent_wins) / len(self.recent_wins) if self.recent_wins else 0.0
        )

    @property
    def mean_reward(self) -> float:
        r = self.recent_rewards
        return sum(r) / len(r) if r else 0.0


class QueueReporter:
    """A thread-safe :class:`~mathy_a3c.worker.Reporter` backed by a queue."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()

    def episode(self, report: EpisodeReport) -> None:
        self.events.put(("episode", report))

    def show(self, worker: int, text: str) -> None:
        self.events.put(("show", (worker, text)))

    def profile(self, worker: int, stats: bytes) -> None:
        self.events.put(("profile", (worker, stats)))


class Callback:
    """Hooks the agent's main thread calls during :meth:`A3CAgent.train`."""

    def on_start(self, total_episodes: int, stats: RunStats) -> None: ...

    def on_episode(self, report: EpisodeReport, stats: RunStats) -> None: ...

    def on_show(self, worker: int, text: str) -> None: ...

    def on_end(self, stats: RunStats) -> None: ...


def _colour(text: str, code: str) -> str:
    if os.environ.get("NO_COLOR") or not sys.stdout.isatty():
        return text
    return f"\x1b[{code}m{text}\x1b[0m"


def episode_line(report: EpisodeReport) -> str:
    """One summary line for a finished episode."""
    outcome = _colour("WIN ", "32") if report.win else _colour("LOSE", "31")
    loss = report.losses
    note = f" | env error: {report.env_error}" if report.env_error else ""
    return (
        f"{time.strftime('%H:%M:%S')} w{report.worker} ep {report.episode:>5} "
        f"steps {report.steps:>3} reward {report.reward:+6.2f} {outcome} "
        f"loss pi {loss.policy:+.3f} v {loss.value:.3f} ent {loss.entropy:.2f} "
        f"| {report.topic}{' ' + report.difficulty if report.difficulty else ''}"
        f"{note}"
    )


class ConsoleCallback(Callback):
    """A tqdm bar over episodes; a line per worker-0 episode; ``--show`` lines."""

    def __init__(self, verbose: bool = False, progress: bool = True) -> None:
        self.verbose = verbose
        self.progress = progress
        self.bar: tqdm[Any] | None = None

    def on_start(self, total_episodes: int, stats: RunStats) -> None:
        self.bar = tqdm(
            total=total_episodes,
            unit="ep",
            dynamic_ncols=True,
            disable=not self.progress,
            file=sys.stderr,
        )

    def _write(self, text: str) -> None:
        tqdm.write(text, file=sys.stdout)

    def on_show(self, worker: int, text: str) -> None:
        self._write(text)

    def on_episode(self, report: EpisodeReport, stats: RunStats) -> None:
        if report.worker == 0 or self.verbose:
            self._write(episode_line(report))
        if report.level_change:  # every promotion and demotion, any worker
            self._write(report.level_change)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(
                win=f"{stats.win_rate:.2f}",
                reward=f"{stats.mean_reward:+.2f}",
                refresh=False,
            )

    def on_end(self, stats: RunStats) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class TensorBoardCallback(Callback):
    """Scalars in ``FOLDER/tensorboard``, averaged over every ``every`` episodes.

    The x axis is the number of finished episodes, counting earlier runs into
    the same folder through ``first_episode``.
    """

    def __init__(
        self,
        logdir: str,
        learning_rate: Callable[[], float],
        first_episode: int = 0,
        every: int = 10,
    ) -> None:
        #: ``None`` once a write failed (see :meth:`_guarded`).
        self.writer: ScalarWriter | None = None
        try:
            self.writer = ScalarWriter(logdir)
        except OSError as error:
            self._stop(error)
        #: Returns the learning rate updates use now (it may follow a schedule).
        self.learning_rate = learning_rate
        self.first_episode = first_episode
        self.every = every
        self.pending: list[EpisodeReport] = []
        #: Recent wins per "topic/difficulty" (the curriculum's view).
        self.by_level: dict[str, deque[bool]] = {}

    def on_episode(self, report: EpisodeReport, stats: RunStats) -> None:
        self.pending.append(report)
        key = f"{report.topic}/{report.difficulty}" if report.difficulty else ""
        if key:
            self.by_level.setdefault(key, deque(maxlen=WINDOW)).append(report.win)
        if len(self.pending) >= self.every:
            self._guarded(self._write, stats)

    def _guarded(self, write: Callable[[RunStats], None], stats: RunStats) -> None:
        """Curves are not worth a run: a write that fails (a full disk, a
        folder removed) stops the logging, with one warning, not training."""
        if self.writer is None:
            return
        try:
            write(stats)
        except OSError as error:
            self._stop(error)

    def _stop(self, error: OSError) -> None:
        if self.writer is not None:
            with contextlib.suppress(OSError):
                self.writer.close()
        self.writer = None
        why = error.strerror or type(error).__name__
        print(
            f"warning: TensorBoard logging stopped ({why}); training goes on",
            file=sys.stderr,
        )

    def _write(self, stats: RunStats) -> None:
        if not self.pending:
            return
        batch = self.pending
        self.pending = []

        def mean(values: list[float]) -> float:
            return sum(values) / len(values)

        scalars = {
            "episode/reward": mean([r.reward for r in batch]),
            "episode/steps": mean([r.steps for r in batch]),
            "episode/win_rate": mean([float(r.win) for r in batch]),
            "episode/win_rate_100": stats.win_rate,
            "loss/policy": mean([r.losses.policy for r in batch]),
            "loss/value": mean([r.losses.value for r in batch]),
            "loss/entropy": mean([r.losses.entropy for r in batch]),
            "loss/total": mean([r.losses.total for r in batch]),
            "loss/grad_norm": mean([r.losses.grad_norm for r in batch]),
            "train/learning_rate": self.learning_rate(),
            "train/env_steps": stats.steps,
        }
        for key, wins in self.by_level.items():
            scalars[f"win_rate/{key}"] = sum(wins) / len(wins)
        levels = [r.difficulty for r in batch if r.difficulty]
        if levels:  # 0 easy, 1 normal, 2 hard: where the workers are
            scalars["curriculum/mean_level"] = mean(
                [float(DIFFICULTIES.index(d)) for d in levels]
            )
        assert self.writer is not None
        self.writer.scalars(scalars, self.first_episode + stats.episodes)

    def on_end(self, stats: RunStats) -> None:
        self._guarded(self._close, stats)

    def _close(self, stats: RunStats) -> None:
        self._write(stats)
        assert self.writer is not None
        self.writer.close()
