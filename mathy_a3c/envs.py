"""Mathy environments, by topic name, seen the way the model expects.

The environments are the real ones from ``mathy_envs``. This module only picks
them by name, seeds their problem generators per worker, and turns an
environment state into model inputs. It does not import TensorFlow.

Three behaviours of mathy_envs 0.12.5 are handled here on purpose:

* Problem generation draws from the *global* ``random`` and ``numpy.random``
  generators and ignores ``reset(seed=...)``. :class:`ProblemSeed` gives each
  worker its own stream by swapping the global states in and out under a lock,
  so a worker's problems depend only on its seed, never on thread timing.
  mathy_core also draws variable names through a ``set``, whose order follows
  Python's per-process string hashing, so the same seed named different
  variables in every process; :class:`ProblemSeed` sorts them first.
* ``poly-like-terms-haystack`` cannot be won unless the commutative rule uses
  ``preferred_term_commute=True``, so that topic is built with it.
* ``MathyEnv.get_valid_moves`` caches masks by ``str(expression)``, but
  different trees can print the same (``5 * y * 12y * (5b * 4q)`` and
  ``5 * y * 12y * 5b * 4q`` both print ``5y * 12y * 5b * 4q``), so a cached mask
  can allow an action that then raises ``ValueError`` (seen in ``complex``).
  :func:`make_env` gives each environment a ``get_valid_moves`` computed from
  the exact tree of the problem text instead, uncached, and
  :meth:`MathyTask.step` still turns any such ``ValueError`` into a losing
  terminal step instead of crashing.

:func:`make_env` also scores transitions without building mathy_envs' own
flat observation of each new state, or its mask, which this library never
reads (see :class:`_Unobserved`); :func:`observe` computes the mask in the
same walk over the tree as the node features.

The flat observation of mathy_envs orders node features in *preorder* but the
action mask by *inorder* position, and min-max normalises type ids within each
observation. :func:`observe` instead lists nodes inorder, so feature ``i`` and
mask column ``i`` describe the same node, and keeps the raw integer type ids
for an embedding.
"""

from __future__ import annotations

import functools
import math
import random
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
from mathy_core import problems
from mathy_core.expressions import (
    AddExpression,
    ConstantExpression,
    PowerExpression,
    SubtractExpression,
    VariableExpression,
)
from mathy_core.parser import ExpressionParser
from mathy_core.util import get_terms
from mathy_envs.env import MathyEnv
from mathy_envs.envs import (
    BinomialDistribute,
    ComplexSimplify,
    PolyCombineInPlace,
    PolyCommuteLikeTerms,
    PolyGroupLikeTerms,
    PolyHaystackLikeTerms,
    PolySimplify,
    PolySimplifyBlockers,
)
from mathy_envs.state import MathyEnvState
from mathy_envs.time_step import TimeStep, is_terminal_transition
from mathy_envs.types import MathyEnvDifficulty, MathyEnvProblem, MathyEnvProblemArgs

from .config import TOPICS

#: Topic name -> (environment class, constructor keyword arguments).
ENV_BY_TOPIC: dict[str, tuple[type[MathyEnv], dict[str, Any]]] = {
    "poly": (PolySimplify, {}),
    "poly-blockers": (PolySimplifyBlockers, {}),
    "poly-combine": (PolyCombineInPlace, {}),
    "poly-commute": (PolyCommuteLikeTerms, {}),
    "poly-grouping": (PolyGroupLikeTerms, {}),
    # Unwinnable without preferred commute (random play wins 0 of 300).
    "poly-like-terms-haystack": (
        PolyHaystackLikeTerms,
        {"preferred_term_commute": True},
    ),
    "complex": (ComplexSimplify, {}),
    "binomial": (BinomialDistribute, {}),
}
assert tuple(ENV_BY_TOPIC) == TOPICS, "config.TOPICS and ENV_BY_TOPIC must agree"

