"""Training configuration for the A3C agent.

This module imports neither TensorFlow nor mathy_envs, so the CLI can validate
arguments and print help instantly. Every field documents itself through its
``help`` metadata; ``mathy train --help`` shows the same text.
"""

from __future__ import annotations

import dataclasses
import math
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
#: How the learning rate changes over a run (see A3CConfig.lr_scale).
LR_SCHEDULES: tuple[str, ...] = ("linear", "constant")

#: Agents that ``mathy train`` knows.
AGENTS: tuple[str, ...] = ("a3c",)


class ConfigError(ValueError):
    """A configuration value is out of range; the message names field and range."""


def _field(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field whose help text travels with it (shown by the CLI)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help, **kwargs})


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
    )
    difficulty: str | None = _field(
        None,
        "Problem difficulty: " + ", ".join(DIFFICULTIES) + ". Unset, a curriculum "
        "starts each worker on easy and promotes or demotes it by its recent win "
        "rate on each topic.",
    )
    curriculum_window: int = _field(
        50,
        "Curriculum: a worker's episodes on a topic over which its win rate is "
        "measured; a promotion or demotion starts a new window.",
    )
    promote_at: float = _field(
        0.9,
        "Curriculum: move a worker to the next harder difficulty when its win "
        "rate over the window reaches this.",
    )
    demote_below: float = _field(
        0.5,
        "Curriculum: move a worker back to the next easier difficulty when its "
        "win rate over the window falls below this.",
    )
    model_dir: str = _field(
        "output/a3c",
        "Folder that receives the model, config.json, TensorBoard logs and profiles.",
    )

    # -- the A3C loop -----------------------------------------------------
    num_workers: int = _field(
        2,
        "Worker threads, each with its own environment and local model. More "
        "workers than cores still add diversity when worker_wait > 0.",
    )
    backend: str = _field(
        "threads",
        "Where workers run: threads (classic A3C: one process, shared model), "
        "processes (one OS process per worker, gradients sent to this process; "
        "scales past the GIL) or ray (Ray actors, on this machine or a cluster; "
        "needs pip install 'mathy-a3c[ray]').",
    )
    ray_address: str = _field(
        "",
        "With backend ray: the address of a Ray cluster to join (e.g. "
        "ray://head:10001). Empty starts a local Ray runtime for the run.",
    )
    update_interval: int = _field(
        16,
        "Steps a worker rolls out before it computes gradients and updates the "
        "global model (an episode's end also triggers an update).",
    )
    worker_wait: float = _field(
        0.0,
        "Milliseconds every worker except worker 0 sleeps between actions.",
    )
    max_eps: int = _field(
        2000, "Episodes to train for, counted across all workers (exact)."
    )
    max_seconds: float = _field(
        0.0,
        "Stop starting new episodes after this many seconds of training; episodes "
        "under way still finish. 0 means no time limit (max_eps alone decides).",
    )

    # -- the loss ---------------------------------------------------------
    gamma: float = _field(0.99, "Discount factor for rewards, in (0, 1].")
    gae_lambda: float = _field(
        1.0,
        "Lambda for generalized advantage estimation, in [0, 1]. 1.0 gives the "
        "classic A3C n-step returns bootstrapped from the value of the last state.",
    )
    lr: float = _field(3e-4, "Learning rate of the global Adam optimizer.")
    lr_schedule: str = _field(
        "linear",
        "How the learning rate changes during a run: 'linear' anneals it from lr "
        "to 0 over the run's budget (max_eps episodes, or max_seconds if that "
        "ends the run sooner), as in the A3C paper; 'constant' keeps lr.",
    )
    entropy_coef: float = _field(
        0.01, "Weight of the entropy bonus that keeps the policy exploring."
    )
    value_coef: float = _field(0.5, "Weight of the value (critic) loss.")
    max_grad_norm: float = _field(
        0.5, "Gradients are clipped to this global norm before they are applied."
    )

    # -- the model --------------------------------------------------------
    model_size: int = _field(
        64,
        "Width of the model: embedding size, convolution channels and head units "
        "(for gym topics: the units of each hidden layer of the MLPs).",
    )

    # -- run control and output -------------------------------------------
    seed: int = _field(
        0,
        "Seed for problem generation, action sampling and weight initialisation. "
        "Worker N uses seed + N.",
    )
    save_every_s: float = _field(
        60.0,
        "Seconds between periodic checkpoints (the model is also saved at the end).",
    )
    profile: bool = _field(
        False, "Write a cProfile file, worker_N.profile, per worker into model_dir."
    )
    print_training: bool = _field(
        False, "Print worker 0's problem, every step it takes, and the outcome."
    )
    verbose: bool = _field(
        False,
        "Print a summary line for every worker's episodes, not only worker 0's.",
    )

    def __post_init__(self) -> None:
        if isinstance(self.topics, str):
            self.topics = [self.topics]
        self.topics = [
            t.strip() for item in self.topics for t in str(item).split(",") if t.strip()
        ]
        self.model_dir = str(self.model_dir)
        self.validate()

    # ---------------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`ConfigError` for the first invalid field."""
        if not self.topics:
            raise ConfigError(
                "topics must name at least one topic. Valid topics: " + TOPIC_CHOICES
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
        if self.difficulty is not None and self.difficulty not in DIFFICULTIES:
            raise ConfigError(
                f"difficulty must be one of {', '.join(DIFFICULTIES)}, or unset for "
                f"the curriculum; got {self.difficulty!r}"
            )
        if self.is_gym and self.difficulty is not None:
            raise ConfigError(
                f"difficulty applies to Mathy topics only; {self.topics[0]} has "
                f"none (got difficulty {self.difficulty!r})"
            )
        _int_at_least(self, "curriculum_window", 1)
        _number_in(self, "promote_at", 0.0, 1.0, low_open=True)
        _number_in(self, "demote_below", 0.0, 1.0)
        if self.demote_below >= self.promote_at:
            raise ConfigError(
                f"demote_below must be below promote_at; got demote_below "
                f"{self.demote_below!r} and promote_at {self.promote_at!r}"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}; "
                f"got {self.lr_schedule!r}"
            )
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"backend must be one of {', '.join(BACKENDS)}; got {self.backend!r}"
            )
        if not self.model_dir.strip():
            raise ConfigError("model_dir must be a folder path; got an empty string")
        _int_at_least(self, "num_workers", 1)
        _int_at_least(self, "update_interval", 1)
        _int_at_least(self, "max_eps", 1)
        _int_at_least(self, "model_size", 4)
        _int_at_least(self, "seed", 0)
        _number_in(self, "worker_wait", 0.0, math.inf)
        _number_in(self, "max_seconds", 0.0, math.inf)
        _number_in(self, "gamma", 0.0, 1.0, low_open=True)
        _number_in(self, "gae_lambda", 0.0, 1.0)
        _number_in(self, "lr", 0.0, 1.0, low_open=True)
        _number_in(self, "entropy_coef", 0.0, math.inf)
        _number_in(self, "value_coef", 0.0, math.inf)
        _number_in(self, "max_grad_norm", 0.0, math.inf, low_open=True)
        _number_in(self, "save_every_s", 0.0, math.inf, low_open=True)
        for name in ("profile", "print_training", "verbose"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"{name} must be true or false; got {getattr(self, name)!r}"
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
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> A3CConfig:
        """Build a config from :meth:`to_dict` output, rejecting unknown keys."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"Unknown config field(s) {', '.join(unknown)}. "
                f"Valid fields: {', '.join(sorted(known))}"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> A3CConfig:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def help(cls, name: str) -> str:
        """The documentation of one field."""
        for f in dataclasses.fields(cls):
            if f.name == name:
                return str(f.metadata["help"])
        raise KeyError(name)


def _int_at_least(cfg: A3CConfig, name: str, low: int) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}; got {value!r}")


def _number_in(
    cfg: A3CConfig, name: str, low: float, high: float, low_open: bool = False
) -> None:
    value = getattr(cfg, name)
    ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
    in_range = ok_type and (value > low if low_open else value >= low) and value <= high
    if not in_range or (ok_type and math.isnan(value)):
        left = "(" if low_open else "["
        right = "]" if math.isfinite(high) else ")"
        raise ConfigError(
            f"{name} must be in {left}{low}, {high}{right}; got {value!r}"
        )
