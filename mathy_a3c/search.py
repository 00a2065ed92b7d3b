"""Monte Carlo tree search guided by a trained model (PUCT), for the problems
greedy play cannot solve.

The tree's nodes are environment states; an edge is an action the mask
allows, and the child behind it comes from the environment's own
``get_next_state``, computed once and kept: the move budget and the repeat
rule apply inside the search exactly as in play. The model gives each new
node its action priors (the masked policy) and its value; leaves are
evaluated together, in batches through the numpy actor
(:meth:`mathy_a3c.numpy_actor.NumpyActor.batch`), with virtual losses
spreading a batch's simulations over different paths.

A simulation walks down by PUCT, ``Q(a) + c * P(a) * sqrt(N) / (1 + N(a))``,
where ``Q`` is the mean return through the edge (the environment's rewards
along the path plus the discounted value of the leaf) and unvisited edges
start at the parent's value. The search stops at once when it reaches a won
state: the path there is a solution. An edge known to lose (it ends the
episode in a loss, or leads to a state whose every move is known to lose) is
never walked, nor played, again while its state has another move. Otherwise,
after ``simulations`` simulations from the current state it plays the most
visited action, keeps that subtree, and searches again from there, until the
episode ends.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import DEFAULT_SIMULATIONS
from .envs import MathyTask, StepResult, starting, transition
from .policy import masked_probabilities

#: Batched model: observations -> (masked logits [B, A], values [B]).
Evaluate = Callable[[list[Any]], tuple[np.ndarray, np.ndarray]]


@dataclass
class SearchStats:
    """What one search did."""

    simulations: int = 0
    """Simulations run (each reaches one leaf)."""
    nodes: int = 0
    """States the tree holds (environment transitions computed)."""
    seconds: float = 0.0
    """Wall time of the search."""


@dataclass
class SearchResult:
    steps: list[tuple[int, StepResult]]
    """The actions played and what each did, in order (a won path when
    ``win``)."""
    win: bool
    stats: SearchStats = field(default_factory=SearchStats)


class _Node:
    """A state in the tree; edge statistics live on the parent's arrays."""

    __slots__ = (
        "outcome",
        "actions",
        "priors",
        "visits",
        "totals",
        "children",
        "lost",
        "value",
    )

    def __init__(self, outcome: StepResult) -> None:
        self.outcome = outcome
        self.actions: np.ndarray | None = None  # valid actions, once expanded
        self.priors = np.zeros(0)
        self.visits = np.zeros(0)
        self.totals = np.zeros(0)
        self.children: list[_Node | None] = []
        #: Edges known to end the episode in a loss: no simulation needs them.
        self.lost = np.zeros(0, dtype=bool)
        self.value = 0.0

    @property
    def expanded(self) -> bool:
        return self.actions is not None

    @property
    def open(self) -> bool:
        """Expanded, not the episode's end, and with a move to make."""
        return (
            self.actions is not None and len(self.actions) > 0 and not self.outcome.done
        )

    def expand(self, logits: np.ndarray, value: float) -> None:
        actions = np.flatnonzero(self.outcome.observation.mask)
        self.actions = actions
        self.priors = masked_probabilities(logits[actions])
        self.visits = np.zeros(len(actions))
        self.totals = np.zeros(len(actions))
        self.children = [None] * len(actions)
        self.lost = np.zeros(len(actions), dtype=bool)
        self.value = float(value)