#: Nodes the model sees; the action space is ``NUM_RULES * MAX_NODES``.
MAX_NODES = 128
#: Rules every Mathy topic offers (``MathyEnv.core_rules``).
NUM_RULES = 7
ACTION_SIZE = NUM_RULES * MAX_NODES
#: Embedding vocabulary: mathy_core type ids are below 64 (x=50, z=52).
NODE_VOCAB = 64
#: Length of the problem-type hash (``MathyEnvState.get_problem_hash``).
TYPE_SIZE = 4
#: Earlier visits of this expression, then a one-hot of the last action's rule.
HISTORY_SIZE = 1 + NUM_RULES
#: mathy_envs ends an episode when an expression is visited more than 3 times.
MAX_VISITS = 3
#: Node depths are divided by this (the deepest node of a generated problem
#: is at depth 3 to 23, by topic and difficulty).
DEPTH_SCALE = 8.0


class Observation(NamedTuple):
    """Model inputs for one state (or a batch, with a leading axis)."""

    nodes: np.ndarray
    """int32 [MAX_NODES]: mathy_core type id of each node, inorder, 0 = padding."""
    values: np.ndarray
    """float32 [MAX_NODES]: sign(v)·log(1+|v|) of constant nodes, else 0."""
    type: np.ndarray
    """float32 [TYPE_SIZE]: hash of the problem type (which topic this is)."""
    time: np.ndarray
    """float32 [1]: fraction of the move budget used, in [0, 1]."""
    history: np.ndarray
    """float32 [HISTORY_SIZE]: earlier visits of this expression / 3, then a
    one-hot of the rule the last action used (all 0 at the first step)."""
    last: np.ndarray
    """float32 [MAX_NODES]: 1 at the node the last action was applied to."""
    like: np.ndarray
    """float32 [MAX_NODES]: 1 at every node of a term that has a like term
    elsewhere in the expression (same variables and powers; constants are
    like each other), else 0 (see :func:`term_features`)."""
    factors: np.ndarray
    """float32 [MAX_NODES]: 1 at every factor of a product that another of
    its factors can be multiplied with (see :func:`term_features`)."""
    depth: np.ndarray
    """float32 [MAX_NODES]: each node's depth in the expression tree (the root
    is 0) / :data:`DEPTH_SCALE`. With the inorder listing it fixes the tree:
    ``6s^3 * 7b^3 * b^3`` and ``6s^3 * 7 * b^3 * b^3`` list the same node
    types, but not at the same depths."""
    mask: np.ndarray
    """float32 [ACTION_SIZE]: 1 where (rule, node) is valid, rule-major."""


def stack(observations: list[Any]) -> Any:
    """Batch observations (NamedTuples of arrays) along a new leading axis."""
    return type(observations[0])(
        *(np.stack(column) for column in zip(*observations, strict=True))
    )


class StepResult(NamedTuple):
    observation: Any
    """The next state's model inputs: an :class:`Observation` for Mathy
    topics, a ``gym_envs.VectorObservation`` for gym topics; ``None`` where
    the episode ended and the task skips observing ends
    (:attr:`MathyTask.observe_ends`)."""
    reward: float
    done: bool
    win: bool
    rule: str
    node: int
    expression: str
    error: str | None = None
    """Set when the environment raised on an action its mask allowed."""
    truncated: bool = False
    """The episode ended by a time limit, not by the task: ``observation`` is
    a real next state whose value the return should bootstrap from. (Mathy's
    move limit is part of its game, a loss, so Mathy never sets this.)"""
    state: Any = None
    """The environment state after the step (Mathy topics: a
    ``MathyEnvState``; the state before it where the step raised)."""


def _rand_vars_in_sorted_order(
    num_vars: int,
    exclude_vars: list[str] | None = None,
    common_variables: bool = False,
    rng: Any = random,
) -> list[str]:
    """``mathy_core.problems.get_rand_vars`` (0.9.5) with the drawn names
    sorted before they are shuffled (with ``rng``, the global ``random``
    unless given).

    The original shuffles ``list(set_of_names)``, whose starting order follows
    string hashing, which Python randomises per process (``PYTHONHASHSEED``):
    the same seed then named different variables in every process. Sorted,
    the draws from ``random`` are the same and so is the distribution.
    """
    exclude = exclude_vars or []
    if num_vars > 25:
        raise ValueError("out of range: there are only twenty-six variables")
    names: set[str] = set()
    draws = 0
    while len(names) < num_vars:
        name = problems.rand_var(common_variables)
        if name not in exclude:
            names.add(name)
        draws += 1
        if draws > num_vars * 10:
            raise ValueError(
                f"Unable to fulfill request for {num_vars} random variables"
            )
    out = sorted(names)
    rng.shuffle(out)
    return out


