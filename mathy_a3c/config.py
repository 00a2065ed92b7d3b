"""Training configuration for the A3C agent.

This module imports neither TensorFlow nor mathy_envs, so the CLI can validate
arguments and print help instantly. Every field documents itself through its
``help`` metadata; ``mathy train --help`` shows the same text.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Every Mathy topic this library can train on, by the name users type.
TOPICS: tuple[str, ...] = (
    "poly",
    "poly-blockers",
    "poly-combine",
    "poly-commute",
    "poly-grouping",
    "poly-like-terms-haystack",
    "complex",
    "binomial",
)

#: Problem difficulties offered by every Mathy topic, easiest first (the
#: curriculum's levels).
DIFFICULTIES: tuple[str, ...] = ("easy", "normal", "hard")

#: A topic ``gym:ENV_ID`` trains on an installed Gymnasium environment.
GYM_PREFIX = "gym:"

TOPIC_CHOICES = ", ".join(TOPICS) + f", or {GYM_PREFIX}ENV_ID (a Gymnasium environment)"


def is_gym_topic(topic: str) -> bool:
    """True for ``gym:ENV_ID`` topics."""
    return topic.startswith(GYM_PREFIX)


#: Where workers run (see mathy_a3c.backends).
BACKENDS: tuple[str, ...] = ("threads", "processes", "ray")
#: What the ray backend does when a worker's actor is lost with its node or
#: process: start a new actor for it (as RLlib recreates failed workers), or
#: stop training and save.
RAY_LOST_WORKER: tuple[str, ...] = ("recreate", "stop")
#: The most CPUs one Ray worker may reserve (ray_cpus_per_worker).
MAX_RAY_CPUS = 1024.0
#: How the learning rate changes over a run (see A3CConfig.lr_scale).
LR_SCHEDULES: tuple[str, ...] = ("linear", "constant")

#: Agents that ``mathy train`` knows.
AGENTS: tuple[str, ...] = ("a3c",)

#: How workers choose their actions while training (as in Mathy): every
#: worker samples from the policy ("a3c"), or worker 0 ("mcts_worker_0") or
#: every worker but 0 ("mcts_worker_n") plays the move a tree search picks.
ACTION_STRATEGIES: tuple[str, ...] = ("a3c", "mcts_worker_0", "mcts_worker_n")

#: How ``simplify`` and ``evaluate`` may search with a trained model: not at
#: all (play the policy), or a Monte Carlo tree search it guides
#: (mathy_a3c.search); simulations per move, by default and at most.
SEARCHES: tuple[str, ...] = ("none", "mcts")
DEFAULT_SIMULATIONS = 100
MAX_SIMULATIONS = 100_000


#: How a setting may change when a run resumes a saved model
#: (:meth:`A3CConfig.changes_from`):
#:
#: * ``model``: never; the saved weights only fit the saved value;
#: * ``learning``: changes what is learned, so only when asked explicitly
#:   (``--change-settings``);
#: * ``run``: how this run is carried out; may change, and the change is shown;
#: * ``session``: what this run prints or writes; never carried over.
RESUME_KINDS: tuple[str, ...] = ("model", "learning", "run", "session")

#: Upper bounds that keep a typo from eating the machine.
MAX_WORKERS = 256
MAX_SEED = 2**32 - 1


def field_name(name: str) -> str:
    """``name`` marked as a field name inside a :class:`ConfigError` message, so
    the CLI can show the flag a user typed (``--episodes``) in its place."""
    return f"\x1f{name}\x1f"


_FIELD_TOKEN = re.compile("\x1f(\\w+)\x1f")


class ConfigError(ValueError):
    """A configuration value is out of range; the message names field and range.

    ``str(error)`` names fields as ``A3CConfig`` spells them;
    :meth:`render` names them another way (the CLI uses its flags).
    """

    def __init__(self, message: str) -> None:
        self.template = message
        super().__init__(self.render())

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields the message is about, the main one first."""
        return tuple(_FIELD_TOKEN.findall(self.template))

    def render(self, name: Callable[[str], str] = str) -> str:
        """The message with each field name written as ``name(field)``."""
        return _FIELD_TOKEN.sub(lambda m: name(m.group(1)), self.template)


