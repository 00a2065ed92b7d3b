"""The clipped gradient of the A3C loss for the Mathy network, in numpy.

A worker's update differentiates the loss of a rollout of a few states.
TensorFlow's gradient call on such a batch costs about 2 ms of fixed
overhead plus the tensors made for it; the same arithmetic here, written out
by hand, costs a fraction of that (``benchmarks/phases.py``), and a worker
process then spends its time in the environment instead.

The rollout's states are *packed*: their real nodes one after another in one
``[N, d]`` matrix (no padding), each node knowing its state (``row``) and its
place in it (``place``). Per-node layers are then one matmul for the whole
rollout, a convolution reads its neighbours by shifting the matrix, attention
is one ``[N, N]`` product with the pairs of different states masked out, and
per-state pooling is ``np.add.reduceat`` over the states' node ranges.

It mirrors :func:`mathy_a3c.networks.build_model` and
:func:`mathy_a3c.losses.a3c_loss` exactly, including where TensorFlow's
gradients make a choice: a ReLU passes gradient where its output is
positive, and a max shares its gradient equally between tied maxima.
``tests/test_numpy_gradients.py`` pins the loss, its terms and the clipped
gradient to the TensorFlow ones. No TensorFlow here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .envs import MAX_NODES, NUM_RULES
from .numpy_actor import DILATIONS, FEATURE_KERNELS, Layout
from .policy import MASKED_LOGIT
from .types import LossTerms

_F = np.float32
#: The attention's query, key and value layers, computed as one.
_QKV = ("attention_query", "attention_key", "attention_value")


def _relu(a: np.ndarray) -> np.ndarray:
    return np.maximum(a, _F(0.0))


def _dense(x: np.ndarray, w: dict[str, np.ndarray], name: str) -> np.ndarray:
    return x @ w[f"{name}/kernel"] + w[f"{name}/bias"]


class _Grads:
    """Gradients by variable path, written into one flat float32 vector."""

    def __init__(self, layout: Layout, size: int) -> None:
        self.flat = np.zeros(size, dtype=_F)
        self.by_path = {
            path: self.flat[a:b].reshape(shape) for path, a, b, shape in layout
        }

    def dense(
        self, name: str, x: np.ndarray, g: np.ndarray, w: dict[str, np.ndarray]
    ) -> np.ndarray:
        """Record a dense layer's kernel and bias gradients; return the
        gradient with respect to its input ``x``, given that of its output."""
        kernel = w[f"{name}/kernel"]
        self.by_path[f"{name}/kernel"][...] = x.reshape(-1, kernel.shape[0]).T @ (
            g.reshape(-1, kernel.shape[1])
        )
        self.by_path[f"{name}/bias"][...] = g.reshape(-1, kernel.shape[1]).sum(0)
        return g @ kernel.T


class NumpyGradients:
    """The A3C loss and its clipped gradient for the Mathy network.

    Built for one network layout (:attr:`mathy_a3c.model.ActorCritic.layout`)
    and one loss (its coefficients and ``max_grad_norm``); call it with the
    weights to differentiate at, as a flat vector in that layout.
    """

    def __init__(
        self,
        layout: Layout,
        value_coef: float,
        entropy_coef: float,
        max_grad_norm: float,
    ) -> None:
        self.layout = layout
        self.size = layout[-1][2]
        self.value_coef = _F(value_coef)
        self.entropy_coef = _F(entropy_coef)
        self.max_grad_norm = max_grad_norm

    def __call__(
        self,
        flat_weights: np.ndarray,
        observations: list[Any],
        actions: np.ndarray,
        advantages: np.ndarray,
        returns: np.ndarray,
    ) -> tuple[LossTerms, np.ndarray]:
        """The loss terms of a rollout (its :class:`~mathy_a3c.envs.Observation`
        list, the actions taken, their advantages and returns) and the
        gradient of its total, clipped to ``max_grad_norm``, as a flat vector."""
        w = {path: flat_weights[a:b].reshape(s) for path, a, b, s in self.layout}
        d = w["node_embedding/embeddings"].shape[1]
        count = len(observations)
        lengths = np.array(
            [max(1, int(np.count_nonzero(o.nodes))) for o in observations]
        )
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        total_nodes = int(lengths.sum())
        row = np.repeat(np.arange(count), lengths)
        place = np.arange(total_nodes) - starts[row]
        per_row = lengths.astype(_F)[:, None]

        def packed(field: str) -> np.ndarray:
            pairs = zip(observations, lengths, strict=True)
            return np.concatenate([getattr(o, field)[:n] for o, n in pairs])

        # -------------------------------------------------------- forward
        types = packed("nodes")
        # The five scalar node features, each with a kernel of one row.
        features = np.stack(
            [packed(f) for f in ("values", "last", "like", "factors", "depth")], 1
        )
        projection = np.concatenate([w[f"{k}/kernel"] for k in FEATURE_KERNELS])
        context_in = np.stack(
            [np.concatenate([o.type, o.time, o.history]) for o in observations]
        )
        context = _dense(context_in, w, "context")
        x = _relu(
            w["node_embedding/embeddings"][types]
            + features @ projection
            + w["value_projection/bias"]
            + context[row]
        )
        first = x
        convolutions = []
        for i, r in enumerate(DILATIONS):
            # "same" padding: node i sees nodes i - r, i, i + r of its state.
            before = place >= r
            after = place + r < lengths[row]
            around = np.zeros((total_nodes, 3 * d), dtype=_F)
            around[:, d : 2 * d] = x
            if r < total_nodes:
                around[r:, :d] = x[:-r] * before[r:, None]
                around[:-r, 2 * d :] = x[r:] * after[:-r, None]
            kernel = w[f"conv_{i}/kernel"].reshape(3 * d, d)
            h = _relu(around @ kernel + w[f"conv_{i}/bias"])
            convolutions.append((around, h, before, after))
            x = x + h
        attention_in = x
        qkv_kernel = np.concatenate([w[f"{p}/kernel"] for p in _QKV], axis=1)
        qkv_bias = np.concatenate([w[f"{p}/bias"] for p in _QKV])
        q, k, v = np.split(x @ qkv_kernel + qkv_bias, 3, axis=1)
        # Attention within each state: [T, n, n] with n its longest state.
        longest = int(lengths.max())
        real = np.arange(longest)[None, :] < lengths[:, None]  # [T, n]
        spread = np.where(real, starts[:, None] + np.arange(longest), 0)
        q_s, k_s, v_s = q[spread], k[spread], v[spread]
        scale = _F(1.0 / np.sqrt(d))
        scores = (q_s @ k_s.transpose(0, 2, 1)) * scale
        scores[~np.broadcast_to(real[:, None, :], scores.shape)] = MASKED_LOGIT
        weights = np.exp(scores - scores.max(axis=2, keepdims=True))
        weights /= weights.sum(axis=2, keepdims=True)
        attended = (weights @ v_s)[row, place]
        x = x + _dense(attended, w, "attention_output")
        pooled = np.add.reduceat(x, starts, axis=0) / per_row
        summary = _relu(_dense(pooled, w, "summary"))
        hidden_in = x + summary[row]
        hidden = _relu(_dense(hidden_in, w, "policy_hidden"))
        per_node = _dense(hidden, w, "policy_head")  # [N, rules]
        peak = np.maximum.reduceat(hidden, starts, axis=0)
        value_in = np.concatenate([pooled, peak, context], axis=1)
        value_hidden = _relu(_dense(value_in, w, "value_hidden"))
        value = _dense(value_hidden, w, "value_head")[:, 0]

        # ------------------------------------------------------------ loss
        masks = np.stack([o.mask for o in observations]) > 0
        grid = np.full((count, NUM_RULES, MAX_NODES), MASKED_LOGIT, dtype=_F)
        grid[row, :, place] = per_node
        logits = np.where(masks, grid.reshape(count, -1), _F(MASKED_LOGIT))
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total_exp = exp.sum(axis=1, keepdims=True)
        log_probs = shifted - np.log(total_exp)
        probs = exp / total_exp
        entropy = -np.where(masks, probs * log_probs, _F(0.0)).sum(axis=1)
        taken = np.arange(count), np.asarray(actions)
        advantages = np.asarray(advantages, dtype=_F)
        returns = np.asarray(returns, dtype=_F)
        policy_loss = -np.mean(log_probs[taken] * advantages)
        value_loss = np.mean(np.square(returns - value))
        entropy_mean = np.mean(entropy)
        total = policy_loss + self.value_coef * value_loss
        total -= self.entropy_coef * entropy_mean

        # -------------------------------------------------------- backward
        # d total / d logits: -A (onehot - p) / T from the policy term, and
        # the entropy's -p (log p + H), for valid actions only.
        chosen = np.zeros_like(probs)
        chosen[taken] = 1.0
        g_logits = -advantages[:, None] * (chosen - probs)
        g_logits -= self.entropy_coef * (
            -probs * (np.where(masks, log_probs, _F(0.0)) + entropy[:, None])
        )
        g_logits *= masks / _F(count)
        g_per_node = g_logits.reshape(count, NUM_RULES, MAX_NODES)[row, :, place]
        g_value = (2.0 * self.value_coef / count) * (value - returns)

        grads = _Grads(self.layout, self.size)
        g_value_hidden = grads.dense(
            "value_head", value_hidden, g_value[:, None], w
        ) * (value_hidden > 0)
        g_value_in = grads.dense("value_hidden", value_in, g_value_hidden, w)
        g_pooled, g_peak, g_context = np.split(g_value_in, 3, axis=1)
        g_hidden = grads.dense("policy_head", hidden, g_per_node, w)
        tied = hidden == peak[row]
        shares = np.add.reduceat(tied.astype(_F), starts, axis=0)
        g_hidden += tied * (g_peak / shares)[row]
        g_hidden *= hidden > 0
        g_x = grads.dense("policy_hidden", hidden_in, g_hidden, w)
        g_summary = np.add.reduceat(g_x, starts, axis=0) * (summary > 0)
        g_pooled = g_pooled + grads.dense("summary", pooled, g_summary, w)
        g_x = g_x + (g_pooled / per_row)[row]
        g_attended = grads.dense("attention_output", attended, g_x, w)
        g_attended_s = np.zeros((count, longest, d), dtype=_F)
        g_attended_s[row, place] = g_attended
        g_weights = g_attended_s @ v_s.transpose(0, 2, 1)
        g_v = (weights.transpose(0, 2, 1) @ g_attended_s)[row, place]
        g_scores = weights * (g_weights - (g_weights * weights).sum(2, keepdims=True))
        g_scores *= scale
        g_q = (g_scores @ k_s)[row, place]
        g_k = (g_scores.transpose(0, 2, 1) @ q_s)[row, place]
        g_qkv = np.concatenate([g_q, g_k, g_v], axis=1)
        g_qkv_kernel = attention_in.T @ g_qkv
        g_qkv_bias = g_qkv.sum(0)
        for i, name in enumerate(_QKV):
            part = slice(i * d, (i + 1) * d)
            grads.by_path[f"{name}/kernel"][...] = g_qkv_kernel[:, part]
            grads.by_path[f"{name}/bias"][...] = g_qkv_bias[part]
        g_x = g_x + g_qkv @ qkv_kernel.T
        for i in reversed(range(len(DILATIONS))):
            r = DILATIONS[i]
            around, h, before, after = convolutions[i]
            g_h = g_x * (h > 0)
            kernel = w[f"conv_{i}/kernel"].reshape(3 * d, d)
            grads.by_path[f"conv_{i}/kernel"][...] = (around.T @ g_h).reshape(3, d, d)
            grads.by_path[f"conv_{i}/bias"][...] = g_h.sum(0)
            g_around = g_h @ kernel.T
            g_x = g_x + g_around[:, d : 2 * d]
            if r < total_nodes:
                g_x[:-r] += g_around[r:, :d] * before[r:, None]
                g_x[r:] += g_around[:-r, 2 * d :] * after[:-r, None]
        g_first = g_x * (first > 0)
        g_context = g_context + np.add.reduceat(g_first, starts, axis=0)
        grads.dense("context", context_in, g_context, w)
        g_projection = features.T @ g_first
        for index, name in enumerate(FEATURE_KERNELS):
            grads.by_path[f"{name}/kernel"][...] = g_projection[index]
        grads.by_path["value_projection/bias"][...] = g_first.sum(0)
        embedding = grads.by_path["node_embedding/embeddings"]
        vocab = np.arange(embedding.shape[0])
        embedding[...] = (types[None, :] == vocab[:, None]).astype(_F) @ g_first

        # ------------------------------------------------------------ clip
        norm = float(np.sqrt(np.dot(grads.flat, grads.flat)))
        clipped = grads.flat * _F(self.max_grad_norm / max(norm, self.max_grad_norm))
        terms = LossTerms(
            float(policy_loss),
            float(value_loss),
            float(entropy_mean),
            float(total),
            norm,
        )
        return terms, clipped
