"""The actor-critic networks, as Keras models.

Inputs follow :class:`mathy_a3c.envs.Observation`. Every node (listed inorder,
so node ``i`` is mask column ``i``) gets an embedding of its type id plus
projections of its value, of its depth in the tree, of its marks (the last
action's node, a like term, a like factor) and of the problem type, time and
history. A stack of residual dilated 1-D convolutions mixes neighbouring
nodes; a pooled summary of the whole expression is added back to every node.
A per-node head scores the 7 rules at that node, giving ``7 x 128`` logits
laid out rule-major like the action mask. A pooled value head gives ``V(s)``.

Invalid actions are removed from the softmax: their logits are replaced by a
large negative number (``tf.where`` on the mask), never multiplied.

Gym topics (``gym:ENV_ID``) get :func:`build_vector_model` instead: actor and
critic MLPs over one observation vector, masked the same way.

Every initializer is seeded from the ``seed`` argument, so building a network
draws nothing from a global random generator: a program that builds or loads
a model keeps its own random state.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from .envs import (
    ACTION_SIZE,
    HISTORY_SIZE,
    MAX_NODES,
    NODE_VOCAB,
    NUM_RULES,
    TYPE_SIZE,
    Observation,
)
from .numpy_actor import DILATIONS
from .policy import MASKED_LOGIT


def _seeds(seed: int) -> Iterator[int]:
    """One seed per initializer, in the order the layers are built."""
    rng = np.random.default_rng(seed)
    while True:
        yield int(rng.integers(2**31 - 1))


def build_model(model_size: int = 64, seed: int = 0) -> keras.Model:
    """A Keras actor-critic: inputs -> (per-node rule logits [B, N, 7], value [B]).

    ``N`` (nodes) may be anything up to ``MAX_NODES``: padding nodes are zeroed
    after every layer and excluded from pooling, so trimming trailing padding
    gives exactly the same outputs for the real nodes, with less work.
    """
    d = model_size
    seeds = _seeds(seed)

    def dense(units: int, name: str, **kwargs: Any) -> layers.Dense:
        init = keras.initializers.GlorotUniform(seed=next(seeds))
        return layers.Dense(units, name=name, kernel_initializer=init, **kwargs)

    nodes = keras.Input((None,), dtype="int32", name="nodes")
    values = keras.Input((None,), dtype="float32", name="values")
    ptype = keras.Input((TYPE_SIZE,), dtype="float32", name="type")
    time = keras.Input((1,), dtype="float32", name="time")
    history = keras.Input((HISTORY_SIZE,), dtype="float32", name="history")
    last = keras.Input((None,), dtype="float32", name="last")
    like = keras.Input((None,), dtype="float32", name="like")
    factors = keras.Input((None,), dtype="float32", name="factors")
    depth = keras.Input((None,), dtype="float32", name="depth")

    present = ops.expand_dims(ops.cast(ops.not_equal(nodes, 0), "float32"), -1)
    context = dense(d, "context")(layers.Concatenate()([ptype, time, history]))
    x = layers.Embedding(
        NODE_VOCAB,
        d,
        name="node_embedding",
        embeddings_initializer=keras.initializers.RandomUniform(
            -0.05, 0.05, seed=next(seeds)
        ),
    )(nodes)
    x = x + dense(d, "value_projection")(ops.expand_dims(values, -1))
    x = x + dense(d, "last_action", use_bias=False)(ops.expand_dims(last, -1))
    x = x + dense(d, "like_terms", use_bias=False)(ops.expand_dims(like, -1))
    x = x + dense(d, "like_factors", use_bias=False)(ops.expand_dims(factors, -1))
    x = x + dense(d, "node_depth", use_bias=False)(ops.expand_dims(depth, -1))
    x = ops.relu(x + ops.expand_dims(context, 1)) * present
    for i, dilation in enumerate(DILATIONS):
        h = layers.Conv1D(
            d,
            3,
            padding="same",
            dilation_rate=dilation,
            activation="relu",
            name=f"conv_{i}",
            kernel_initializer=keras.initializers.GlorotUniform(seed=next(seeds)),
        )(x)
        x = (x + h) * present
    # One self-attention layer: lets a term find its like terms anywhere.
    q = dense(d, "attention_query")(x)
    k = dense(d, "attention_key")(x)
    v = dense(d, "attention_value")(x)
    scores = ops.matmul(q, ops.transpose(k, (0, 2, 1))) / float(np.sqrt(d))
    scores = scores + (ops.transpose(present, (0, 2, 1)) - 1.0) * 1e9  # no padding
    attended = ops.matmul(ops.softmax(scores, axis=-1), v)
    x = (x + dense(d, "attention_output")(attended)) * present
    count = ops.maximum(ops.sum(present, axis=1), 1.0)
    pooled = ops.sum(x, axis=1) / count
    summary = dense(d, "summary", activation="relu")(pooled)
    x = dense(d, "policy_hidden", activation="relu")(x + ops.expand_dims(summary, 1))
    per_node = dense(NUM_RULES, "policy_head")(x)
    peak = ops.max(x * present - (1.0 - present) * 1e9, axis=1)
    value_hidden = dense(d, "value_hidden", activation="relu")(
        layers.Concatenate()([pooled, peak, context])
    )
    value = ops.squeeze(dense(1, "value_head")(value_hidden), -1)
    return keras.Model(
        inputs=[nodes, values, ptype, time, history, last, like, factors, depth],
        outputs=[per_node, value],
        name="actor_critic",
    )


def masked_policy_logits(per_node: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Flat rule-major logits [B, 7 * MAX_NODES] with invalid actions removed.

    Invalid actions get ``MASKED_LOGIT`` (their softmax probability is exactly
    0); their raw logits are replaced, never multiplied.
    """
    missing = MAX_NODES - tf.shape(per_node)[1]
    padded = tf.pad(per_node, [[0, 0], [0, missing], [0, 0]])
    logits = tf.reshape(tf.transpose(padded, [0, 2, 1]), [-1, ACTION_SIZE])
    return tf.where(mask > 0, logits, MASKED_LOGIT)


