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

Gym topics (``gym:ENV_ID``) get :func:`build_vector_model` instead: actor and
critic MLPs over one observation vector, masked the same way.

All TensorFlow work runs in ``tf.function``s with fixed input signatures, so a
rollout step or an update never retraces. The global optimizer (:class:`GlobalModel`)
runs Adam on flat numpy vectors (:mod:`mathy_a3c.flat_adam`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops
from tensorflow.python.eager import context

from .config import A3CConfig
from .envs import (
    ACTION_SIZE,
    HISTORY_SIZE,
    MAX_NODES,
    NODE_VOCAB,
    NUM_RULES,
    TYPE_SIZE,
    Observation,
)
from .flat_adam import FlatAdam
from .gym_envs import GymSpec
from .types import LossTerms

#: Logit given to invalid actions: exp() of it is exactly 0 in float32.
MASKED_LOGIT = -1e9
#: Dilations of the residual convolution stack (receptive field 15 nodes).
DILATIONS = (1, 2, 4)


def build_model(model_size: int = 64) -> keras.Model:
    """A Keras actor-critic: inputs -> (per-node rule logits [B, N, 7], value [B]).

    ``N`` (nodes) may be anything up to ``MAX_NODES``: padding nodes are zeroed
    after every layer and excluded from pooling, so trimming trailing padding
    gives exactly the same outputs for the real nodes, with less work.
    """
    d = model_size
    nodes = keras.Input((None,), dtype="int32", name="nodes")
    values = keras.Input((None,), dtype="float32", name="values")
    ptype = keras.Input((TYPE_SIZE,), dtype="float32", name="type")
    time = keras.Input((1,), dtype="float32", name="time")
    history = keras.Input((HISTORY_SIZE,), dtype="float32", name="history")
    last = keras.Input((None,), dtype="float32", name="last")

    present = ops.expand_dims(ops.cast(ops.not_equal(nodes, 0), "float32"), -1)
    context = layers.Dense(d, name="context")(
        layers.Concatenate()([ptype, time, history])
    )
    x = layers.Embedding(NODE_VOCAB, d, name="node_embedding")(nodes)
    x = x + layers.Dense(d, name="value_projection")(ops.expand_dims(values, -1))
    x = x + layers.Dense(d, use_bias=False, name="last_action")(
        ops.expand_dims(last, -1)
    )
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
    # One self-attention layer: lets a term find its like terms anywhere.
    q = layers.Dense(d, name="attention_query")(x)
    k = layers.Dense(d, name="attention_key")(x)
    v = layers.Dense(d, name="attention_value")(x)
    scores = ops.matmul(q, ops.transpose(k, (0, 2, 1))) / float(np.sqrt(d))
    scores = scores + (ops.transpose(present, (0, 2, 1)) - 1.0) * 1e9  # no padding
    attended = ops.matmul(ops.softmax(scores, axis=-1), v)
    x = (x + layers.Dense(d, name="attention_output")(attended)) * present
    count = ops.maximum(ops.sum(present, axis=1), 1.0)
    pooled = ops.sum(x, axis=1) / count
    summary = layers.Dense(d, activation="relu", name="summary")(pooled)
    x = layers.Dense(d, activation="relu", name="policy_hidden")(
        x + ops.expand_dims(summary, 1)
    )
    per_node = layers.Dense(NUM_RULES, name="policy_head")(x)
    peak = ops.max(x * present - (1.0 - present) * 1e9, axis=1)
    value_hidden = layers.Dense(d, activation="relu", name="value_hidden")(
        layers.Concatenate()([pooled, peak, context])
    )
    value = ops.squeeze(layers.Dense(1, name="value_head")(value_hidden), -1)
    return keras.Model(
        inputs=[nodes, values, ptype, time, history, last],
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
    obs_size: int, n_actions: int, model_size: int = 64
) -> keras.Model:
    """An actor-critic for vector observations (gym topics):
    vector -> (logits [B, n_actions], value [B]).

    Separate actor and critic MLPs of two ``tanh`` layers each, with
    orthogonal initialisation (gain sqrt(2) for hidden layers, 0.01 for the
    policy head, 1 for the value head), as CleanRL and Stable-Baselines3 use
    for CartPole-like tasks.
    """
    vector = keras.Input((obs_size,), dtype="float32", name="vector")
    hidden = keras.initializers.Orthogonal(gain=float(np.sqrt(2.0)))

    def mlp(prefix: str) -> tf.Tensor:
        h = vector
        for i in range(2):
            h = layers.Dense(
                model_size,
                activation="tanh",
                kernel_initializer=hidden,
                name=f"{prefix}_{i}",
            )(h)
        return h

    logits = layers.Dense(
        n_actions,
        kernel_initializer=keras.initializers.Orthogonal(gain=0.01),
        name="policy_head",
    )(mlp("policy"))
    value = layers.Dense(
        1, kernel_initializer=keras.initializers.Orthogonal(gain=1.0), name="value_head"
    )(mlp("value"))
    return keras.Model(
        inputs=[vector],
        outputs=[logits, ops.squeeze(value, -1)],
        name="vector_actor_critic",
    )


def _mask_logits(logits: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    return tf.where(mask > 0, logits, MASKED_LOGIT)


def _unchanged(batch: Any) -> Any:
    return batch


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
    )


def network_for(config: A3CConfig, spec: GymSpec | None) -> ActorCritic:
    """The actor-critic a config asks for (``spec`` from ``tasks.task_spec``)."""
    return ActorCritic(
        config.model_size,
        entropy_coef=config.entropy_coef,
        value_coef=config.value_coef,
        max_grad_norm=config.max_grad_norm,
        spec=spec,
    )


class FlatCall:
    """A concrete function called on its flat tensor inputs, returning its
    flat outputs.

    The public call binds and checks its arguments against the signature in
    Python: about 0.3 ms a call, all of it holding the GIL, more than 10% of
    a small gradient call. Inputs built to the signature need none of it, so
    this goes straight to TensorFlow's function call, as the concrete
    function itself does after binding. A TensorFlow whose internals differ
    (they are private) gets the public call (``fast`` is then ``False``);
    ``tests/test_model.py`` checks both agree and that the fast one is taken.
    """

    def __init__(self, concrete: Any) -> None:
        self.concrete = concrete
        try:
            atomic = concrete._inference_function
            self._name = atomic.name
            self._outputs = len(atomic.function_type.flat_outputs)
            self._call_function = context.context().call_function
            # Captured inputs are passed by the public call only.
            self.fast = not concrete.captured_inputs
        except AttributeError:
            self.fast = False

    def __call__(self, *inputs: tf.Tensor) -> list[tf.Tensor]:
        if self.fast:
            return self._call_function(self._name, list(inputs), self._outputs)
        return tf.nest.flatten(self.concrete(*inputs))


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
        spec: GymSpec | None = None,
    ) -> None:
        #: ``None`` for Mathy topics; the observation and action sizes of a
        #: gym topic, whose model is :func:`build_vector_model`.
        self.spec = spec
        if spec is None:
            self.model = build_model(model_size)
            obs_sig = observation_signature()
            to_logits: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] = (
                masked_policy_logits
            )
            self._prepare: Callable[[Any], Any] = trimmed
            self.action_size = ACTION_SIZE
        else:
            self.model = build_vector_model(spec.obs_size, spec.n_actions, model_size)
            obs_sig = vector_signature(spec.obs_size, spec.n_actions)
            to_logits = _mask_logits
            self._prepare = _unchanged
            self.action_size = spec.n_actions
        self.variables = list(self.model.trainable_variables)
        batch = tf.TensorSpec([None], tf.float32)
        actions = tf.TensorSpec([None], tf.int32)
        model = self.model

        @tf.function(input_signature=obs_sig)
        def forward(*inputs):
            outputs, value = model(list(inputs[:-1]), training=False)
            return to_logits(outputs, inputs[-1]), value

        #: Number of trainable parameters; flat vectors have this length.
        self.sizes = [int(np.prod(v.shape)) for v in self.variables]
        self.size = sum(self.sizes)
        ends = np.cumsum(self.sizes).tolist()
        #: ``(path, start, end, shape)`` of each variable in a flat vector.
        self.layout = [
            (v.path, end - size, end, tuple(v.shape))
            for v, size, end in zip(self.variables, self.sizes, ends, strict=True)
        ]
        flat_spec = tf.TensorSpec([self.size], tf.float32)

        # Gradients are taken with respect to a flat weight vector passed in
        # (Keras' stateless call), not the Keras variables: a worker resyncs
        # by keeping the global weights it was handed, with no assignment.
        @tf.function(input_signature=[flat_spec, *obs_sig, actions, batch, batch])
        def gradients(flat, *args):
            inputs, act, advantages, returns = args[:-3], args[-3], args[-2], args[-1]
            mask = inputs[-1]
            with tf.GradientTape() as tape:
                tape.watch(flat)
                weights = _unflatten(flat, self.variables)
                (outputs, value), _ = model.stateless_call(
                    weights,
                    model.non_trainable_variables,
                    list(inputs[:-1]),
                    training=True,
                )
                logits = to_logits(outputs, mask)
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
            # One dense vector: the embedding's rows are summed where a node
            # type repeats, so clipping sees the norm of the applied gradient.
            grads = tf.convert_to_tensor(tape.gradient(total, flat))
            (clipped,), norm = tf.clip_by_global_norm([grads], max_grad_norm)
            terms = tf.stack([policy_loss, value_loss, entropy_mean, total, norm])
            return terms, clipped

        # Calling the concrete functions skips tf.function's per-call argument
        # binding (about 0.25 ms a call).
        self._forward_fn, self._gradients_fn = forward, gradients
        self._forward = forward.get_concrete_function()
        self._gradients = gradients.get_concrete_function()
        self._run_gradients = FlatCall(self._gradients)
        self._last_flat_grads: tf.Tensor | None = None
        self._read = tf.function(lambda: [tf.identity(v) for v in self.variables])
        self._flat_weights = tf.function(lambda: _flatten(self.variables))

        @tf.function(input_signature=[flat_spec])
        def set_flat(flat):
            for variable, value in zip(
                self.variables, _unflatten(flat, self.variables), strict=True
            ):
                variable.assign(value)

        self._set_flat = set_flat.get_concrete_function()
        #: Weights handed over by :meth:`set_flat_weights` that the Keras
        #: variables have not received yet (they get them when next read).
        self._pending: np.ndarray | None = None

    # ------------------------------------------------------------------
    def step(self, observation: Any) -> tuple[np.ndarray, float]:
        """Masked logits [action_size] and value for a single observation."""
        one = type(observation)(*(np.expand_dims(a, 0) for a in observation))
        self._flush()
        logits, value = self._forward(*self._prepare(one))
        return logits.numpy()[0], float(value.numpy()[0])

    def predict(self, batch: Any) -> tuple[np.ndarray, np.ndarray]:
        """Masked logits [B, action_size] and values [B] for a batch."""
        self._flush()
        logits, value = self._forward(*self._prepare(batch))
        return logits.numpy(), value.numpy()

    def numpy_actor(self) -> NumpyActor | VectorNumpyActor:
        """A numpy mirror of this model's forward pass, for acting."""
        return NumpyActor(self) if self.spec is None else VectorNumpyActor(self)

    def compute_gradients(
        self,
        batch: Observation,
        actions: np.ndarray,
        advantages: np.ndarray,
        returns: np.ndarray,
        away: Callable[[], AbstractContextManager[Any]] = nullcontext,
    ) -> LossTerms:
        """Clipped gradients of the A3C loss on a rollout; returns the loss
        terms and keeps the gradients for :meth:`flat_gradients`.

        ``away()`` is entered around the TensorFlow call alone, after every
        input is a tensor: the part that needs no interpreter, which a worker
        thread lends to the others meanwhile (:meth:`mathy_a3c.turn.Turn.away`).
        """
        weights = self._pending
        if weights is None:
            weights = self._flat_weights().numpy()
        # Tensors made here cost less than the concrete function's own
        # conversion of numpy arguments.
        inputs = [
            tf.constant(weights),
            *(tf.constant(a) for a in self._prepare(batch)),
            tf.constant(actions, tf.int32),
            tf.constant(advantages, tf.float32),
            tf.constant(returns, tf.float32),
        ]
        with away():
            terms, self._last_flat_grads = self._run_gradients(*inputs)
        return LossTerms(*(float(t) for t in terms.numpy()))

    def gradients(
        self,
        batch: Observation,
        actions: np.ndarray,
        advantages: np.ndarray,
        returns: np.ndarray,
    ) -> tuple[list[np.ndarray], LossTerms]:
        """Clipped gradients of the A3C loss on a rollout (numpy), and the loss."""
        terms = self.compute_gradients(batch, actions, advantages, returns)
        parts = np.split(self.flat_gradients(), np.cumsum(self.sizes)[:-1])
        grads = [p.reshape(v.shape) for p, v in zip(parts, self.variables, strict=True)]
        return grads, terms

    def get_weights(self) -> list[np.ndarray]:
        """Every trainable variable as numpy, read in one compiled call."""
        self._flush()
        return [t.numpy() for t in self._read()]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self._pending = None
        for variable, value in zip(self.variables, weights, strict=True):
            variable.assign(value)

    # Flat float32 vectors: one array per message for the processes backend.
    def flat_gradients(self) -> np.ndarray:
        """The last :meth:`compute_gradients` result as one float32 vector."""
        if self._last_flat_grads is None:
            raise RuntimeError("flat_gradients() before compute_gradients()")
        return self._last_flat_grads.numpy()

    def flat_weights(self) -> np.ndarray:
        """The weights as one float32 vector of length ``size``."""
        if self._pending is not None:
            return self._pending.copy()
        return self._flat_weights().numpy()

    def set_flat_weights(self, flat: np.ndarray) -> None:
        """Take weights from a vector made by :meth:`flat_weights`.

        This costs nothing: gradients are computed from the vector itself,
        and the Keras variables receive it only when something reads them
        (:meth:`get_weights`, :meth:`step`, :meth:`predict`). A worker's
        local model resyncs after every update, so that saves an assignment
        of every variable per update. (So write weights only through
        this method or :meth:`set_weights`, not into ``variables`` directly.)
        """
        flat = np.asarray(flat, dtype=np.float32)
        if flat.shape != (self.size,):
            raise ValueError(f"expected {self.size} weights, got shape {flat.shape}")
        self._pending = flat

    def _flush(self) -> None:
        """Give the Keras variables the weights :meth:`set_flat_weights` took."""
        if self._pending is not None:
            self._set_flat(self._pending)
            self._pending = None


