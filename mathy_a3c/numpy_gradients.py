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

from typing import Any, NamedTuple

import numpy as np

from .envs import MAX_NODES, NUM_RULES
from .numpy_actor import DILATIONS, FEATURE_KERNELS, Layout, Trace
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


def _qkv_kernel(w: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([w[f"{p}/kernel"] for p in _QKV], axis=1)


def _qkv_bias(w: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([w[f"{p}/bias"] for p in _QKV])


class _Places:
    """Where each node of a packed rollout is: its state (``row``) and its
    place in it (``place``), for states of ``lengths`` nodes."""

    def __init__(self, lengths: list[int]) -> None:
        self.lengths = np.array(lengths)
        self.count = len(lengths)
        ends = np.cumsum(self.lengths)
        self.starts = ends - self.lengths
        self.total = int(ends[-1])
        self.row = np.repeat(np.arange(self.count), self.lengths)
        self.place = np.arange(self.total) - self.starts[self.row]
        self.per_row = self.lengths.astype(_F)[:, None]
        self.longest = max(lengths)
        #: [T, n]: which places of a state padded to the longest are real.
        self.real = np.arange(self.longest)[None, :] < self.lengths[:, None]
        #: [T, n]: the packed index of each real place (0 for padding).
        self.spread = np.where(
            self.real, self.starts[:, None] + np.arange(self.longest), 0
        )
        self._made_sides: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _sides(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        """Which nodes have a neighbour ``r`` places before, and after, in
        their own state: two [N, 1] columns of ones and zeros (made once
        for the forward and the backward pass)."""
        sides = self._made_sides.get(r)
        if sides is None:
            before = (self.place >= r).astype(_F)[:, None]
            after = (self.place + r < self.lengths[self.row]).astype(_F)[:, None]
            sides = self._made_sides[r] = before, after
        return sides

    def around(self, x: np.ndarray, r: int) -> np.ndarray:
        """[N, 3d]: each node's neighbours ``r`` places before and after it in
        its state (zeros outside: "same" padding), and itself, side by side:
        a convolution of dilation ``r`` is then one matmul."""
        d = x.shape[1]
        out = np.zeros((self.total, 3 * d), dtype=_F)
        out[:, d : 2 * d] = x
        if r < self.total:
            before, after = self._sides(r)
            np.multiply(x[:-r], before[r:], out=out[r:, :d])
            np.multiply(x[r:], after[:-r], out=out[:-r, 2 * d :])
        return out

    def around_gradient(self, g: np.ndarray, r: int) -> np.ndarray:
        """The gradient with respect to ``x`` of :meth:`around` ``(x, r)``,
        given the gradient ``g`` of its output."""
        d = g.shape[1] // 3
        out = g[:, d : 2 * d].copy()
        if r < self.total:
            before, after = self._sides(r)
            out[:-r] += g[r:, :d] * before[r:]
            out[r:] += g[:-r, 2 * d :] * after[:-r]
        return out


class _Pass(NamedTuple):
    """A rollout's forward pass, packed: what the loss and the backward pass
    read (see :class:`~mathy_a3c.numpy_actor.Trace` for each layer's)."""

    at: _Places
    types: np.ndarray
    features: np.ndarray
    context_in: np.ndarray
    first: np.ndarray
    convolutions: list[tuple[np.ndarray, np.ndarray]]
    """Each convolution's :meth:`_Places.around` input and its ReLU output."""
    attention_in: np.ndarray
    qkv: tuple[np.ndarray, np.ndarray, np.ndarray]
    """Queries, keys and values, [T, n, d] each (states padded to the longest)."""
    weights: np.ndarray
    """[T, n, n]; zero at padded keys."""
    attended: np.ndarray
    pooled: np.ndarray
    summary: np.ndarray
    hidden_in: np.ndarray
    hidden: np.ndarray
    peak: np.ndarray
    value_in: np.ndarray
    value_hidden: np.ndarray
    value: np.ndarray
    logits: np.ndarray
    """[T, ACTION_SIZE], masked."""
    masks: np.ndarray
    """[T, ACTION_SIZE], bool."""


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
        # Every call writes all of it: reused, it stays in the cache.
        self._grads = _Grads(layout, self.size)

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
        gradient of its total, clipped to ``max_grad_norm``, as a flat vector:
        this object's own, which its next call overwrites."""
        w = self._weights(flat_weights)
        return self._backward(
            w, self._forward(w, observations), actions, advantages, returns
        )

    def from_traces(
        self,
        flat_weights: np.ndarray,
        traces: list[Trace],
        actions: np.ndarray,
        advantages: np.ndarray,
        returns: np.ndarray,
    ) -> tuple[LossTerms, np.ndarray]:
        """The same, for a rollout whose states the
        :class:`~mathy_a3c.numpy_actor.NumpyActor` traced at these weights:
        the forward pass is read from the traces, not computed again."""
        w = self._weights(flat_weights)
        return self._backward(w, self._packed(traces), actions, advantages, returns)

    def _weights(self, flat_weights: np.ndarray) -> dict[str, np.ndarray]:
        return {path: flat_weights[a:b].reshape(s) for path, a, b, s in self.layout}

    def _forward(self, w: dict[str, np.ndarray], observations: list[Any]) -> _Pass:
        """The forward pass of a rollout's states, packed."""
        d = w["node_embedding/embeddings"].shape[1]
        at = _Places([max(1, int(np.count_nonzero(o.nodes))) for o in observations])

        def packed(field: str) -> np.ndarray:
            pairs = zip(observations, at.lengths, strict=True)
            return np.concatenate([getattr(o, field)[:n] for o, n in pairs])

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
            + context[at.row]
        )
        first = x
        convolutions = []
        for i, r in enumerate(DILATIONS):
            around = at.around(x, r)
            kernel = w[f"conv_{i}/kernel"].reshape(3 * d, d)
            h = _relu(around @ kernel + w[f"conv_{i}/bias"])
            convolutions.append((around, h))
            x = x + h
        attention_in = x
        q, k, v = np.split(x @ _qkv_kernel(w) + _qkv_bias(w), 3, axis=1)
        # Attention within each state: [T, n, n] with n its longest state.
        q_s, k_s, v_s = q[at.spread], k[at.spread], v[at.spread]
        scores = (q_s @ k_s.transpose(0, 2, 1)) * _F(1.0 / np.sqrt(d))
        scores[~np.broadcast_to(at.real[:, None, :], scores.shape)] = MASKED_LOGIT
        weights = np.exp(scores - scores.max(axis=2, keepdims=True))
        weights /= weights.sum(axis=2, keepdims=True)
        attended = (weights @ v_s)[at.row, at.place]
        x = x + _dense(attended, w, "attention_output")
        pooled = np.add.reduceat(x, at.starts, axis=0) / at.per_row
        summary = _relu(_dense(pooled, w, "summary"))
        hidden_in = x + summary[at.row]
        hidden = _relu(_dense(hidden_in, w, "policy_hidden"))
        per_node = _dense(hidden, w, "policy_head")  # [N, rules]
        peak = np.maximum.reduceat(hidden, at.starts, axis=0)
        value_in = np.concatenate([pooled, peak, context], axis=1)
        value_hidden = _relu(_dense(value_in, w, "value_hidden"))
        masks = np.stack([o.mask for o in observations]) > 0
        grid = np.full((at.count, NUM_RULES, MAX_NODES), MASKED_LOGIT, dtype=_F)
        grid[at.row, :, at.place] = per_node
        return _Pass(
            at,
            types,
            features,
            context_in,
            first,
            convolutions,
            attention_in,
            (q_s, k_s, v_s),
            weights,
            attended,
            pooled,
            summary,
            hidden_in,
            hidden,
            peak,
            value_in,
            value_hidden,
            _dense(value_hidden, w, "value_head")[:, 0],
            np.where(masks, grid.reshape(at.count, -1), _F(MASKED_LOGIT)),
            masks,
        )

    def _packed(self, traces: list[Trace]) -> _Pass:
        """The forward pass of a rollout's states, packed from their traces."""
        at = _Places([len(t.first) for t in traces])

        def packed(field: str) -> np.ndarray:
            return np.concatenate([getattr(t, field) for t in traces])

        def stacked(field: str) -> np.ndarray:  # np.stack, at half the cost
            rows = np.concatenate([getattr(t, field) for t in traces])
            return rows.reshape(at.count, -1)

        convolutions = []
        for i, r in enumerate(DILATIONS):
            x = np.concatenate([t.convolved[i][0] for t in traces])
            h = np.concatenate([t.convolved[i][1] for t in traces])
            convolutions.append((at.around(x, r), h))
        qkv = packed("qkv")
        d = qkv.shape[1] // 3
        q, k, v = qkv[:, :d], qkv[:, d : 2 * d], qkv[:, 2 * d :]
        weights = np.zeros((at.count, at.longest, at.longest), dtype=_F)
        for state, (t, n) in enumerate(zip(traces, at.lengths, strict=True)):
            weights[state, :n, :n] = t.weights
        return _Pass(
            at,
            np.concatenate(
                [
                    t.observation.nodes[:n]
                    for t, n in zip(traces, at.lengths, strict=True)
                ]
            ),
            packed("features"),
            stacked("context_in"),
            packed("first"),
            convolutions,
            packed("attention_in"),
            (q[at.spread], k[at.spread], v[at.spread]),
            weights,
            packed("attended"),
            stacked("pooled"),
            stacked("summary"),
            packed("hidden_in"),
            packed("hidden"),
            stacked("peak"),
            stacked("value_in"),
            stacked("value_hidden"),
            np.array([t.value for t in traces], dtype=_F),
            stacked("logits"),
            np.concatenate([t.observation.mask for t in traces]).reshape(at.count, -1)
            > 0,
        )

    def _backward(
        self,
        w: dict[str, np.ndarray],
        f: _Pass,
        actions: np.ndarray,
        advantages: np.ndarray,
        returns: np.ndarray,
    ) -> tuple[LossTerms, np.ndarray]:
        """The loss terms of a forward pass and their clipped gradient."""
        at, d = f.at, f.first.shape[1]
        count, row, place, starts = at.count, at.row, at.place, at.starts
        value = f.value
        # ------------------------------------------------------------ loss
        # Over [T, rules, n], n the longest state's nodes: every action on a
        # node beyond is masked in every state (probability exactly 0).
        grid = (count, NUM_RULES, MAX_NODES)
        logits = f.logits.reshape(grid)[:, :, : at.longest]
        masks = f.masks.reshape(grid)[:, :, : at.longest]
        shifted = logits - logits.max(axis=(1, 2), keepdims=True)
        exp = np.exp(shifted)
        total_exp = exp.sum(axis=(1, 2), keepdims=True)
        log_probs = shifted - np.log(total_exp)
        probs = exp / total_exp
        # A masked action's probability is exactly 0 (its logit is
        # MASKED_LOGIT), and its log-probability finite: its terms are 0.
        entropy = -(probs * log_probs).sum(axis=(1, 2))
        taken = (np.arange(count), *np.divmod(np.asarray(actions), MAX_NODES))
        advantages = np.asarray(advantages, dtype=_F)
        returns = np.asarray(returns, dtype=_F)
        policy_loss = -(log_probs[taken] * advantages).sum() / count
        value_loss = np.square(returns - value).sum() / count
        entropy_mean = entropy.sum() / count
        total = policy_loss + self.value_coef * value_loss
        total -= self.entropy_coef * entropy_mean

        # -------------------------------------------------------- backward
        # d total / d logits: -A (onehot - p) / T from the policy term, and
        # the entropy's -p (log p + H), for valid actions only.
        chosen = np.zeros_like(probs)
        chosen[taken] = 1.0
        g_logits = -advantages[:, None, None] * (chosen - probs)
        g_logits -= self.entropy_coef * (-probs * (log_probs + entropy[:, None, None]))
        g_logits *= masks / _F(count)
        g_per_node = g_logits[row, :, place]
        g_value = (2.0 * self.value_coef / count) * (value - returns)

        grads = self._grads
        g_value_hidden = grads.dense(
            "value_head", f.value_hidden, g_value[:, None], w
        ) * (f.value_hidden > 0)
        g_value_in = grads.dense("value_hidden", f.value_in, g_value_hidden, w)
        g_pooled = g_value_in[:, :d]
        g_peak = g_value_in[:, d : 2 * d]
        g_context = g_value_in[:, 2 * d :]
        hidden = f.hidden
        g_hidden = grads.dense("policy_head", hidden, g_per_node, w)
        tied = hidden == f.peak[row]
        shares = np.add.reduceat(tied.astype(_F), starts, axis=0)
        g_hidden += tied * (g_peak / shares)[row]
        g_hidden *= hidden > 0
        g_x = grads.dense("policy_hidden", f.hidden_in, g_hidden, w)
        g_summary = np.add.reduceat(g_x, starts, axis=0) * (f.summary > 0)
        g_pooled = g_pooled + grads.dense("summary", f.pooled, g_summary, w)
        g_x = g_x + (g_pooled / at.per_row)[row]
        g_attended = grads.dense("attention_output", f.attended, g_x, w)
        q_s, k_s, v_s = f.qkv
        weights = f.weights
        g_attended_s = np.zeros((count, at.longest, d), dtype=_F)
        g_attended_s[row, place] = g_attended
        g_weights = g_attended_s @ v_s.transpose(0, 2, 1)
        g_v = (weights.transpose(0, 2, 1) @ g_attended_s)[row, place]
        g_scores = weights * (g_weights - (g_weights * weights).sum(2, keepdims=True))
        g_scores *= _F(1.0 / np.sqrt(d))
        g_q = (g_scores @ k_s)[row, place]
        g_k = (g_scores.transpose(0, 2, 1) @ q_s)[row, place]
        g_qkv = np.concatenate([g_q, g_k, g_v], axis=1)
        g_qkv_kernel = f.attention_in.T @ g_qkv
        g_qkv_bias = g_qkv.sum(0)
        for i, name in enumerate(_QKV):
            part = slice(i * d, (i + 1) * d)
            grads.by_path[f"{name}/kernel"][...] = g_qkv_kernel[:, part]
            grads.by_path[f"{name}/bias"][...] = g_qkv_bias[part]
        g_x += g_qkv @ _qkv_kernel(w).T
        for i in reversed(range(len(DILATIONS))):
            around, h = f.convolutions[i]
            g_h = g_x * (h > 0)
            kernel = w[f"conv_{i}/kernel"].reshape(3 * d, d)
            grads.by_path[f"conv_{i}/kernel"][...] = (around.T @ g_h).reshape(3, d, d)
            grads.by_path[f"conv_{i}/bias"][...] = g_h.sum(0)
            g_x += at.around_gradient(g_h @ kernel.T, DILATIONS[i])
        g_first = g_x * (f.first > 0)
        g_context = g_context + np.add.reduceat(g_first, starts, axis=0)
        grads.dense("context", f.context_in, g_context, w)
        g_projection = f.features.T @ g_first
        for index, name in enumerate(FEATURE_KERNELS):
            grads.by_path[f"{name}/kernel"][...] = g_projection[index]
        grads.by_path["value_projection/bias"][...] = g_first.sum(0)
        embedding = grads.by_path["node_embedding/embeddings"]
        vocab = np.arange(embedding.shape[0])
        embedding[...] = (f.types[None, :] == vocab[:, None]).astype(_F) @ g_first

        # ------------------------------------------------------------ clip
        norm = float(np.sqrt(np.dot(grads.flat, grads.flat)))
        clipped = grads.flat
        if norm > self.max_grad_norm:
            clipped *= _F(self.max_grad_norm / norm)
        terms = LossTerms(
            float(policy_loss),
            float(value_loss),
            float(entropy_mean),
            float(total),
            norm,
        )
        return terms, clipped
