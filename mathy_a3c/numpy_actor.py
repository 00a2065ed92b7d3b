"""The networks' forward passes in numpy, for acting one state at a time.

A TensorFlow call costs about a millisecond per step on CPU, mostly per-op
overhead; the same arithmetic in numpy on a trimmed expression is several
times faster. Workers act with these mirrors of their local model and compute
gradients with the Keras model. ``tests/test_model.py`` pins both to the
Keras outputs.

They read weights from one flat float32 vector laid out as
:attr:`mathy_a3c.model.ActorCritic.layout` says: ``(path, start, end, shape)``
per variable, the path being the Keras variable's (``conv_0/kernel``).
No TensorFlow here.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .envs import MAX_NODES, NUM_RULES
from .policy import MASKED_LOGIT

#: ``(path, start, end, shape)`` of each variable in a flat weight vector.
Layout = list[tuple[str, int, int, tuple[int, ...]]]
_ZERO = np.float32(0.0)
_MASKED = np.float32(MASKED_LOGIT)
#: The logits of a state with no valid action, [rule][node].
_ALL_MASKED = np.full((NUM_RULES, MAX_NODES), MASKED_LOGIT, np.float32)
#: Dilations of the residual convolution stack (see mathy_a3c.networks).
DILATIONS = (1, 2, 4)
#: The layers that project each scalar node feature (one-row kernels), in
#: the order of the features: values, last action, like terms, like
#: factors, depth.
FEATURE_KERNELS = (
    "value_projection",
    "last_action",
    "like_terms",
    "like_factors",
    "node_depth",
)


def _by_path(layout: Layout, flat: np.ndarray) -> dict[str, np.ndarray]:
    return {path: flat[a:b].reshape(shape) for path, a, b, shape in layout}


class VectorNumpyActor:
    """The vector (gym topic) network's forward pass in numpy."""

    def __init__(self, layout: Layout, flat: np.ndarray) -> None:
        self.layout = layout
        self.refresh(flat)

    def refresh(self, flat: np.ndarray) -> None:
        """Take new weights (a flat vector laid out as :attr:`layout`)."""
        w = _by_path(self.layout, flat)
        self.policy = [(w[f"policy_{i}/kernel"], w[f"policy_{i}/bias"]) for i in (0, 1)]
        self.value = [(w[f"value_{i}/kernel"], w[f"value_{i}/bias"]) for i in (0, 1)]
        self.policy_head = (w["policy_head/kernel"], w["policy_head/bias"])
        self.value_head = (w["value_head/kernel"][:, 0], w["value_head/bias"][0])

    def __call__(self, obs: Any) -> tuple[np.ndarray, float]:
        """Masked logits [n_actions] and value for one observation."""
        p = v = obs.vector
        for kernel, bias in self.policy:
            p = np.tanh(p @ kernel + bias)
        for kernel, bias in self.value:
            v = np.tanh(v @ kernel + bias)
        logits = (p @ self.policy_head[0] + self.policy_head[1]).astype(np.float32)
        logits[obs.mask <= 0] = MASKED_LOGIT
        return logits, float(v @ self.value_head[0] + self.value_head[1])

    def trace(self, obs: Any) -> VectorTrace:
        """The forward pass for one observation, as :meth:`NumpyActor.trace`
        gives it (a gym network's gradients are TensorFlow's: they read only
        the observation)."""
        return VectorTrace(obs, *self(obs))


class VectorTrace(NamedTuple):
    """One observation's forward pass through a vector network."""

    observation: Any
    logits: np.ndarray
    value: float


class Trace(NamedTuple):
    """One state's forward pass through the Mathy network (``n`` nodes, width
    ``d``): its outputs and what the layers computed on the way.

    A worker's update differentiates the loss at the weights it acted with,
    so the gradient (:meth:`mathy_a3c.numpy_gradients.NumpyGradients.from_traces`)
    starts from these instead of computing the forward pass again.
    """

    observation: Any
    features: np.ndarray
    """[n, 5] the scalar node features (see :data:`FEATURE_KERNELS`)."""
    context_in: np.ndarray
    """[TYPE_SIZE + 1 + HISTORY_SIZE] problem type, time and history."""
    first: np.ndarray
    """[n, d] the input layer's output."""
    convolved: tuple[tuple[np.ndarray, np.ndarray], ...]
    """Each convolution's input and its ReLU output, both [n, d]."""
    attention_in: np.ndarray
    """[n, d] the convolution stack's output."""
    qkv: np.ndarray
    """[n, 3d] the attention's queries, keys and values."""
    weights: np.ndarray
    """[n, n] the attention weights (each row sums to 1)."""
    attended: np.ndarray
    """[n, d] the attention weights times the values."""
    pooled: np.ndarray
    """[d] the mean over nodes after attention."""
    summary: np.ndarray
    """[d] the summary layer's output."""
    hidden_in: np.ndarray
    """[n, d] each node plus the summary: the policy's hidden layer's input."""
    hidden: np.ndarray
    """[n, d] the policy's hidden layer's output."""
    peak: np.ndarray
    """[d] its maximum over nodes."""
    value_in: np.ndarray
    """[3d] pooled, peak and context: the value head's input."""
    value_hidden: np.ndarray
    """[d] the value head's hidden layer's output."""
    logits: np.ndarray
    """[ACTION_SIZE] the masked logits."""
    value: float


