"""The A3C loss of one rollout.

::

    loss = policy_loss + value_coef * value_loss - entropy_coef * entropy
    policy_loss = -mean(log pi(a_t | s_t) * stop_gradient(A_t))
    value_loss  = mean((R_t - V(s_t))^2)
    entropy     = mean(entropy of the masked policy at s_t)

``R_t`` are the n-step returns and ``A_t`` the advantages
(:func:`mathy_a3c.returns.advantages_and_returns`). The entropy sums over the
valid actions only: masked actions have probability 0 and add nothing.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf


class Loss(NamedTuple):
    """The loss and its parts, as tensors."""

    total: tf.Tensor
    policy: tf.Tensor
    value: tf.Tensor
    entropy: tf.Tensor


def a3c_loss(
    logits: tf.Tensor,
    mask: tf.Tensor,
    values: tf.Tensor,
    actions: tf.Tensor,
    advantages: tf.Tensor,
    returns: tf.Tensor,
    value_coef: float,
    entropy_coef: float,
) -> Loss:
    """The A3C loss of a rollout: masked ``logits`` [T, A] and ``values`` [T]
    of its states, the ``actions`` [T] taken, their ``advantages`` and
    ``returns`` [T]."""
    log_probs = tf.nn.log_softmax(logits)
    chosen = tf.gather(log_probs, actions, batch_dims=1)
    probs = tf.exp(log_probs)
    entropy = -tf.reduce_sum(tf.where(mask > 0, probs * log_probs, 0.0), axis=-1)
    policy_loss = -tf.reduce_mean(chosen * tf.stop_gradient(advantages))
    value_loss = tf.reduce_mean(tf.square(returns - values))
    entropy_mean = tf.reduce_mean(entropy)
    total = policy_loss + value_coef * value_loss - entropy_coef * entropy_mean
    return Loss(total, policy_loss, value_loss, entropy_mean)