def build_vector_model(
    obs_size: int, n_actions: int, model_size: int = 64, seed: int = 0
) -> keras.Model:
    """An actor-critic for vector observations (gym topics):
    vector -> (logits [B, n_actions], value [B]).

    Separate actor and critic MLPs of two ``tanh`` layers each, with
    orthogonal initialisation (gain sqrt(2) for hidden layers, 0.01 for the
    policy head, 1 for the value head), as CleanRL and Stable-Baselines3 use
    for CartPole-like tasks.
    """
    seeds = _seeds(seed)

    def orthogonal(gain: float) -> keras.initializers.Initializer:
        return keras.initializers.Orthogonal(gain=gain, seed=next(seeds))

    vector = keras.Input((obs_size,), dtype="float32", name="vector")

    def mlp(prefix: str) -> tf.Tensor:
        h = vector
        for i in range(2):
            h = layers.Dense(
                model_size,
                activation="tanh",
                kernel_initializer=orthogonal(float(np.sqrt(2.0))),
                name=f"{prefix}_{i}",
            )(h)
        return h

    logits = layers.Dense(
        n_actions, kernel_initializer=orthogonal(0.01), name="policy_head"
    )(mlp("policy"))
    value = layers.Dense(1, kernel_initializer=orthogonal(1.0), name="value_head")(
        mlp("value")
    )
    return keras.Model(
        inputs=[vector],
        outputs=[logits, ops.squeeze(value, -1)],
        name="vector_actor_critic",
    )


def mask_logits(logits: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Vector logits with invalid actions removed (as for Mathy's)."""
    return tf.where(mask > 0, logits, MASKED_LOGIT)


def vector_signature(obs_size: int, n_actions: int) -> list[tf.TensorSpec]:
    """Input signature of a batch of vector observations and their masks."""
    return [
        tf.TensorSpec([None, obs_size], tf.float32),
        tf.TensorSpec([None, n_actions], tf.float32),
    ]


def observation_signature() -> list[tf.TensorSpec]:
    """Input signature of a batch of observations (any batch size and length)."""
    return [
        tf.TensorSpec([None, None], tf.int32),
        tf.TensorSpec([None, None], tf.float32),
        tf.TensorSpec([None, TYPE_SIZE], tf.float32),
        tf.TensorSpec([None, 1], tf.float32),
        tf.TensorSpec([None, HISTORY_SIZE], tf.float32),
        tf.TensorSpec([None, None], tf.float32),
        tf.TensorSpec([None, None], tf.float32),
        tf.TensorSpec([None, None], tf.float32),
        tf.TensorSpec([None, None], tf.float32),
        tf.TensorSpec([None, ACTION_SIZE], tf.float32),
    ]


def trimmed(batch: Observation) -> Observation:
    """Drop node columns that are padding in every observation of ``batch``."""
    used = int(np.count_nonzero(batch.nodes, axis=-1).max(initial=1))
    length = min(MAX_NODES, max(8, -(-used // 8) * 8))  # a multiple of 8
    if length >= batch.nodes.shape[-1]:
        return batch
    return batch._replace(
        nodes=batch.nodes[..., :length],
        values=batch.values[..., :length],
        last=batch.last[..., :length],
        like=batch.like[..., :length],
        factors=batch.factors[..., :length],
        depth=batch.depth[..., :length],
    )
