"""Measure a policy on fixed problem sets: generated (seeded) or hand-written.

Problems are played in lockstep so a model policy scores every unfinished
problem in one batched forward pass per step.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from mathy_core.parser import ExpressionParser
from mathy_envs.state import MathyEnvState

from .envs import (
    MathyTask,
    Observation,
    ProblemError,
    make_env,
    parse_problem,
    stack,
    typed_state,
)
from .gym_envs import GymTask
from .inference import play
from .search import MCTS


@dataclass(frozen=True)
class EvalResult:
    problems: int
    wins: int
    total_steps: int
    won: tuple[bool, ...] = ()
    """Whether each problem was won, in the order given (where recorded)."""

    @property
    def win_rate(self) -> float:
        return self.wins / self.problems if self.problems else 0.0

    @property
    def mean_steps(self) -> float:
        return self.total_steps / self.problems if self.problems else 0.0


def generated_states(
    topic: str, difficulty: str, count: int, seed: int
) -> list[MathyEnvState]:
    """``count`` problems generated exactly as in training, from their own seed."""
    task = MathyTask([topic], difficulty, seed=seed)
    states = []
    for _ in range(count):
        task.reset()
        assert task.state is not None
        states.append(task.state)
    return states


#: Bounds on a problems file: a file that never ends (a pipe, a device, a
#: runaway generator) is refused, not read into memory.
MAX_PROBLEMS = 10_000
MAX_PROBLEM_FILE_BYTES = 10 * 1024 * 1024


def read_problems(path: str) -> list[tuple[str, str]]:
    """``(group, problem)`` pairs from a text file, one problem per line.

    Blank lines and ``#`` comments are skipped; a ``# group: NAME`` comment
    starts a group (problems before any group line are in group ``default``).
    Every problem is parsed here, so a bad one is reported with its line
    number. Raises :class:`~mathy_a3c.envs.ProblemError` (also for a file
    that is not a regular UTF-8 text file, or larger than the bounds above)
    or ``OSError``.
    """
    if not os.path.isfile(path):
        what = "does not exist" if not os.path.exists(path) else "is not a file"
        raise ProblemError(f"{path} {what}")
    if os.path.getsize(path) > MAX_PROBLEM_FILE_BYTES:
        raise ProblemError(
            f"{path} is larger than {MAX_PROBLEM_FILE_BYTES // 2**20} MiB; "
            f"at most {MAX_PROBLEMS} problems are read"
        )
    with open(path, "rb") as handle:
        data = handle.read(MAX_PROBLEM_FILE_BYTES + 1)
    if len(data) > MAX_PROBLEM_FILE_BYTES:  # it grew while being read
        raise ProblemError(f"{path} is larger than {MAX_PROBLEM_FILE_BYTES} bytes")
    group = "default"
    problems: list[tuple[str, str]] = []
    parser = ExpressionParser()
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise ProblemError(f"{path}, line {number}: not UTF-8 text") from None
        if line.lower().startswith("# group:"):
            group = line.split(":", 1)[1].strip() or "default"
            continue
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if len(problems) == MAX_PROBLEMS:
            raise ProblemError(f"{path} holds more than {MAX_PROBLEMS} problems")
        try:
            parse_problem(line, parser)
        except ProblemError as error:
            raise ProblemError(f"{path}, line {number}: {error}") from None
        problems.append((group, line))
    return problems


def typed_states(
    topic: str, texts: list[str], difficulty: str = "easy"
) -> list[MathyEnvState]:
    """States for problems a user wrote, seen like generated ones of ``topic``."""
    env = make_env(topic)
    return [typed_state(env, text, difficulty) for text in texts]


def evaluate(
    topic: str,
    states: list[MathyEnvState],
    predict: Callable[[Observation], tuple[np.ndarray, np.ndarray]] | None,
    strategy: str = "greedy",
    difficulty: str = "easy",
    seed: int = 0,
) -> EvalResult:
    """Play every state to its end; count wins and steps.

    ``predict`` maps a batch of observations to (logits, values); ``None``
    plays uniformly random valid actions. ``strategy`` is one of
    :data:`mathy_a3c.inference.STRATEGIES`.
    """
    rng = np.random.default_rng(seed)
    tasks = [MathyTask([topic], difficulty, seed=0) for _ in states]
    observations = [task.start(s) for task, s in zip(tasks, states, strict=True)]
    active = list(range(len(tasks)))
    won = [False] * len(tasks)
    steps = 0
    while active:
        batch = stack([observations[i] for i in active])
        if predict is None:
            logits = np.zeros(batch.mask.shape)  # equal odds for every valid action
            choice = "sample"
        else:
            logits, _ = predict(batch)
            choice = strategy
        still = []
        for row, i in enumerate(active):
            result = play(tasks[i], logits[row], observations[i], choice, rng)
            steps += 1
            if result.done:
                won[i] = result.win
            else:
                observations[i] = result.observation
                still.append(i)
        active = still
    return EvalResult(
        problems=len(states), wins=sum(won), total_steps=steps, won=tuple(won)
    )


@dataclass(frozen=True)
class SearchEval(EvalResult):
    """:class:`EvalResult` of a search, with its wall time per problem."""

    seconds: tuple[float, ...] = ()
    simulations: int = 0

    @property
    def seconds_median(self) -> float:
        return float(np.median(self.seconds)) if self.seconds else 0.0

    @property
    def seconds_p95(self) -> float:
        return float(np.percentile(self.seconds, 95)) if self.seconds else 0.0


def evaluate_search(
    topic: str,
    states: list[MathyEnvState],
    searcher: MCTS,
    difficulty: str = "easy",
) -> SearchEval:
    """Play every state to its end by tree search, one problem at a time."""
    steps = simulations = 0
    seconds, won = [], []
    task = MathyTask([topic], difficulty, seed=0)
    for state in states:
        task.start(state)
        result = searcher.solve(task)
        won.append(bool(result.win))
        steps += len(result.steps)
        simulations += result.stats.simulations
        seconds.append(result.stats.seconds)
    return SearchEval(
        problems=len(states),
        wins=sum(won),
        total_steps=steps,
        won=tuple(won),
        seconds=tuple(seconds),
        simulations=simulations,
    )


@dataclass(frozen=True)
class ReturnStats:
    """Episode returns of a policy on a gym topic."""

    returns: tuple[float, ...]
    wins: int
    total_steps: int

    @property
    def episodes(self) -> int:
        return len(self.returns)

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns)) if self.returns else 0.0

    @property
    def std_return(self) -> float:
        return float(np.std(self.returns)) if self.returns else 0.0

    @property
    def win_rate(self) -> float:
        return self.wins / self.episodes if self.returns else 0.0

    @property
    def mean_steps(self) -> float:
        return self.total_steps / self.episodes if self.returns else 0.0


def gym_returns(
    topic: str,
    act: Callable[[Any], tuple[np.ndarray, float]] | None,
    episodes: int = 100,
    seed: int = 0,
) -> ReturnStats:
    """Play ``episodes`` episodes of a gym topic, episode ``i`` reset with seed
    ``seed + i``; ``act`` maps one observation to (masked logits, value) and
    is played greedily; ``None`` plays uniformly random valid actions."""
    rng = np.random.default_rng(seed)
    task = GymTask(topic, seed=seed)
    returns, wins, steps = [], 0, 0
    try:
        for i in range(episodes):
            task.seed = seed + i
            observation = task.reset()
            while True:
                if act is None:
                    action = int(rng.choice(np.flatnonzero(observation.mask)))
                else:
                    action = int(np.argmax(act(observation)[0]))
                result = task.step(action)
                steps += 1
                if result.done:
                    break
                observation = result.observation
            returns.append(task.total)
            wins += int(result.win)
    finally:
        task.close()
    return ReturnStats(tuple(returns), wins, steps)
