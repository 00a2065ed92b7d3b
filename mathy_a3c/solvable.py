"""Can a problem be won at all? A breadth-first search over the
environment's own transitions.

A model that loses a problem has either played it badly or met a problem no
sequence of rules wins within the environment's move budget. This search
tells the two apart: it tries every action the mask allows, level by level,
with ``get_next_state`` (so the move budget and the win rule are the
environment's own), and never expands an expression it has already reached
(a shorter path reached it first, so the repeat rule cannot matter). It
answers with the fewest moves of a win, that no win exists within the
budget, or, when ``max_transitions`` runs out first, that it does not know.
"""

from __future__ import annotations

from dataclasses import dataclass

from mathy_envs.env import MathyEnv
from mathy_envs.state import MathyEnvState
from mathy_envs.time_step import is_terminal_transition

from .envs import MAX_NODES, valid_moves, won

#: The answers of :func:`breadth_first`.
SOLVABLE, UNSOLVABLE, UNKNOWN = "solvable", "unsolvable", "unknown"


@dataclass(frozen=True)
class Solvability:
    verdict: str
    """:data:`SOLVABLE`, :data:`UNSOLVABLE` (every state within the move
    budget was reached, none wins) or :data:`UNKNOWN` (out of transitions)."""
    actions: tuple[int, ...] | None
    """A shortest win, as flat actions ``rule * MAX_NODES + node`` (``None``
    unless solvable)."""
    transitions: int
    """Environment transitions computed."""
    states: int
    """Distinct expressions reached, the start included."""

    @property
    def moves(self) -> int | None:
        """The fewest moves of a win (``None`` unless solvable)."""
        return None if self.actions is None else len(self.actions)


def breadth_first(
    env: MathyEnv, state: MathyEnvState, max_transitions: int = 20_000
) -> Solvability:
    """Whether ``state`` can be won within its move budget (see the module
    docstring). An action the environment raises on is a dead end, as in
    play, where it loses the episode."""
    seen = {state.agent.problem}
    frontier: list[tuple[MathyEnvState, tuple[int, ...]]] = [(state, ())]
    transitions = 0
    while frontier:
        following = []
        for current, path in frontier:
            for rule, row in enumerate(valid_moves(env, current)):
                for node in (i for i, ok in enumerate(row) if ok):
                    if transitions == max_transitions:
                        return Solvability(UNKNOWN, None, transitions, len(seen))
                    transitions += 1
                    try:
                        after, outcome, _ = env.get_next_state(current, (rule, node))
                    except Exception:  # the environment's own failure: a loss
                        continue
                    actions = (*path, rule * MAX_NODES + node)
                    if won(outcome):
                        return Solvability(SOLVABLE, actions, transitions, len(seen))
                    expression = after.agent.problem
                    if is_terminal_transition(outcome) or expression in seen:
                        continue
                    seen.add(expression)
                    following.append((after, actions))
        frontier = following
    return Solvability(UNSOLVABLE, None, transitions, len(seen))


#: A lost problem that another way of playing it won: it can be won.
WON_ELSEWHERE = "won_by_another_strategy"


def judge_losses(
    env: MathyEnv,
    states: list[MathyEnvState],
    won: tuple[bool, ...],
    max_transitions: int,
    others: tuple[tuple[bool, ...], ...] = (),
) -> dict[str, int]:
    """How many of the problems ``won`` marks as lost are :data:`WON_ELSEWHERE`
    (won in one of ``others``, outcomes of the same states played another
    way), and of the rest, how many get each :func:`breadth_first` verdict."""
    counts = dict.fromkeys((WON_ELSEWHERE, SOLVABLE, UNSOLVABLE, UNKNOWN), 0)
    for i, state in enumerate(states):
        if won[i]:
            continue
        if any(outcomes[i] for outcomes in others):
            counts[WON_ELSEWHERE] += 1
        else:
            counts[breadth_first(env, state, max_transitions).verdict] += 1
    return counts
