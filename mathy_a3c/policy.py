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
    """Draw an action from the masked softmax, looking at valid actions only."""
    valid = np.flatnonzero(mask)
    z = logits[valid].astype(np.float64)
    p = np.exp(z - z.max())
    cdf = np.cumsum(p)
    pick = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
    return int(valid[min(pick, len(valid) - 1)])


def masked_probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax of masked logits in float64 (masked actions get probability 0)."""
    z = logits.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=-1, keepdims=True)