def _flatten(tensors: list) -> tf.Tensor:
    return tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0)


def _unflatten(flat: tf.Tensor, like: list) -> list[tf.Tensor]:
    sizes = [int(np.prod(v.shape)) for v in like]
    parts = tf.split(flat, sizes)
    return [tf.reshape(p, v.shape) for p, v in zip(parts, like, strict=True)]


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


class GlobalModel:
    """The shared model and the one optimizer that updates it.

    While training, the weights and Adam's moments live in flat numpy vectors
    (:class:`mathy_a3c.flat_adam.FlatAdam`): every backend hands over one
    gradient vector and gets one weight vector back, and Adam on flat vectors
    is about six times faster than Keras' per-variable Adam for this model.
    The Keras model and its Adam are where the state is kept between runs:
    :meth:`snapshot` and :meth:`sync` write the flat state back into them, and
    the next update reads it from them again.

    Every method takes a lock, so gradients from different workers are applied
    one at a time and a worker never copies half-updated weights.
    """

    def __init__(self, network: ActorCritic, learning_rate: float) -> None:
        import threading

        self.network = network
        self.optimizer = keras.optimizers.Adam(learning_rate=learning_rate, name="adam")
        self.optimizer.build(network.variables)
        self.lock = threading.Lock()
        self._flat: FlatAdam | None = None
        #: Factor on the optimizer's learning rate for the next updates; the
        #: agent sets it from ``A3CConfig.lr_scale`` as the run goes on.
        self.lr_scale = 1.0

    @property
    def learning_rate(self) -> float:
        """The learning rate updates use now (the optimizer's times the scale)."""
        return float(np.asarray(self.optimizer.learning_rate)) * self.lr_scale

    def _state(self) -> FlatAdam:
        """The flat training state, read from Keras on first use (lock held)."""
        if self._flat is None:
            self._flat = FlatAdam.from_keras(self.optimizer, self.network.variables)
        return self._flat

    def apply_flat(self, grads: np.ndarray) -> np.ndarray:
        """Apply a flat gradient vector; returns the new flat weights.

        This is "apply my gradients, give me the weights" for every backend.
        """
        with self.lock:
            return self._state().apply(grads, self.lr_scale)

    def flat_weights(self) -> np.ndarray:
        """The current global weights as one flat vector."""
        with self.lock:
            return self._state().weights.copy()

    def update(self, local: ActorCritic) -> np.ndarray:
        """Apply ``local``'s last gradients with the global optimizer, then
        resync ``local``; returns the new weights as a flat vector (the
        worker's numpy actor reads them from it)."""
        flat = self.apply_flat(local.flat_gradients())
        local.set_flat_weights(flat)
        return flat

    def copy_to(self, local: ActorCritic) -> np.ndarray:
        """Overwrite a local model's weights with the global ones; returns them."""
        flat = self.flat_weights()
        local.set_flat_weights(flat)
        return flat

    def sync(self) -> None:
        """Write the training state back into the Keras model and its Adam."""
        with self.lock:
            if self._flat is not None:
                self._flat.to_keras(self.optimizer, self.network.variables)
                self._flat = None

    def snapshot(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Model weights and optimizer variables, read consistently."""
        self.sync()
        with self.lock:
            weights = self.network.get_weights()
            opt = [v.numpy() for v in self.optimizer.variables]
        return weights, opt


class VectorNumpyActor:
    """:func:`build_vector_model`'s forward pass in numpy (gym topics)."""

    def __init__(self, network: ActorCritic) -> None:
        self.network = network
        self.refresh()

    def refresh(self, flat: np.ndarray | None = None) -> None:
        """Re-read the weights; see :meth:`NumpyActor.refresh`."""
        w = _weights_by_path(self.network, flat)
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


def _weights_by_path(
    net: ActorCritic, flat: np.ndarray | None
) -> dict[str, np.ndarray]:
    if flat is None:
        flat = net.flat_weights()
    return {path: flat[a:b].reshape(shape) for path, a, b, shape in net.layout}


class NumpyActor:
    """The network's forward pass in numpy, for acting one state at a time.

    A TensorFlow call costs about a millisecond per step on CPU, mostly
    per-op overhead; the same arithmetic in numpy on a trimmed expression is
    several times faster. Workers act with this mirror of their local model
    and compute gradients with the Keras model. ``tests/test_model.py`` pins
    it to the Keras outputs.
    """

    def __init__(self, network: ActorCritic) -> None:
        self.network = network
        self.refresh()

    def refresh(self, flat: np.ndarray | None = None) -> None:
        """Re-read the weights (call after the Keras model changed).

        ``flat`` (from :meth:`ActorCritic.flat_weights`) saves reading them
        back from TensorFlow when the caller already has them.
        """
        w = _weights_by_path(self.network, flat)
        self.embedding = w["node_embedding/embeddings"]
        self.value_kernel = w["value_projection/kernel"][0]
        self.value_bias = w["value_projection/bias"]
        self.last_kernel = w["last_action/kernel"][0]
        self.context = (w["context/kernel"], w["context/bias"])
        self.convs = [
            (w[f"conv_{i}/kernel"], w[f"conv_{i}/bias"], dilation)
            for i, dilation in enumerate(DILATIONS)
        ]
        self.attention = [
            (w[f"attention_{p}/kernel"], w[f"attention_{p}/bias"])
            for p in ("query", "key", "value", "output")
        ]
        self.summary = (w["summary/kernel"], w["summary/bias"])
        self.policy_hidden = (w["policy_hidden/kernel"], w["policy_hidden/bias"])
        self.policy_head = (w["policy_head/kernel"], w["policy_head/bias"])
        self.value_hidden = (w["value_hidden/kernel"], w["value_hidden/bias"])
        self.value_head = (w["value_head/kernel"][:, 0], w["value_head/bias"][0])

    def __call__(self, obs: Any) -> tuple[np.ndarray, float]:
        """Masked logits [ACTION_SIZE] and value for one :class:`Observation`."""
        n = max(1, int(np.count_nonzero(obs.nodes)))
        nodes = obs.nodes[:n]
        ctx_in = np.concatenate([obs.type, obs.time, obs.history])
        context = ctx_in @ self.context[0] + self.context[1]
        x = self.embedding[nodes] + np.outer(obs.values[:n], self.value_kernel)
        x += np.outer(obs.last[:n], self.last_kernel)
        x = np.maximum(x + self.value_bias + context, 0.0)
        for kernel, bias, r in self.convs:
            # "same" padding: node i sees nodes i - r, i and i + r (zeros outside).
            h = x @ kernel[1]
            if r < n:
                h[r:] += x[: n - r] @ kernel[0]
                h[: n - r] += x[r:] @ kernel[2]
            x = x + np.maximum(h + bias, 0.0)
        (wq, bq), (wk, bk), (wv, bv), (wo, bo) = self.attention
        scores = (x @ wq + bq) @ (x @ wk + bk).T / np.sqrt(x.shape[1])
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        scores /= scores.sum(axis=1, keepdims=True)
        x = x + (scores @ (x @ wv + bv)) @ wo + bo
        pooled = x.mean(axis=0)
        summary = np.maximum(pooled @ self.summary[0] + self.summary[1], 0.0)
        x = np.maximum(
            (x + summary) @ self.policy_hidden[0] + self.policy_hidden[1], 0.0
        )
        per_node = x @ self.policy_head[0] + self.policy_head[1]  # [n, rules]
        logits = np.full((NUM_RULES, MAX_NODES), MASKED_LOGIT, np.float32)
        logits[:, :n] = per_node.T
        flat = logits.reshape(-1)
        flat[obs.mask <= 0] = MASKED_LOGIT
        hidden_in = np.concatenate([pooled, x.max(axis=0), context])
        hidden = np.maximum(
            hidden_in @ self.value_hidden[0] + self.value_hidden[1], 0.0
        )
        value = float(hidden @ self.value_head[0] + self.value_head[1])
        return flat, value