class NumpyActor:
    """The Mathy network's forward pass in numpy, for one observation."""

    def __init__(self, layout: Layout, flat: np.ndarray) -> None:
        self.layout = layout
        self.refresh(flat)

    def refresh(self, flat: np.ndarray) -> None:
        """Take new weights (a flat vector laid out as :attr:`layout`)."""
        w = _by_path(self.layout, flat)
        self.embedding = w["node_embedding/embeddings"]
        self.value_kernel = w["value_projection/kernel"][0]
        self.value_bias = w["value_projection/bias"]
        self.last_kernel = w["last_action/kernel"][0]
        self.like_kernel = w["like_terms/kernel"][0]
        self.factors_kernel = w["like_factors/kernel"][0]
        self.depth_kernel = w["node_depth/kernel"][0]
        #: The five one-row kernels of the scalar node features (values,
        #: last action, like terms, like factors, depth), stacked [5, d].
        self.projection = np.concatenate(
            [w[f"{name}/kernel"] for name in FEATURE_KERNELS]
        )
        self.context = (w["context/kernel"], w["context/bias"])
        self.convs = [
            (w[f"conv_{i}/kernel"], w[f"conv_{i}/bias"], dilation)
            for i, dilation in enumerate(DILATIONS)
        ]
        #: Each convolution's three taps [3, d, d] side by side [d, 3d] (the
        #: node ``r`` places before, the node, the node ``r`` places after):
        #: one matrix product per convolution in :meth:`trace`.
        self.wide_convs = [
            (np.concatenate(list(kernel), axis=1), bias, dilation)
            for kernel, bias, dilation in self.convs
        ]

        self.attention = [
            (w[f"attention_{p}/kernel"], w[f"attention_{p}/bias"])
            for p in ("query", "key", "value", "output")
        ]
        #: Query, key and value kernels side by side [d, 3d], and biases.
        self.qkv = (
            np.concatenate([kernel for kernel, _ in self.attention[:3]], axis=1),
            np.concatenate([bias for _, bias in self.attention[:3]]),
        )
        self.summary = (w["summary/kernel"], w["summary/bias"])
        self.policy_hidden = (w["policy_hidden/kernel"], w["policy_hidden/bias"])
        self.policy_head = (w["policy_head/kernel"], w["policy_head/bias"])
        self.value_hidden = (w["value_hidden/kernel"], w["value_hidden/bias"])
        self.value_head = (w["value_head/kernel"][:, 0], w["value_head/bias"][0])
        d = self.embedding.shape[1]
        self.scale = np.float32(1.0 / np.sqrt(d))

    def __call__(self, obs: Any) -> tuple[np.ndarray, float]:
        """Masked logits [ACTION_SIZE] and value for one :class:`Observation`."""
        trace = self.trace(obs)
        return trace.logits, trace.value

    def trace(self, obs: Any) -> Trace:
        """The forward pass for one :class:`Observation`, with what it
        computed on the way (see :class:`Trace`)."""
        # In place wherever a result is not kept: at a few dozen nodes the
        # arrays are small, and every numpy call and new array counts.
        n = max(1, int(np.count_nonzero(obs.nodes)))
        context_in = np.concatenate([obs.type, obs.time, obs.history])
        context = context_in @ self.context[0] + self.context[1]
        features = np.array(
            [obs.values[:n], obs.last[:n], obs.like[:n], obs.factors[:n]]
            + [obs.depth[:n]]
        ).T
        x = self.embedding[obs.nodes[:n]]
        x += features @ self.projection
        x += self.value_bias + context
        np.maximum(x, _ZERO, out=x)
        first = x
        d = x.shape[1]
        convolved = []
        for kernel, bias, r in self.wide_convs:
            # "same" padding: node i sees nodes i - r, i and i + r (zeros outside).
            taps = x @ kernel
            h = taps[:, d : 2 * d].copy()
            if r < n:
                h[r:] += taps[: n - r, :d]
                h[: n - r] += taps[r:, 2 * d :]
            h += bias
            out = np.maximum(h, _ZERO, out=h)
            convolved.append((x, out))
            x = x + out
        attention_in = x
        qkv = x @ self.qkv[0]
        qkv += self.qkv[1]
        scores = qkv[:, :d] @ qkv[:, d : 2 * d].T
        scores *= self.scale
        scores -= scores.max(axis=1, keepdims=True)
        weights = np.exp(scores, out=scores)
        weights /= weights.sum(axis=1, keepdims=True)
        attended = weights @ qkv[:, 2 * d :]
        wo, bo = self.attention[3]
        x = attended @ wo
        x += attention_in
        x += bo
        pooled = x.sum(axis=0)
        pooled /= n
        summary = pooled @ self.summary[0]
        summary += self.summary[1]
        np.maximum(summary, _ZERO, out=summary)
        hidden_in = x + summary
        hidden = hidden_in @ self.policy_hidden[0]
        hidden += self.policy_hidden[1]
        np.maximum(hidden, _ZERO, out=hidden)
        per_node = hidden @ self.policy_head[0]  # [n, rules]
        per_node += self.policy_head[1]
        logits = _ALL_MASKED.copy()  # node places beyond the n stay masked
        valid = obs.mask.reshape(NUM_RULES, MAX_NODES)[:, :n] > 0
        logits[:, :n] = np.where(valid, per_node.T, _MASKED)
        flat = logits.reshape(-1)
        peak = hidden.max(axis=0)
        value_in = np.concatenate([pooled, peak, context])
        value_hidden = value_in @ self.value_hidden[0]
        value_hidden += self.value_hidden[1]
        np.maximum(value_hidden, _ZERO, out=value_hidden)
        value = float(value_hidden @ self.value_head[0] + self.value_head[1])
        return Trace(
            obs,
            features,
            context_in,
            first,
            tuple(convolved),
            attention_in,
            qkv,
            weights,
            attended,
            pooled,
            summary,
            hidden_in,
            hidden,
            peak,
            value_in,
            value_hidden,
            flat,
            value,
        )

    def batch(self, observations: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Masked logits [B, ACTION_SIZE] and values [B] for several
        observations at once: padded to the longest, padding masked out of
        every layer as in the Keras model (a test pins the two together)."""
        count = len(observations)
        lengths = [max(1, int(np.count_nonzero(o.nodes))) for o in observations]
        n = max(lengths)
        nodes = np.stack([o.nodes[:n] for o in observations])
        present = (nodes != 0).astype(np.float64)[:, :, None]  # [B, n, 1]
        ctx_in = np.stack(
            [np.concatenate([o.type, o.time, o.history]) for o in observations]
        )
        context = ctx_in @ self.context[0] + self.context[1]  # [B, d]
        values = np.stack([o.values[:n] for o in observations])
        last = np.stack([o.last[:n] for o in observations])
        like = np.stack([o.like[:n] for o in observations])
        factors = np.stack([o.factors[:n] for o in observations])
        depth = np.stack([o.depth[:n] for o in observations])
        x = self.embedding[nodes] + values[:, :, None] * self.value_kernel
        x += last[:, :, None] * self.last_kernel
        x += like[:, :, None] * self.like_kernel
        x += factors[:, :, None] * self.factors_kernel
        x += depth[:, :, None] * self.depth_kernel
        x = np.maximum(x + self.value_bias + context[:, None, :], 0.0) * present
        for kernel, bias, r in self.convs:
            h = x @ kernel[1]
            if r < n:
                h[:, r:] += x[:, : n - r] @ kernel[0]
                h[:, : n - r] += x[:, r:] @ kernel[2]
            x = (x + np.maximum(h + bias, 0.0)) * present
        (wq, bq), (wk, bk), (wv, bv), (wo, bo) = self.attention
        scores = (x @ wq + bq) @ np.swapaxes(x @ wk + bk, 1, 2) / np.sqrt(x.shape[2])
        scores += (np.swapaxes(present, 1, 2) - 1.0) * 1e9  # no attention to padding
        scores = np.exp(scores - scores.max(axis=2, keepdims=True))
        scores /= scores.sum(axis=2, keepdims=True)
        x = (x + (scores @ (x @ wv + bv)) @ wo + bo) * present
        pooled = x.sum(axis=1) / np.maximum(present.sum(axis=1), 1.0)  # [B, d]
        summary = np.maximum(pooled @ self.summary[0] + self.summary[1], 0.0)
        x = np.maximum(
            (x + summary[:, None, :]) @ self.policy_hidden[0] + self.policy_hidden[1],
            0.0,
        )
        per_node = x @ self.policy_head[0] + self.policy_head[1]  # [B, n, rules]
        logits = np.full((count, NUM_RULES, MAX_NODES), MASKED_LOGIT, np.float32)
        logits[:, :, :n] = np.swapaxes(per_node, 1, 2)
        flat = logits.reshape(count, -1)
        masks = np.stack([o.mask for o in observations])
        flat[masks <= 0] = MASKED_LOGIT
        peak = (x * present - (1.0 - present) * 1e9).max(axis=1)
        hidden_in = np.concatenate([pooled, peak, context], axis=1)
        hidden = np.maximum(
            hidden_in @ self.value_hidden[0] + self.value_hidden[1], 0.0
        )
        return flat, hidden @ self.value_head[0] + self.value_head[1]
