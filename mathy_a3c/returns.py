"""Returns and advantages for one rollout, in plain numpy.

A rollout is up to ``update_interval`` consecutive steps of one episode. It is
either cut short (bootstrap from the value of the state after the last step)
or ends the episode (bootstrap 0).
"""

from __future__ import annotations

import numpy as np


def discounted_returns(
    rewards: np.ndarray, bootstrap: float, gamma: float
) -> np.ndarray:
    """n-step returns: ``R_t = r_t + gamma * R_{t+1}``, with ``R_T = bootstrap``."""
    returns = np.zeros(len(rewards), dtype=np.float32)
    running = float(bootstrap)
    for t in range(len(rewards) - 1, -1, -1):
        running = float(rewards[t]) + gamma * running
        returns[t] = running
    return returns


def advantages_and_returns(
    rewards: np.ndarray,
    values: np.ndarray,
    bootstrap: float,
    gamma: float,
    gae_lambda: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalized advantage estimates and the value targets that go with them.

    ``delta_t = r_t + gamma * V(s_{t+1}) - V(s_t)`` and
    ``A_t = delta_t + gamma * lambda * A_{t+1}``; the value target is
    ``A_t + V(s_t)``. With ``gae_lambda=1`` the targets are exactly
    :func:`discounted_returns` and ``A_t = R_t - V(s_t)``: classic A3C.
    """
    rewards = np.asarray(rewards, dtype=np.float32)
    values = np.asarray(values, dtype=np.float32)
    if rewards.shape != values.shape:
        raise ValueError(f"rewards {rewards.shape} and values {values.shape} differ")
    advantages = np.zeros_like(rewards)
    next_value = float(bootstrap)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        delta = float(rewards[t]) + gamma * next_value - float(values[t])
        running = delta + gamma * gae_lambda * running
        advantages[t] = running
        next_value = float(values[t])
    return advantages, advantages + values