def _global_draws() -> dict[int, tuple[str, str]]:
    """``(generator, function)`` by the ``id`` of what a module may hold to
    draw from a global generator: Python's ``random`` module itself
    (``random.randint(...)``; function ``""``), or a function of it or of
    numpy's legacy global generator (``from numpy.random import randint``)."""
    draws: dict[int, tuple[str, str]] = {id(random): ("python", "")}
    for kind, module, owner in (
        ("python", random, random.Random),
        ("numpy", np.random, np.random.RandomState),
    ):
        for name, value in vars(module).items():
            if isinstance(getattr(value, "__self__", None), owner):
                draws[id(value)] = (kind, name)
    return draws


class ProblemSeed:
    """A private random stream for problem generation in one worker.

    mathy_envs and mathy_core generate problems with the global generators:
    Python's ``random`` module and numpy's legacy one (``from numpy.random
    import randint``). :meth:`active` points those names, in every loaded
    mathy_core and mathy_envs module, at this worker's own ``random.Random``
    and ``numpy.random.RandomState`` for the duration of a ``with`` block,
    under a process-wide lock, and with them a ``get_rand_vars`` for
    mathy_core whose result does not depend on string hashing
    (:func:`_rand_vars_in_sorted_order`), so a seed gives the same problems
    in every process. The global generators themselves are never read or
    written (swapping this worker's states into them and back cost 0.2 to 0.5
    ms a problem, most of it numpy's ``get_state`` and ``set_state``).
    """

    _lock = threading.Lock()
    #: ``(module, name, kind, function)`` of each global draw found in the
    #: mathy modules, and how many modules were loaded when they were listed.
    _found: tuple[int, list[tuple[Any, str, str, str]]] = (0, [])

    def __init__(self, seed: int) -> None:
        self.python = random.Random(seed)
        self.numpy = np.random.RandomState(seed)
        self._rand_vars = functools.partial(_rand_vars_in_sorted_order, rng=self.python)

    @classmethod
    def _draws(cls) -> list[tuple[Any, str, str, str]]:
        """Where mathy modules hold a global generator (listed again when
        more modules are loaded)."""
        loaded, found = cls._found
        if loaded != len(sys.modules):
            draws = _global_draws()
            found = []
            for module_name, module in list(sys.modules.items()):
                if module is None or module_name.split(".")[0] not in _MATHY:
                    continue
                for name, value in list(vars(module).items()):
                    kind, function = draws.get(id(value), ("", ""))
                    if kind:
                        found.append((module, name, kind, function))
            cls._found = (len(sys.modules), found)
        return found

    def _own(self, kind: str, function: str) -> Any:
        generator = self.python if kind == "python" else self.numpy
        return getattr(generator, function) if function else generator

    @contextmanager
    def active(self) -> Iterator[None]:
        with self._lock:
            draws = self._draws()
            saved = [getattr(module, name) for module, name, _, _ in draws]
            saved_vars = problems.get_rand_vars
            for module, name, kind, function in draws:
                setattr(module, name, self._own(kind, function))
            problems.get_rand_vars = self._rand_vars
            try:
                yield
            finally:
                problems.get_rand_vars = saved_vars
                for (module, name, _, _), value in zip(draws, saved, strict=True):
                    setattr(module, name, value)


_MATHY = ("mathy_core", "mathy_envs")


def make_env(topic: str) -> MathyEnv:
    """The mathy_envs environment for a topic name, with exact action masks.

    The instance's ``get_valid_moves`` is replaced by one that reads the exact
    tree (see the module docstring); everything else is mathy_envs'.
    """
    if topic not in ENV_BY_TOPIC:
        raise ValueError(f"Unknown topic {topic!r}. Valid topics: {', '.join(TOPICS)}")
    cls, kwargs = ENV_BY_TOPIC[topic]
    env = cls(**kwargs)
    if len(env.rules) != NUM_RULES or env.max_seq_len != MAX_NODES:
        raise RuntimeError(
            f"{cls.__name__} has {len(env.rules)} rules and max_seq_len "
            f"{env.max_seq_len}; this library expects {NUM_RULES} and {MAX_NODES}"
        )

    def get_valid_moves(state: MathyEnvState) -> list[list[int]]:
        if isinstance(state, _Unobserved):
            return []  # a transition being scored: it reads no mask
        return valid_moves(env, state)

    env.get_valid_moves = get_valid_moves  # type: ignore[method-assign,assignment]
    scored = env.get_state_transition

    def get_state_transition(state: MathyEnvState) -> TimeStep:
        return scored(_Unobserved(state=state))

    env.get_state_transition = get_state_transition  # type: ignore[method-assign,assignment]
    return env