def _field(
    default: Any,
    help: str,
    resume: str,
    flag: str | None = "",
    short: str = "",
) -> Any:
    """A dataclass field that documents itself: ``help`` is shown by the CLI and
    the docs; ``resume`` is one of :data:`RESUME_KINDS`; ``flag`` is the CLI
    option (default ``--field-name``; ``None`` for a positional argument)."""
    assert resume in RESUME_KINDS, resume
    metadata = {"help": help, "resume": resume, "flag": flag, "short": short}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class A3CConfig:
    """Everything that controls an A3C training run.

    Values are checked when the object is built; a bad value raises
    :class:`ConfigError` with a one-line message naming the field and the
    valid range. Build one from keyword arguments, or from a saved
    ``config.json`` with :meth:`from_dict`.
    """

    # -- what to train on -------------------------------------------------
    topics: list[str] = _field(
        ["poly"],
        "Mathy topics to train on. Several topics are rotated episode by episode; "
        "a comma-separated string is accepted. Choices: " + TOPIC_CHOICES + " "
        "(one gym topic, on its own; it must have a Discrete action space).",
        resume="learning",
        flag=None,
    )
    difficulty: str | None = _field(
        None,
        "Problem difficulty: " + ", ".join(DIFFICULTIES) + ", or curriculum (the "
        "default; None in Python): each worker starts on easy and is promoted or "
        "demoted by its recent win rate on each topic.",
        resume="learning",
    )
    curriculum_window: int = _field(
        50,
        "Curriculum: a worker's episodes on a topic over which its win rate is "
        "measured; a promotion or demotion starts a new window.",
        resume="learning",
    )
    promote_at: float = _field(
        0.9,
        "Curriculum: move a worker to the next harder difficulty when its win "
        "rate over the window reaches this.",
        resume="learning",
    )
    demote_below: float = _field(
        0.5,
        "Curriculum: move a worker back to the next easier difficulty when its "
        "win rate over the window falls below this.",
        resume="learning",
    )
    model_dir: str = _field(
        "output/a3c",
        "Folder that receives the model, config.json, TensorBoard logs and "
        "profiles. A folder that holds a model is resumed, never overwritten.",
        resume="session",
        flag=None,
    )

    # -- the A3C loop -----------------------------------------------------
    num_workers: int = _field(
        2,
        f"Workers, each with its own environment (at most "
        f"{MAX_WORKERS}). More workers than cores still add diversity when "
        f"worker_wait > 0.",
        resume="run",
        flag="--workers",
    )
    backend: str = _field(
        "threads",
        "Where workers run: threads (classic A3C: one process, shared model), "
        "processes (OS processes sharing the global model in shared memory; "
        "scales past the GIL; see worker_processes) or ray (Ray actors, on this "
        "machine or a cluster; needs pip install 'mathy-a3c[ray]').",
        resume="run",
    )
    worker_processes: int = _field(
        0,
        f"With backend processes: how many OS processes the workers run in "
        f"(0 to {MAX_WORKERS}). 0: one per worker, but no more than the CPUs this "
        f"process may use; workers beyond that share processes as threads that "
        f"take turns, so that no two workers fight for one core.",
        resume="run",
    )
    ray_address: str = _field(
        "",
        "With backend ray: the address of a Ray cluster to join: auto for the "
        "cluster this machine belongs to, or HEAD_IP:6379. "
        "Empty joins the cluster that the RAY_ADDRESS variable names, if set, and "
        "otherwise starts a local Ray runtime for the run, even where a cluster "
        "runs on this machine.",
        resume="run",
    )
    ray_cpus_per_worker: float = _field(
        1.0,
        f"With backend ray: CPUs each worker actor reserves, so that Ray places "
        f"workers by free CPUs across the cluster's nodes (0 to {MAX_RAY_CPUS:g}; "
        f"0 reserves none). A local runtime gets enough CPUs for every worker.",
        resume="run",
    )
    ray_lost_worker: str = _field(
        "recreate",
        "With backend ray: what happens when a worker's node or actor process "
        "dies: recreate (start a new actor for it where resources allow, and "
        "play its unfinished episode again; training goes on meanwhile) or stop "
        "(stop training and save the model). A worker that raises an exception "
        "always stops training.",
        resume="run",
    )
    ray_ship_code: bool = _field(
        False,
        "With backend ray: send this package's code to the cluster with the "
        "workers (Ray's runtime_env py_modules), so that every node runs the "
        "driver's version and needs only the dependencies installed.",
        resume="run",
    )
    ray_ordinary_calls: bool = _field(
        False,
        "With backend ray: talk to every worker actor through ordinary actor "
        "calls. Without it, workers on the driver's own node talk through a Ray "
        "Compiled Graph's shared-memory channel (an update's round trip 0.7 ms "
        "instead of about 3 ms on 2 cores); workers on other nodes always use "
        "ordinary calls.",
        resume="run",
    )
    update_interval: int = _field(
        16,
        "Steps a worker rolls out before it computes gradients and updates the "
        "global model (an episode's end also triggers an update).",
        resume="learning",
    )
    action_strategy: str = _field(
        "a3c",
        "How workers choose actions: a3c (sample from the policy), "
        "mcts_worker_0 (worker 0 plays the move a tree search guided by its "
        "local model picks, the others sample) or mcts_worker_n (every worker "
        "but 0 searches). Gradients are always A3C's, for the actions taken.",
        resume="learning",
    )
    mcts_sims: int = _field(
        10,
        f"Tree-search simulations per move for the searching workers of "
        f"action_strategy (1 to {MAX_SIMULATIONS}).",
        resume="learning",
    )
    worker_wait: float = _field(
        0.0,
        "Milliseconds every worker except worker 0 sleeps between actions "
        "(at most 60000).",
        resume="run",
    )
    max_eps: int = _field(
        2000,
        "Episodes to train for, counted across all workers (exact). A resumed "
        "model trains this many more.",
        resume="run",
        flag="--episodes",
    )
    max_seconds: float = _field(
        0.0,
        "Stop starting new episodes after this many seconds of training; episodes "
        "under way still finish. 0 means no time limit (max_eps alone decides).",
        resume="run",
    )

    # -- the loss ---------------------------------------------------------
    gamma: float = _field(
        0.99, "Discount factor for rewards, in (0, 1].", resume="learning"
    )
    gae_lambda: float = _field(
        1.0,
        "Lambda for generalized advantage estimation, in [0, 1]. 1.0 gives the "
        "classic A3C n-step returns bootstrapped from the value of the last state.",
        resume="learning",
    )
    lr: float = _field(
        1e-3, "Learning rate of the global Adam optimizer.", resume="learning"
    )
    lr_schedule: str = _field(
        "linear",
        "How the learning rate changes during a run: 'linear' anneals it from lr "
        "to 0 over the run's budget (max_eps episodes, or max_seconds if that "
        "ends the run sooner), as in the A3C paper; 'constant' keeps lr.",
        resume="learning",
    )
    entropy_coef: float = _field(
        0.01,
        "Weight of the entropy bonus that keeps the policy exploring.",
        resume="learning",
    )
    value_coef: float = _field(
        0.5, "Weight of the value (critic) loss.", resume="learning"
    )
    max_grad_norm: float = _field(
        0.5,
        "Gradients are clipped to this global norm before they are applied.",
        resume="learning",
    )

    # -- the model --------------------------------------------------------
    model_size: int = _field(
        64,
        "Width of the model: embedding size, convolution channels and head units "
        "(for gym topics: the units of each hidden layer of the MLPs), 4 to 1024.",
        resume="model",
    )

    # -- run control and output -------------------------------------------
    seed: int = _field(
        0,
        f"Seed for problem generation, action sampling and weight initialisation, "
        f"0 to {MAX_SEED}. Worker N uses seed + N.",
        resume="run",
    )
    save_every_s: float = _field(
        60.0,
        "Seconds between periodic checkpoints (the model is also saved at the end).",
        resume="run",
        flag="--save-every",
    )
    profile: bool = _field(
        False,
        "Write a cProfile file, worker_N.profile, per worker into model_dir.",
        resume="session",
    )
    print_training: bool = _field(
        False,
        "Print worker 0's problem, every step it takes, and the outcome.",
        resume="session",
        flag="--show",
    )
    verbose: bool = _field(
        False,
        "Print a summary line for every worker's episodes, not only worker 0's.",
        resume="session",
        short="-v",
    )

    def __post_init__(self) -> None:
        if isinstance(self.topics, str):
            self.topics = self.topics.split(",")
        if isinstance(self.topics, (list, tuple)) and all(
            isinstance(t, str) for t in self.topics
        ):
            self.topics = [p.strip() for t in self.topics for p in t.split(",")]
        if self.difficulty == "curriculum":
            self.difficulty = None
        if isinstance(self.model_dir, os.PathLike):
            self.model_dir = os.fspath(self.model_dir)
        self.validate()

    # ---------------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`ConfigError` for the first invalid field."""
        _check_types(self)
        self._validate_topics()
        if self.difficulty is not None and self.difficulty not in DIFFICULTIES:
            raise ConfigError(
                f"{field_name('difficulty')} must be one of "
                f"{', '.join(DIFFICULTIES)}, or curriculum; got {self.difficulty!r}"
            )
        if self.is_gym and self.difficulty is not None:
            raise ConfigError(
                f"{field_name('difficulty')} applies to Mathy topics only; "
                f"{self.topics[0]} has none (got difficulty {self.difficulty!r})"
            )
        _int_in(self, "curriculum_window", 1, 100_000)
        _number_in(self, "promote_at", 0.0, 1.0, low_open=True)
        _number_in(self, "demote_below", 0.0, 1.0)
        if self.demote_below >= self.promote_at:
            raise ConfigError(
                f"{field_name('demote_below')} must be below "
                f"{field_name('promote_at')}; got {self.demote_below!r} and "
                f"{self.promote_at!r}"
            )
        _one_of(self, "lr_schedule", LR_SCHEDULES)
        _one_of(self, "backend", BACKENDS)
        _number_in(self, "ray_cpus_per_worker", 0.0, MAX_RAY_CPUS)
        _one_of(self, "ray_lost_worker", RAY_LOST_WORKER)
        _one_of(self, "action_strategy", ACTION_STRATEGIES)
        _int_in(self, "mcts_sims", 1, MAX_SIMULATIONS)
        if self.is_gym and self.action_strategy != "a3c":
            raise ConfigError(
                f"{field_name('action_strategy')} {self.action_strategy} needs "
                f"Mathy topics; {self.topics[0]} has no tree to search"
            )
        if not self.model_dir.strip() or "\x00" in self.model_dir:
            raise ConfigError(
                f"{field_name('model_dir')} must be a folder path; got "
                f"{self.model_dir!r}"
            )
        _int_in(self, "num_workers", 1, MAX_WORKERS)
        _int_in(self, "worker_processes", 0, MAX_WORKERS)
        _int_in(self, "update_interval", 1, 100_000)
        _int_in(self, "max_eps", 1, 10**12)
        _int_in(self, "model_size", 4, 1024)
        _int_in(self, "seed", 0, MAX_SEED)
        _number_in(self, "worker_wait", 0.0, 60_000.0)
        _number_in(self, "max_seconds", 0.0, math.inf)
        _number_in(self, "gamma", 0.0, 1.0, low_open=True)
        _number_in(self, "gae_lambda", 0.0, 1.0)
        _number_in(self, "lr", 0.0, 1.0, low_open=True)
        _number_in(self, "entropy_coef", 0.0, math.inf)
        _number_in(self, "value_coef", 0.0, math.inf)
        _number_in(self, "max_grad_norm", 0.0, math.inf, low_open=True)
        _number_in(self, "save_every_s", 0.0, math.inf, low_open=True)

    def _validate_topics(self) -> None:
        topics = field_name("topics")
        if not self.topics or self.topics == [""]:
            raise ConfigError(
                f"{topics} must name at least one topic. Valid topics: " + TOPIC_CHOICES
            )
        if "" in self.topics:
            raise ConfigError(
                f"{topics} has an empty item in {','.join(self.topics)!r}; "
                f"write topics separated by single commas, e.g. poly,complex"
            )
        repeated = sorted({t for t in self.topics if self.topics.count(t) > 1})
        if repeated:
            raise ConfigError(
                f"{topics} names {', '.join(repeated)} more than once; name each "
                f"topic once"
            )
        for topic in self.topics:
            if topic not in TOPICS and not is_gym_topic(topic):
                raise ConfigError(
                    f"Unknown topic {topic!r}. Valid topics: {TOPIC_CHOICES}"
                )
            if topic == GYM_PREFIX:
                raise ConfigError(
                    f"Topic {topic!r} names no environment; write "
                    f"{GYM_PREFIX}ENV_ID, e.g. {GYM_PREFIX}CartPole-v1"
                )
        if self.is_gym and len(self.topics) > 1:
            raise ConfigError(
                f"A gym topic trains on its own; got topics {', '.join(self.topics)}"
            )

    @property
    def is_gym(self) -> bool:
        """True when training on a ``gym:ENV_ID`` topic."""
        return is_gym_topic(self.topics[0])

    def lr_scale(self, episodes: int, seconds: float) -> float:
        """The factor on ``lr`` once a run has played ``episodes`` episodes in
        ``seconds``: 1 for 'constant'; for 'linear', 1 minus the part of the
        budget used (the larger of the episode and time fractions), down to 0.
        """
        if self.lr_schedule == "constant":
            return 1.0
        used = episodes / self.max_eps
        if self.max_seconds:
            used = max(used, seconds / self.max_seconds)
        return min(1.0, max(0.0, 1.0 - used))

    @property
    def curriculum(self) -> bool:
        """True when the curriculum picks difficulties (Mathy, no difficulty)."""
        return self.difficulty is None and not self.is_gym

    # ---------------------------------------------------------------------
    def changes_from(self, saved: A3CConfig) -> list[SettingChange]:
        """How this config differs from ``saved``, the config of the model it
        resumes: one :class:`SettingChange` per field, ``session`` fields left
        out (they are never carried over)."""
        changes = []
        for f in dataclasses.fields(self):
            kind = f.metadata["resume"]
            if f.name == "topics" and (saved.is_gym or self.is_gym):
                kind = "model"  # a gym topic's model only fits that environment
            old, new = getattr(saved, f.name), getattr(self, f.name)
            if kind != "session" and old != new:
                changes.append(SettingChange(f.name, kind, old, new))
        return changes

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> A3CConfig:
        """Build a config from :meth:`to_dict` output, rejecting unknown keys."""
        if not isinstance(data, dict):
            raise ConfigError(
                f"a config must be a JSON object of fields; got {type(data).__name__}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(map(str, data)) - known)
        if unknown:
            raise ConfigError(
                f"Unknown config field(s) {', '.join(repr(u)[:40] for u in unknown)}. "
                f"Valid fields: {', '.join(sorted(known))}"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> A3CConfig:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def help(cls, name: str) -> str:
        """The documentation of one field."""
        return str(cls.field(name).metadata["help"])

    @classmethod
    def field(cls, name: str) -> dataclasses.Field[Any]:
        """The dataclass field ``name`` (its metadata documents it)."""
        for f in dataclasses.fields(cls):
            if f.name == name:
                return f
        raise KeyError(name)


@dataclass(frozen=True)
class SettingChange:
    """A field whose value differs from the saved model's (see
    :meth:`A3CConfig.changes_from`)."""

    field: str
    kind: str
    """One of :data:`RESUME_KINDS`."""
    old: Any
    new: Any

    def describe(self, name: Callable[[str], str] = str) -> str:
        """``name old -> new``, with the field written as ``name(field)``."""
        return f"{name(self.field)} {_shown(self.old)} -> {_shown(self.new)}"


def _shown(value: Any) -> str:
    if value is None:
        return "curriculum"  # the only field whose value may be None
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


# -- validation helpers --------------------------------------------------------
def _check_types(cfg: A3CConfig) -> None:
    """Every field holds a value of its declared type (a config may come from
    any JSON file): ints are not bools, floats may be ints, lists hold strings."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        kind = str(f.type)
        if kind == "list[str]":
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
            expected = "a list of names"
        elif kind == "str | None":
            ok = value is None or isinstance(value, str)
            expected = "a name or null"
        elif kind == "str":
            ok = isinstance(value, str)
            expected = "a string"
        elif kind == "bool":
            ok = isinstance(value, bool)
            expected = "true or false"
        elif kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
            expected = "an integer"
        elif kind == "float":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            expected = "a number"
        else:  # pragma: no cover - a new field of a new type
            raise TypeError(f"A3CConfig.{f.name} has unsupported type {kind}")
        if not ok:
            shown = repr(value)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise ConfigError(f"{field_name(f.name)} must be {expected}; got {shown}")


def _one_of(cfg: A3CConfig, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(cfg, name)
    if value not in choices:
        raise ConfigError(
            f"{field_name(name)} must be one of {', '.join(choices)}; got {value!r}"
        )


def _int_in(cfg: A3CConfig, name: str, low: int, high: int) -> None:
    value = getattr(cfg, name)
    if not low <= value <= high:
        raise ConfigError(
            f"{field_name(name)} must be an integer from {low} to {high}; got {value!r}"
        )


def _number_in(
    cfg: A3CConfig, name: str, low: float, high: float, low_open: bool = False
) -> None:
    value = getattr(cfg, name)
    in_range = (value > low if low_open else value >= low) and value <= high
    if not in_range or math.isnan(value):
        left = "(" if low_open else "["
        right = "]" if math.isfinite(high) else ")"
        raise ConfigError(
            f"{field_name(name)} must be in {left}{low}, {high}{right}; got {value!r}"
        )
