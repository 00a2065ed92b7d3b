"""Choosing actions with a trained policy, and solving one problem step by step.

Three ways to pick an action from a state's masked logits:

* ``greedy``: the most probable valid action;
* ``no-revisit``: the most probable valid action that does not lead back to an
  expression already seen in this episode, as long as one exists (greedy play
  in Mathy mostly fails by swapping terms back and forth until the environment
  scores a loss; this looks one step ahead to avoid that);
* ``sample``: draw from the policy.

Or, for the problems none of them solves, a Monte Carlo tree search guided by
the model (:func:`search_solve`, :mod:`mathy_a3c.search`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .envs import MathyTask, Observation, StepResult, transition
from .search import MCTS, SearchStats

STRATEGIES: tuple[str, ...] = ("greedy", "no-revisit", "sample")


def choose_action(
    task: MathyTask,
    logits: np.ndarray,
    observation: Observation,
    strategy: str = "greedy",
    rng: np.random.Generator | None = None,
) -> int:
    """One action for ``task``'s current state under ``strategy``."""
    return _choose(task, logits, observation, strategy, rng)[0]


def play(
    task: MathyTask,
    logits: np.ndarray,
    observation: Observation,
    strategy: str = "greedy",
    rng: np.random.Generator | None = None,
) -> StepResult:
    """Choose an action under ``strategy`` (:func:`choose_action`) and take it.
    ``no-revisit`` takes the transition it looked ahead to, so that the
    environment does not compute it twice."""
    action, ahead = _choose(task, logits, observation, strategy, rng)
    return task.step(action) if ahead is None else task.take(ahead)


def _choose(
    task: MathyTask,
    logits: np.ndarray,
    observation: Observation,
    strategy: str,
    rng: np.random.Generator | None,
) -> tuple[int, StepResult | None]:
    """The action, and the transition to it where one was looked ahead to."""
    valid = np.flatnonzero(observation.mask)
    if strategy == "sample":
        rng = rng or np.random.default_rng()
        z = logits[valid].astype(np.float64)
        p = np.exp(z - z.max())
        return int(rng.choice(valid, p=p / p.sum())), None
    if strategy == "greedy":
        return int(valid[np.argmax(logits[valid])]), None
    if strategy != "no-revisit":
        raise ValueError(
            f"Unknown strategy {strategy!r}. Valid strategies: {', '.join(STRATEGIES)}"
        )
    assert task.state is not None
    seen = {step.raw for step in task.state.agent.history}
    ranked = valid[np.argsort(-logits[valid], kind="stable")]
    for action in ranked:
        # An action the environment cannot apply (see MathyTask.step) is
        # passed over, as one that leads back to a seen expression is.
        ahead = transition(task.env, task.state, int(action))
        if ahead.error is None and ahead.expression not in seen:
            return int(action), ahead
    return int(ranked[0]), None


@dataclass(frozen=True)
class Step:
    rule: str
    node: int
    expression: str
    reward: float


@dataclass
class Solution:
    """What happened when a policy played one problem."""

    problem: str
    steps: list[Step] = field(default_factory=list)
    win: bool = False
    error: str | None = None
    search: SearchStats | None = None
    """What the search did, where one chose the steps."""

    @property
    def final(self) -> str:
        return self.steps[-1].expression if self.steps else self.problem


def solve(
    task: MathyTask,
    observation: Observation,
    predict: Callable[[Observation], tuple[np.ndarray, float]],
    strategy: str = "no-revisit",
    max_steps: int | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> Solution:
    """Play ``task`` from its current state to the end (or ``max_steps``)."""
    assert task.state is not None
    solution = Solution(problem=task.state.agent.problem)
    rng = np.random.default_rng(0)
    while max_steps is None or len(solution.steps) < max_steps:
        logits, _ = predict(observation)
        result = play(task, logits, observation, strategy, rng)
        step = Step(result.rule, result.node, result.expression, result.reward)
        solution.steps.append(step)
        if on_step is not None:
            on_step(step)
        if result.done:
            solution.win, solution.error = result.win, result.error
            break
        observation = result.observation
    return solution


def search_solve(
    task: MathyTask,
    searcher: MCTS,
    max_steps: int | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> Solution:
    """Play ``task`` from its current state by tree search: a won path as soon
    as the search finds one, else move by move to the episode's end."""
    assert task.state is not None
    solution = Solution(problem=task.state.agent.problem)
    result = searcher.solve(task, max_steps)
    for _, outcome in result.steps:
        step = Step(outcome.rule, outcome.node, outcome.expression, outcome.reward)
        solution.steps.append(step)
        if on_step is not None:
            on_step(step)
    solution.win = result.win
    solution.error = result.steps[-1][1].error if result.steps else None
    solution.search = result.stats
    return solution
