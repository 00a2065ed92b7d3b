"""Turning masked logits into actions and probabilities (numpy only).

Invalid actions carry the logit :data:`MASKED_LOGIT`, whose ``exp`` is exactly 0
in float32 (the networks put it there with ``tf.where`` on the mask, the numpy
actor by assignment): they can never be drawn.
"""

from __future__ import annotations

import numpy as np

#: Logit given to invalid actions: exp() of it is exactly 0 in float32.
MASKED_LOGIT = -1e9


def sample_action(
    logits: np.ndarray, mask: np.ndarray, rng: np.random.Generator
) -> int:
    """Draw an action from the masked softmax, looking at valid actions only.

    The Gumbel-max trick: the valid action whose logit plus independent
    Gumbel noise is largest is a draw from their softmax (no exponentials,
    no normalisation: a few numpy calls where a step costs a fraction of a
    millisecond)."""
    valid = np.flatnonzero(mask)
    noisy = logits[valid] + rng.gumbel(size=len(valid))
    return int(valid[np.argmax(noisy)])


def masked_probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax of masked logits in float64 (masked actions get probability 0)."""
    z = logits.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=-1, keepdims=True)
