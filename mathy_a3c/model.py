"""The actor-critic network and its compiled forward and gradient functions.

Inputs follow :class:`mathy_a3c.envs.Observation`. Every node (listed inorder,
so node ``i`` is mask column ``i``) gets an embedding of its type id plus a
projection of its value and of the problem type and time. A stack of residual
dilated 1-D convolutions mixes neighbouring nodes; a pooled summary of the
whole expression is added back to every node. A per-node head scores the 7
rules at that node, giving ``7 x 128`` logits laid out rule-major like the
action mask. A pooled value head gives ``V(s)``.

Invalid actions are removed from the softmax: their logits are replaced by a
large negative number (``tf.where`` on the mask), never multiplied.

All TensorFlow work runs in ``tf.function``s with fixed input signatures, so a
rollout step or an update never retraces.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers, ops  # noqa: E402

from .envs import ACTION_SIZE, MAX_NODES, NODE_VOCAB, NUM_RULES, TYPE_SIZE, Observation
from .types import LossTerms

#: Logit given to invalid actions: exp() of it is exactly 0 in float32.
MASKED_LOGIT = -1e9
#: Dilations of the residual convolution stack (receptive field 15 nodes).
DILATIONS = (1, 2, 4)


def build_model(model_size: int = 64) -> keras.Model:
    """A Keras actor-critic: inputs -> (masked policy logits [B, 896], value [B])."""
    d = model_size
    nodes = keras.Input((MAX_NODES,), dtype="int32", name="nodes")
    values = keras.Input((MAX_NODES,), dtype="float32", name="values")
    ptype = keras.Input((TYPE_SIZE,), dtype="float32", name="type")
    time = keras.Input((1,), dtype="float32", name="time")
    mask = keras.Input((ACTION_SIZE,), dtype="float32", name="mask")

    present = ops.expand_dims(ops.cast(ops.not_equal(nodes, 0), "float32"), -1)
    context = layers.Dense(d, name="context")(layers.Concatenate()([ptype, time]))
    x = layers.Embedding(NODE_VOCAB, d, name="node_embedding")(nodes)
    x = x + layers.Dense(d, name="value_projection")(ops.expand_dims(values, -1))
    x = ops.relu(x + ops.expand_dims(context, 1)) * present
    for i, dilation in enumerate(DILATIONS):
        h = layers.Conv1D(
            d,
            3,
            padding="same",
            dilation_rate=dilation,
            activation="relu",
            name=f"conv_{i}",
        )(x)
        x = (x + h) * present
    count = ops.maximum(ops.sum(present, axis=1), 1.0)
    pooled = ops.sum(x, axis=1) / count
    summary = layers.Dense(d, activation="relu", name="summary")(pooled)
    x = layers.Dense(d, activation="relu", name="policy_hidden")(
        x + ops.expand_dims(summary, 1)
    )
    per_node = layers.Dense(NUM_RULES, name="policy_head")(x)  # [B, nodes, rules]
    logits = ops.reshape(ops.transpose(per_node, (0, 2, 1)), (-1, ACTION_SIZE))
    masked = ops.where(mask > 0, logits, MASKED_LOGIT)
    value_hidden = layers.Dense(d, activation="relu", name="value_hidden")(
        layers.Concatenate()([pooled, ops.max(x, axis=1), context])
    )
    value = ops.squeeze(layers.Dense(1, name="value_head")(value_hidden), -1)
    return keras.Model(
        inputs=[nodes, values, ptype, time, mask],
        outputs=[masked, value],
        name="actor_critic",
    )


def observation_signature() -> list[tf.TensorSpec]:
    """Input signature of a batch of observations (any batch size)."""
    return [
        tf.TensorSpec([None, MAX_NODES], tf.int32),
        tf.TensorSpec([None, MAX_NODES], tf.float32),
        tf.TensorSpec([None, TYPE_SIZE], tf.float32),
        tf.TensorSpec([None, 1], tf.float32),
        tf.TensorSpec([None, ACTION_SIZE], tf.float32),
    ]


class ActorCritic:
    """A Keras actor-critic model with compiled forward and gradient calls.

    Loss weights are fixed at construction so the gradient function is traced
    once. The loss is ``policy + value_coef * value - entropy_coef * entropy``
    where the policy term uses a detached advantage, the value term is the mean
    squared error to the returns, and the entropy is that of the masked policy.
    """

    def __init__(
        self,
        model_size: int = 64,
        entropy_coef: float = 0.01,
        value_coef: float = 0.5,
        max_grad_norm: float = 0.5,
    ) -> None:
        self.model = build_model(model_size)
        self.variables = list(self.model.trainable_variables)
        obs_sig = observation_signature()
        batch = tf.TensorSpec([None], tf.float32)
        actions = tf.TensorSpec([None], tf.int32)

        @tf.function(input_signature=obs_sig)
        def forward(nodes, values, ptype, time, mask):
            logits, value = self.model(
                [nodes, values, ptype, time, mask], training=False
            )
            return logits, value

        @tf.function(input_signature=[*obs_sig, actions, batch, batch])
        def gradients(nodes, values, ptype, time, mask, act, advantages, returns):
            with tf.GradientTape() as tape:
                logits, value = self.model(
                    [nodes, values, ptype, time, mask], training=True
                )
                log_probs = tf.nn.log_softmax(logits)
                chosen = tf.gather(log_probs, act, batch_dims=1)
                probs = tf.exp(log_probs)
                entropy = -tf.reduce_sum(
                    tf.where(mask > 0, probs * log_probs, 0.0), axis=-1
                )
                policy_loss = -tf.reduce_mean(chosen * tf.stop_gradient(advantages))
                value_loss = tf.reduce_mean(tf.square(returns - value))
                entropy_mean = tf.reduce_mean(entropy)
                total = (
                    policy_loss + value_coef * value_loss - entropy_coef * entropy_mean
                )
            grads = tape.gradient(total, self.variables)
            clipped, norm = tf.clip_by_global_norm(grads, max_grad_norm)
            return clipped, policy_loss, value_loss, entropy_mean, total, norm

        self._forward = forward
        self._gradients = gradients

    # ------------------------------------------------------------------
    def step(self, observation: Observation) -> tuple[np.ndarray, float]:
        """Masked logits [ACTION_SIZE] and value for a single observation."""
        logits, value = self._forward(*(np.expand_dims(a, 0) for a in observation))
        return logits.numpy()[0], float(value.numpy()[0])

    def predict(self, batch: Observation) -> tuple[np.ndarray, np.ndarray]:
        """Masked logits [B, ACTION_SIZE] and values [B] for a batch."""
        logits, value = self._forward(*batch)
        return logits.numpy(), value.numpy()

    def gradients(
        self,
        batch: Observation,
        actions: np.ndarray,
        advantages: np.ndarray,
        returns: np.ndarray,
    ) -> tuple[list[tf.Tensor], LossTerms]:
        """Clipped gradients of the A3C loss on a rollout, and the loss terms."""
        grads, pi, v, ent, total, norm = self._gradients(
            *batch,
            np.asarray(actions, np.int32),
            np.asarray(advantages, np.float32),
            np.asarray(returns, np.float32),
        )
        terms = LossTerms(float(pi), float(v), float(ent), float(total), float(norm))
        return list(grads), terms

    def get_weights(self) -> list[np.ndarray]:
        return [v.numpy() for v in self.variables]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        for variable, value in zip(self.variables, weights, strict=True):
            variable.assign(value)


def masked_probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax of masked logits in float64 (masked actions get probability 0)."""
    z = logits.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=-1, keepdims=True)


class GlobalModel:
    """The shared model and the one optimizer that updates it.

    ``apply`` and ``copy_to`` take a lock, so gradients from different workers
    are applied one at a time and a worker never copies half-updated weights.
    """

    def __init__(
        self,
        network: ActorCritic,
        learning_rate: float,
    ) -> None:
        import threading

        self.network = network
        self.optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
        self.optimizer.build(network.variables)
        self.lock = threading.Lock()
        grad_sig = [tf.TensorSpec(v.shape, v.dtype) for v in network.variables]

        @tf.function(input_signature=[grad_sig])
        def apply(grads):
            self.optimizer.apply_gradients(zip(grads, network.variables, strict=True))

        self._apply = apply

    def apply(self, grads: list[tf.Tensor]) -> None:
        with self.lock:
            self._apply(grads)

    def copy_to(self, local: ActorCritic) -> None:
        with self.lock:
            for target, source in zip(
                local.variables, self.network.variables, strict=True
            ):
                target.assign(source.value)

    def snapshot(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Model weights and optimizer variables, read consistently."""
        with self.lock:
            weights = self.network.get_weights()
            opt = [v.numpy() for v in self.optimizer.variables]
        return weights, opt