class _Unobserved(MathyEnvState):
    """A copy of a state that skips mathy_envs' own observation.

    ``MathyEnv.get_state_transition`` builds the mask and the flat observation
    of every new state (a third of a step's time) and stores them in the
    ``TimeStep``; this library reads only the transition's reward and type and
    observes states itself (:func:`observe`), so the transition is scored on
    this copy.
    """

    def to_observation(self, *args: Any, **kwargs: Any) -> Any:
        return None


#: The longest problem text read from a user: far more than the model's
#: ``MAX_NODES`` nodes can be written in, and short enough to parse at once.
MAX_PROBLEM_CHARS = 1000


class ProblemError(ValueError):
    """A typed problem that cannot be played: it does not parse, or it is too
    large for the model. The message is one line and names the problem."""


def parse_problem(text: str, parser: ExpressionParser | None = None) -> Any:
    """The expression tree of a problem a user wrote, or :class:`ProblemError`."""
    if not isinstance(text, str):
        raise ProblemError(f"a problem must be text; got {type(text).__name__}")
    shown = repr(text) if len(text) <= 60 else repr(text[:57]) + "..."
    if len(text) > MAX_PROBLEM_CHARS:
        raise ProblemError(
            f"problem {shown} is {len(text)} characters long; at most "
            f"{MAX_PROBLEM_CHARS} are read"
        )
    try:
        expression = (parser or ExpressionParser()).parse(text)
        nodes = expression.to_list("inorder")
    except RecursionError:
        raise ProblemError(
            f"cannot parse problem {shown}: it nests too deeply"
        ) from None
    except Exception as error:  # any failure of the parser on this text
        why = " ".join(str(error).split()) or type(error).__name__
        raise ProblemError(f"cannot parse problem {shown}: {why}") from None
    if len(nodes) > MAX_NODES:
        raise ProblemError(
            f"problem {shown} has {len(nodes)} nodes; the model sees at most "
            f"{MAX_NODES}"
        )
    for node in nodes:
        if isinstance(node, ConstantExpression):
            try:
                _squashed(node.value)
            except ProblemError as error:
                raise ProblemError(f"problem {shown}: {error}") from None
    return expression


def typed_state(env: MathyEnv, text: str, difficulty: str = "easy") -> MathyEnvState:
    """The state of a problem a user typed, seen exactly like a generated one.

    ``reset_with_input`` in mathy_envs 0.12.5 uses problem type
    ``mathy.unknown``, ``num_rules=0`` and a fixed 16-move budget; this builds
    the state the way ``get_initial_state`` does instead: the environment's
    own problem type and rule count, and its own ``max_moves_fn`` applied to
    the problem's size (its number of terms). Raises :class:`ProblemError`.
    """
    expression = parse_problem(text, env.parser)
    problem = MathyEnvProblem(text, len(get_terms(expression)), env.get_env_namespace())
    args = MathyEnvProblemArgs(difficulty=MathyEnvDifficulty(difficulty))
    return MathyEnvState(
        problem=text,
        problem_type=env.get_env_namespace(),
        max_moves=env.max_moves_fn(problem, args),
        num_rules=len(env.rules),
    )


def valid_moves(env: MathyEnv, state: MathyEnvState) -> list[list[int]]:
    """The [rule][node] mask of ``state``, computed from this exact tree.

    It is ``env.get_actions_for_node`` (``rule.can_apply_to`` for every rule
    at every inorder node) without its cache, which is keyed by a string that
    another tree can also print as, and in one walk over the tree instead of
    one per rule (``tests/test_envs.py`` holds the two equal).
    """
    return _valid_at(env, env.parser.parse(state.agent.problem).to_list("inorder"))


def _valid_at(env: MathyEnv, nodes: list[Any]) -> list[list[int]]:
    """The [rule][node] mask of inorder ``nodes``."""
    checks = [rule.can_apply_to for rule in env.rules]
    return [[1 if can(node) else 0 for node in nodes] for can in checks]


