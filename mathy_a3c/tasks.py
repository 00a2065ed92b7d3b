"""The task a worker plays, by topic: a Mathy topic or a ``gym:ENV_ID``.

Both kinds offer the same small surface to the worker: ``reset(difficulty)``,
``step(action)``, ``next_topic``, ``topic``, ``difficulty``, ``problem`` and the
``--show`` lines ``describe_start()`` / ``describe_step(n, result)``.
"""

from __future__ import annotations

from .config import DIFFICULTIES, A3CConfig
from .envs import MathyTask
from .gym_envs import GymSpec, GymTask, gym_spec

Task = MathyTask | GymTask


def make_task(
    config: A3CConfig, seed: int, offset: int = 0, observe_ends: bool = True
) -> Task:
    """The task of one worker; ``offset`` staggers the topic rotation; see
    :attr:`~mathy_a3c.envs.MathyTask.observe_ends` (gym tasks always observe)."""
    if config.is_gym:
        return GymTask(config.topics[0], seed=seed)
    return MathyTask(
        config.topics,
        config.difficulty or DIFFICULTIES[0],
        seed=seed,
        offset=offset,
        observe_ends=observe_ends,
    )


def task_spec(config: A3CConfig) -> GymSpec | None:
    """What the model must know of the task: ``None`` for Mathy topics (one
    model fits them all), the observation and action sizes of a gym topic."""
    return gym_spec(config.topics[0]) if config.is_gym else None
