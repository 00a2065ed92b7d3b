"""Any installed Gymnasium environment with a Discrete action space, as a task.

A topic ``gym:ENV_ID`` (for example ``gym:CartPole-v1``) trains on
``gymnasium.make(ENV_ID)``. Observations are flattened with
``gymnasium.spaces.flatten`` (a Box becomes its values, a Discrete a one-hot),
so the model is an MLP over one vector. An action mask is used when the
environment gives one, in ``info["action_mask"]`` or through an
``action_masks()`` method (the sb3-contrib convention); otherwise every action
is valid.

Two things differ from Mathy topics, on purpose:

* A time limit (``truncated`` without ``terminated``) is not the end of the
  task, so the return bootstraps from the value of the last observation
  (:attr:`mathy_a3c.envs.StepResult.truncated`).
* The "win" flag is ``info["is_success"]`` when the environment reports it at
  the end of an episode; otherwise an episode is won when it lasted until the
  time limit (CartPole's definition of balancing the pole).

This module imports Gymnasium only when a gym topic is used, never TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .config import GYM_PREFIX, ConfigError
from .envs import StepResult


class GymTopicError(ConfigError):
    """A ``gym:`` topic names no installed environment, or an unusable one."""


class VectorObservation(NamedTuple):
    """Model inputs for one state of a gym topic (or a batch)."""

    vector: np.ndarray
    """float32 [obs_size]: the flattened observation."""
    mask: np.ndarray
    """float32 [n_actions]: 1 where the action is valid."""


@dataclass(frozen=True)
class GymSpec:
    """What the model needs to know about a gym topic."""

    topic: str
    obs_size: int
    n_actions: int


def env_id(topic: str) -> str:
    return topic[len(GYM_PREFIX) :]


def make_gym_env(topic: str, **kwargs: Any) -> Any:
    """``gymnasium.make`` for a ``gym:ENV_ID`` topic, with clear errors."""
    import gymnasium as gym

    name = env_id(topic)
    try:
        env = gym.make(name, **kwargs)
    except (gym.error.Error, ModuleNotFoundError, TypeError) as error:
        raise GymTopicError(
            f"Unknown Gymnasium environment {name!r} in topic {topic!r}: "
            f"{str(error).rstrip('.')}. "
            f"Installed ids include {', '.join(sorted(gym.registry)[:8])}, ..."
        ) from None
    spec_of(env, topic)  # raises for spaces the model cannot take
    return env


def spec_of(env: Any, topic: str) -> GymSpec:
    """The observation size and action count of ``env``; raises
    :class:`GymTopicError` for a non-Discrete action space."""
    from gymnasium import spaces

    if not isinstance(env.action_space, spaces.Discrete):
        env.close()
        raise GymTopicError(
            f"{topic} has action space {env.action_space}; A3C here needs a "
            f"Discrete action space"
        )
    try:
        size = int(spaces.flatdim(env.observation_space))
    except (NotImplementedError, ValueError, TypeError) as error:
        env.close()
        raise GymTopicError(
            f"{topic} has observation space {env.observation_space}, which "
            f"cannot be flattened into one vector ({error})"
        ) from None
    return GymSpec(topic, size, int(env.action_space.n))


def gym_spec(topic: str) -> GymSpec:
    """The :class:`GymSpec` of a topic (builds the environment once)."""
    env = make_gym_env(topic)
    try:
        return spec_of(env, topic)
    finally:
        env.close()


class GymTask:
    """One worker's Gymnasium environment: reset, step, observe.

    The environment is seeded with ``seed`` at the first reset; later resets
    continue its random stream, so a worker's episodes depend only on its seed.
    """

    def __init__(self, topic: str, seed: int, **make_kwargs: Any) -> None:
        from gymnasium import spaces

        self.topic = topic
        self.env = make_gym_env(topic, **make_kwargs)
        self.spec = spec_of(self.env, topic)
        self._flatten = lambda obs: spaces.flatten(self.env.observation_space, obs)
        self._masks_fn = getattr(self.env.unwrapped, "action_masks", None)
        self._all_valid = np.ones(self.spec.n_actions, np.float32)
        self.seed: int | None = int(seed)
        self.episode = 0
        self.problem = ""
        self.total = 0.0
        self.last_action = 0

    @property
    def next_topic(self) -> str:
        return self.topic

    @property
    def difficulty(self) -> str:
        return ""

    def _observe(self, obs: Any, info: dict[str, Any]) -> VectorObservation:
        vector = np.asarray(self._flatten(obs), np.float32).reshape(-1)
        mask = info.get("action_mask") if isinstance(info, dict) else None
        if mask is None and self._masks_fn is not None:
            mask = self._masks_fn()
        if mask is None:
            return VectorObservation(vector, self._all_valid)
        mask = np.asarray(mask, np.float32).reshape(-1)
        if mask.shape != self._all_valid.shape or not mask.any():
            raise GymTopicError(
                f"{self.topic} gave an action mask of shape {mask.shape} with "
                f"{int(mask.sum())} valid actions; expected {self.spec.n_actions} "
                f"entries, at least one valid"
            )
        return VectorObservation(vector, mask)

    def reset(self, difficulty: str | None = None) -> VectorObservation:
        """Start an episode (``difficulty`` is ignored: gym topics have none)."""
        obs, info = self.env.reset(seed=self.seed)
        self.seed = None
        self.episode += 1
        self.total = 0.0
        self.problem = f"{env_id(self.topic)} episode {self.episode}"
        return self._observe(obs, info)

    def step(self, action: int) -> StepResult:
        obs, reward, terminated, truncated, info = self.env.step(int(action))
        reward = float(reward)
        self.total += reward
        done = bool(terminated or truncated)
        if done and "is_success" in info:
            win = bool(info["is_success"])
        else:
            win = bool(truncated and not terminated)
        return StepResult(
            observation=self._observe(obs, info),
            reward=reward,
            done=done,
            win=win,
            rule=f"action {int(action)}",
            node=int(action),
            expression=f"return {self.total:.2f}",
            truncated=bool(truncated and not terminated),
        )

    def describe_start(self) -> str:
        return f"[{self.topic}] {self.problem}"

    def describe_step(self, number: int, result: StepResult) -> str:
        return (
            f"  {number:>3} | {result.rule:<10} | reward {result.reward:+.2f} | "
            f"{result.expression}"
        )

    def close(self) -> None:
        self.env.close()