#: The largest constant a state may hold. mathy_core's rules factor
#: constants by trial division (its ``factor`` takes about sqrt(v) steps: 2 ms
#: at 1e9, 3 s at 4.5e15, hours beyond), and every step's mask asks them to:
#: a typed problem, or arithmetic on one, that goes beyond is refused or lost.
MAX_CONSTANT = 1e9


def _squashed(value: Any) -> float:
    """sign(v)·log(1+|v|) of a constant (0 for ``1/0`` evaluated to nan);
    :class:`ProblemError` beyond :data:`MAX_CONSTANT`."""
    try:
        v = float(value)
    except OverflowError:
        v = math.inf
    if math.isnan(v):
        return 0.0
    if abs(v) > MAX_CONSTANT:
        text = str(value)
        shown = text if len(text) <= 16 else f"{text[:8]}... ({len(text)} digits)"
        raise ProblemError(
            f"constant {shown} is larger than {MAX_CONSTANT:.0e}, the most the "
            f"environment's rules can factor in reasonable time"
        )
    return math.copysign(math.log1p(abs(v)), v)


_SUMS = (AddExpression, SubtractExpression)


def term_features(nodes: list[Any], tops: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Two float32 [MAX_NODES] features of inorder ``nodes`` (``tops``: the
    top node of each one's term, as :func:`_inorder` lists them):

    * like terms: 1 at every node of a term with a like term elsewhere in the
      expression. A term is a maximal subtree without a ``+`` or ``-`` (the
      children of the sums, as ``mathy_core.util.get_terms`` finds them); its
      key is its variables with their powers, so ``4x^2`` and ``x^2 * 7`` are
      alike and every constant term is like every other. A term holding a sum
      (``7(x + y)``) has no key. This agrees with ``mathy_core.util.get_term``
      on generated problems of every topic (``tests/test_envs.py``) at a
      twentieth of its cost.
    * like factors: 1 at every factor of a product term that another factor
      of the same term can be multiplied with: a variable that appears twice
      (``x`` and ``x^2`` in ``4x * 3x^2``, with their powers), and the
      constants of a term holding more than one (not exponents).
    """
    members: dict[int, list[int]] = {}
    powers: dict[int, list[tuple[str | None, Any]]] = {}
    variables: dict[int, dict[str | None, list[list[int]]]] = {}
    constants: dict[int, list[int]] = {}
    holds_a_sum: set[int] = set()
    for index, node in enumerate(nodes):
        if isinstance(node, _SUMS):
            # A sum inside a term (its parent is no sum) shares the parent's top.
            if node.parent is not None and not isinstance(node.parent, _SUMS):
                holds_a_sum.add(id(tops[index]))
            continue
        top = id(tops[index])
        members.setdefault(top, []).append(index)
        parent = node.parent
        if isinstance(node, VariableExpression):
            raised = (
                isinstance(parent, PowerExpression)
                and parent.left is node
                and isinstance(parent.right, ConstantExpression)
            )
            powers.setdefault(top, []).append(
                (node.identifier, parent.right.value if raised else 1)
            )
            factor = [index, index + 1, index + 2] if raised else [index]
            variables.setdefault(top, {}).setdefault(node.identifier, []).append(factor)
        elif isinstance(node, ConstantExpression) and not (
            isinstance(parent, PowerExpression) and parent.right is node
        ):
            constants.setdefault(top, []).append(index)
    keys = {
        term: tuple(sorted(powers.get(term, ())))
        for term in members
        if term not in holds_a_sum
    }
    counts: dict[tuple[Any, ...], int] = {}
    for key in keys.values():
        counts[key] = counts.get(key, 0) + 1
    like = np.zeros(MAX_NODES, dtype=np.float32)
    for term, key in keys.items():
        if counts[key] > 1:
            like[members[term]] = 1.0
    factors = np.zeros(MAX_NODES, dtype=np.float32)
    for term in keys:
        for occurrences in variables.get(term, {}).values():
            if len(occurrences) > 1:
                for places in occurrences:
                    factors[places] = 1.0
        if len(constants.get(term, ())) > 1:
            factors[constants[term]] = 1.0
    return like, factors


class _Walk(NamedTuple):
    """A tree's nodes inorder (as ``to_list("inorder")`` lists them), with
    each one's distance from the root and the top node of its term."""

    nodes: list[Any]
    depths: list[int]
    tops: list[Any]


def _inorder(root: Any) -> _Walk:
    """One walk over the tree for :func:`observe` (see :class:`_Walk`; a
    child of a sum tops its own term, any other child shares its parent's)."""
    walk = _Walk([], [], [])
    nodes, depths, tops = walk

    def visit(node: Any, depth: int, top: Any) -> None:
        child_top = None if isinstance(node, _SUMS) else top
        if node.left is not None:
            visit(node.left, depth + 1, node.left if child_top is None else child_top)
        nodes.append(node)
        depths.append(depth)
        tops.append(top)
        if node.right is not None:
            visit(node.right, depth + 1, node.right if child_top is None else child_top)

    visit(root, 0, root)
    return walk


def observe(env: MathyEnv, state: MathyEnvState) -> Observation:
    """Model inputs for ``state``: node features inorder, aligned with the mask."""
    problem = state.agent.problem
    expression = env.parser.parse(problem)
    walk = _inorder(expression)
    nodes = walk.nodes
    count = len(nodes)
    if count > MAX_NODES:
        raise ProblemError(f"expression has {count} nodes; at most {MAX_NODES} fit")
    types = np.zeros(MAX_NODES, dtype=np.int32)
    types[:count] = [node.type_id for node in nodes]
    np.minimum(types, NODE_VOCAB - 1, out=types)
    values = np.zeros(MAX_NODES, dtype=np.float32)
    for i, node in enumerate(nodes):
        if isinstance(node, ConstantExpression) and node.value:
            values[i] = _squashed(node.value)
    depth = np.zeros(MAX_NODES, dtype=np.float32)
    depth[:count] = walk.depths
    depth /= DEPTH_SCALE
    mask = np.zeros((NUM_RULES, MAX_NODES), dtype=np.float32)
    mask[:, :count] = _valid_at(env, nodes)
    history = np.zeros(HISTORY_SIZE, dtype=np.float32)
    last = np.zeros(MAX_NODES, dtype=np.float32)
    steps = state.agent.history
    visits = sum(1 for step in steps[:-1] if step.raw == problem)
    history[0] = min(visits, MAX_VISITS) / MAX_VISITS
    if len(steps) > 1:
        last_rule, last_node = steps[-1].action
        history[1 + last_rule] = 1.0
        if 0 <= last_node < count:
            last[last_node] = 1.0
    like, factors = term_features(nodes, walk.tops)
    used = state.max_moves - state.agent.moves_remaining
    time = min(1.0, used / state.max_moves) if state.max_moves > 0 else 0.0
    return Observation(
        nodes=types,
        values=values,
        type=np.asarray(state.get_problem_hash(), dtype=np.float32),
        time=np.asarray([time], dtype=np.float32),
        history=history,
        last=last,
        like=like,
        factors=factors,
        depth=depth,
        mask=mask.reshape(-1),
    )


class MathyTask:
    """One worker's view of one or more topics: reset, step, observe.

    Topics rotate episode by episode, starting at ``offset`` so that workers
    with different offsets start on different topics.
    """

    def __init__(
        self,
        topics: list[str],
        difficulty: str,
        seed: int,
        offset: int = 0,
        observe_ends: bool = True,
    ) -> None:
        self.topics = list(topics)
        self.envs = {topic: make_env(topic) for topic in self.topics}
        #: Whether a step that ends the episode observes the state it ends in
        #: (``False``: its ``StepResult.observation`` is ``None``). Training
        #: never reads it, since a Mathy episode never ends by a time limit
        #: that a return would bootstrap from; skipping it saves one
        #: observation per episode.
        self.observe_ends = observe_ends
        self.difficulty = difficulty
        self.args = MathyEnvProblemArgs(difficulty=MathyEnvDifficulty(difficulty))
        #: What the model must know of the task beyond the Observation: nothing
        #: (gym tasks give their sizes here).
        self.spec = None
        self.seed = ProblemSeed(seed)
        self._next = offset % len(self.topics)
        self.topic = self.topics[self._next]
        self.env: MathyEnv = self.envs[self.topic]
        self.state: MathyEnvState | None = None
        self.problem = ""
        #: The generator's complexity (its number of terms) of the last problem.
        self.last_complexity = 0

    @property
    def next_topic(self) -> str:
        """The topic the next :meth:`reset` plays."""
        return self.topics[self._next]

    def reset(self, difficulty: str | None = None) -> Observation:
        """Start an episode on a new problem of the next topic (at
        ``difficulty``, which then stays, or at the current one)."""
        if difficulty is not None and difficulty != self.difficulty:
            self.difficulty = difficulty
            self.args = MathyEnvProblemArgs(difficulty=MathyEnvDifficulty(difficulty))
        self.topic = self.topics[self._next]
        self._next = (self._next + 1) % len(self.topics)
        self.env = self.envs[self.topic]
        while True:
            with self.seed.active():
                state, problem = self.env.get_initial_state(
                    self.args, print_problem=False
                )
            try:
                observation = observe(self.env, state)
            except ValueError:
                continue  # too many nodes for the model: draw another problem
            self.state, self.problem = state, problem.text
            self.last_complexity = problem.complexity
            return observation

    def start(self, state: MathyEnvState) -> Observation:
        """Start an episode from a given state (of the current topic's env)."""
        observation = observe(self.env, state)
        self.state, self.problem = state, state.agent.problem
        return observation

    def describe_start(self) -> str:
        """The ``--show`` line that opens an episode."""
        return f"[{self.topic} {self.difficulty}] {self.problem}"

    def describe_step(self, number: int, result: StepResult) -> str:
        """The ``--show`` line of one step."""
        return (
            f"  {number:>3} | {result.rule[:26]:<26} @{result.node:<3} | "
            f"{result.expression} | {result.reward:+.2f}"
        )

    def step(self, action: int) -> StepResult:
        """Apply a flat action ``rule * MAX_NODES + node``."""
        assert self.state is not None, "call reset() first"
        return self.take(
            transition(self.env, self.state, action, observe_end=self.observe_ends)
        )

    def take(self, result: StepResult) -> StepResult:
        """Move to ``result``, a :func:`transition` from the current state
        (one computed to look ahead, taken without computing it again)."""
        self.state = result.state
        return result


def starting(env: MathyEnv, state: MathyEnvState) -> StepResult:
    """``state`` as the result of no step yet (the root of a search)."""
    return StepResult(
        observation=observe(env, state),
        reward=0.0,
        done=False,
        win=False,
        rule="",
        node=-1,
        expression=state.agent.problem,
        state=state,
    )


def won(outcome: TimeStep) -> bool:
    """Whether a transition ends the episode with a win: terminal, with a
    positive reward (mathy_envs' gym wrapper sets ``info["win"]`` the same
    way, from the terminal transition, not the summed reward)."""
    return bool(is_terminal_transition(outcome)) and float(outcome.reward) > 0.0


def transition(
    env: MathyEnv, state: MathyEnvState, action: int, observe_end: bool = True
) -> StepResult:
    """Apply a flat action ``rule * MAX_NODES + node`` to ``state`` with the
    environment's own ``get_next_state``; ``state`` itself is not changed.
    With ``observe_end`` False, a step that ends the episode has no
    observation (``None``)."""
    rule, node = divmod(int(action), MAX_NODES)
    rule_name = env.rules[rule].name
    try:
        after, outcome, _ = env.get_next_state(state, (rule, node))
        done = is_terminal_transition(outcome)
        observation = observe(env, after) if observe_end or not done else None
    except Exception as error:
        # mathy_envs can raise on an action a mask allowed (see the module
        # docstring), and on typed problems its rules were not written for
        # (an equation, arithmetic that overflows): score it as a lost
        # episode, with the error in the report, instead of crashing.
        return StepResult(
            observation=observe(env, state) if observe_end else None,
            reward=float(env.get_lose_signal(state)),
            done=True,
            win=False,
            rule=rule_name,
            node=node,
            expression=state.agent.problem,
            error=(
                f"{type(error).__name__} applying {rule_name} at node {node} "
                f"of {state.agent.problem!r}: " + " ".join(str(error).split())[:200]
            ),
            state=state,
        )
    reward = float(outcome.reward)
    return StepResult(
        observation=observation,
        reward=reward,
        done=done,
        win=won(outcome),
        rule=rule_name,
        node=node,
        expression=after.agent.problem,
        state=after,
    )