class MCTS:
    """PUCT search over a :class:`~mathy_a3c.envs.MathyTask`'s environment.

    ``evaluate`` maps a list of observations to masked logits and values
    (a batch); ``simulations`` is the budget per move; ``batch`` leaves are
    evaluated together.
    """

    def __init__(
        self,
        evaluate: Evaluate,
        simulations: int = DEFAULT_SIMULATIONS,
        batch: int = 8,
        c_puct: float = 1.5,
        gamma: float = 0.99,
    ) -> None:
        if simulations < 1:
            raise ValueError(f"simulations must be >= 1; got {simulations}")
        self.evaluate = evaluate
        self.simulations = simulations
        self.batch = max(1, batch)
        self.c_puct = c_puct
        self.gamma = gamma

    # -- public --------------------------------------------------------------
    def solve(self, task: MathyTask, max_moves: int | None = None) -> SearchResult:
        """Search from ``task``'s current state to the end of the episode
        (or ``max_moves``), leaving ``task`` in the state reached."""
        assert task.state is not None, "start the task first"
        start = time.perf_counter()
        stats = SearchStats()
        root = _Node(starting(task.env, task.state))
        stats.nodes = 1
        played: list[tuple[int, StepResult]] = []
        win = False
        while not root.outcome.done and (max_moves is None or len(played) < max_moves):
            won = self._search(task, root, stats)
            if won is not None:
                left = None if max_moves is None else max_moves - len(played)
                played.extend(won[:left])
                win = left is None or len(won) <= left
                break
            assert root.actions is not None
            if not len(root.actions):  # nothing the rules can do: a dead end
                break
            best = _most_visited(root)
            child = root.children[best]
            if child is None:  # no simulation took it: compute it now
                child = self._child(task, root, best, stats)
            played.append((int(root.actions[best]), child.outcome))
            root = child
            win = root.outcome.win
        if played:
            task.state = played[-1][1].state
        stats.seconds = time.perf_counter() - start
        return SearchResult(played, win, stats)

    def choose(self, task: MathyTask) -> int:
        """One move for ``task``'s current state (``task`` is not changed):
        the first move of a won path if the search finds one, else the most
        visited move. ``mcts_worker_*`` training strategies play this."""
        assert task.state is not None, "start the task first"
        root = _Node(starting(task.env, task.state))
        won = self._search(task, root, SearchStats(nodes=1))
        if won:
            return won[0][0]
        assert root.actions is not None
        if not len(root.actions):
            raise ValueError(f"no valid move in {task.state.agent.problem!r}")
        return int(root.actions[_most_visited(root)])

    # -- the search ----------------------------------------------------------
    def _search(
        self, task: MathyTask, root: _Node, stats: SearchStats
    ) -> list[tuple[int, StepResult]] | None:
        """Run up to ``simulations`` simulations from ``root``; the steps of a
        won path from ``root`` as soon as one is found, else ``None``."""
        if not root.expanded:
            self._evaluate([root])
        done = 0
        while done < self.simulations:
            leaves: list[tuple[_Node, list[tuple[_Node, int]]]] = []
            for _ in range(min(self.batch, self.simulations - done)):
                path, node = self._descend(task, root, stats)
                done += 1
                stats.simulations += 1
                if node.outcome.win:
                    self._undo_virtual(leaves)
                    return [_step(parent, i) for parent, i in path]
                if node.outcome.done:  # lost: the edge's reward says so
                    self._backup(path, 0.0)
                    _propagate_loss(path)
                    continue
                leaves.append((node, path))
                self._virtual_loss(path)
            self._undo_virtual(leaves)
            if leaves:
                self._evaluate([node for node, _ in leaves])
                for node, path in leaves:
                    self._backup(path, node.value)
        return None

    def _descend(
        self, task: MathyTask, node: _Node, stats: SearchStats
    ) -> tuple[list[tuple[_Node, int]], _Node]:
        path: list[tuple[_Node, int]] = []
        while node.open:
            i = self._select(node)
            child = node.children[i]
            if child is None:
                child = self._child(task, node, i, stats)
            path.append((node, i))
            node = child
            if node.outcome.win:
                break
        return path, node

    def _select(self, node: _Node) -> int:
        visits = node.visits
        total = visits.sum()
        q = np.where(visits > 0, node.totals / np.maximum(visits, 1), node.value)
        u = self.c_puct * node.priors * math.sqrt(total + 1) / (1.0 + visits)
        score = q + u
        if not node.lost.all():
            # A known loss teaches nothing more; an untrained value head can
            # rate unexplored moves below a loss, and would replay it.
            score[node.lost] = -np.inf
        return int(np.argmax(score))

    def _child(self, task: MathyTask, node: _Node, i: int, stats: SearchStats) -> _Node:
        """The state behind edge ``i``: computed once, then kept."""
        assert node.actions is not None
        child = _Node(transition(task.env, node.outcome.state, int(node.actions[i])))
        node.children[i] = child
        node.lost[i] = child.outcome.done and not child.outcome.win
        stats.nodes += 1
        return child

    def _evaluate(self, nodes: list[_Node]) -> None:
        logits, values = self.evaluate([n.outcome.observation for n in nodes])
        for node, row, value in zip(nodes, logits, values, strict=True):
            node.expand(row, float(value))

    def _backup(self, path: list[tuple[_Node, int]], value: float) -> None:
        returns = value
        for parent, i in reversed(path):
            child = parent.children[i]
            assert child is not None
            returns = child.outcome.reward + self.gamma * returns
            parent.visits[i] += 1
            parent.totals[i] += returns

    # Virtual losses keep a batch's simulations off each other's paths.
    def _virtual_loss(self, path: list[tuple[_Node, int]]) -> None:
        for parent, i in path:
            parent.visits[i] += 1
            parent.totals[i] -= 1.0

    def _undo_virtual(
        self, leaves: list[tuple[_Node, list[tuple[_Node, int]]]]
    ) -> None:
        for _, path in leaves:
            for parent, i in path:
                parent.visits[i] -= 1
                parent.totals[i] += 1.0


def _step(node: _Node, i: int) -> tuple[int, StepResult]:
    """Edge ``i`` of ``node``: its action and the child's outcome."""
    child = node.children[i]
    assert node.actions is not None and child is not None
    return int(node.actions[i]), child.outcome


def _most_visited(node: _Node) -> int:
    """The index of ``node``'s most visited edge (ties: the higher prior),
    among the edges not known to lose while there are any."""
    score = node.visits + 1e-6 * node.priors
    if not node.lost.all():
        score[node.lost] = -np.inf
    return int(np.argmax(score))


def _propagate_loss(path: list[tuple[_Node, int]]) -> None:
    """After a simulation ended in a loss: a state whose every move is known
    to lose is a loss too, so the edge into it is marked, and so on up."""
    for depth in range(len(path) - 1, 0, -1):
        if not path[depth][0].lost.all():
            return
        parent, i = path[depth - 1]
        parent.lost[i] = True
