"""A worker's (or the agent's) actor-critic: a Keras network with compiled
forward and gradient calls, and its weights as one flat vector.

All TensorFlow work runs in ``tf.function``s with fixed input signatures, so a
rollout step or an update never retraces. Gradients are taken with respect to
a flat weight vector passed in (Keras' stateless call), not the Keras
variables: a worker resyncs by keeping the global weights it was handed, with
no assignment. Every backend hands over gradients and weights as these flat
float32 vectors.

The networks are in :mod:`mathy_a3c.networks`, the loss in
:mod:`mathy_a3c.losses`, the numpy mirrors used for acting in
:mod:`mathy_a3c.numpy_actor`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, cast

import numpy as np
import tensorflow as tf

from .config import A3CConfig
from .envs import ACTION_SIZE, Observation
from .gym_envs import GymSpec
from .losses import a3c_loss
from .networks import (
    build_model,
    build_vector_model,
    mask_logits,
    masked_policy_logits,
    observation_signature,
    trimmed,
    vector_signature,
)
from .numpy_actor import Layout, NumpyActor, Trace, VectorNumpyActor
from .numpy_gradients import NumpyGradients
from .types import LossTerms


def network_for(
    config: A3CConfig,
    spec: GymSpec | None,
    seed: int | None = None,
    gradients_from: ActorCritic | None = None,
) -> ActorCritic:
    """The actor-critic a config asks for (``spec`` from ``tasks.task_spec``),
    its weights drawn from ``seed`` (default ``config.seed``); see
    :class:`ActorCritic` for ``gradients_from``."""
    return ActorCritic(
        config.model_size,
        entropy_coef=config.entropy_coef,
        value_coef=config.value_coef,
        max_grad_norm=config.max_grad_norm,
        spec=spec,
        seed=config.seed if seed is None else seed,
        gradients_from=gradients_from,
    )


class GradientInputs(NamedTuple):
    """A rollout made into the tensors the gradient call takes; see
    :meth:`ActorCritic.gradient_inputs`."""

    tensors: list[tf.Tensor]


class ActorCritic:
    """A Keras actor-critic model with compiled forward and gradient calls.

    Loss weights are fixed at construction so the gradient function is traced
    once; the loss is :func:`mathy_a3c.losses.a3c_loss`, and its gradient is
    clipped to ``max_grad_norm``.

    The gradient function depends on the weights only through the flat
    vector it is given, so models of the same network and loss can share it:
    with ``gradients_from`` (such a model), this one uses that model's
    instead of tracing its own (about 0.6 s per model, for worker threads
    of one process).
    """

    def __init__(
        self,
        model_size: int = 64,
        entropy_coef: float = 0.01,
        value_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        spec: GymSpec | None = None,
        seed: int = 0,
        gradients_from: ActorCritic | None = None,
    ) -> None:
        #: ``None`` for Mathy topics; the observation and action sizes of a
        #: gym topic, whose model is :func:`build_vector_model`.
        self.spec = spec
        if spec is None:
            self.model = build_model(model_size, seed)
            obs_sig = observation_signature()
            to_logits: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] = (
                masked_policy_logits
            )
            self._prepare: Callable[[Any], Any] = trimmed
            self.action_size = ACTION_SIZE
        else:
            model = build_vector_model(spec.obs_size, spec.n_actions, model_size, seed)
            self.model = model
            obs_sig = vector_signature(spec.obs_size, spec.n_actions)
            to_logits = mask_logits
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
        self.layout: Layout = [
            (v.path, end - size, end, tuple(v.shape))
            for v, size, end in zip(self.variables, self.sizes, ends, strict=True)
        ]
        flat_spec = tf.TensorSpec([self.size], tf.float32)

        @tf.function(input_signature=[flat_spec, *obs_sig, actions, batch, batch])
        def gradients(flat, *args):
            inputs, act, advantages, returns = args[:-3], args[-3], args[-2], args[-1]
            with tf.GradientTape() as tape:
                tape.watch(flat)
                (outputs, value), _ = model.stateless_call(
                    _unflatten(flat, self.variables),
                    model.non_trainable_variables,
                    list(inputs[:-1]),
                    training=True,
                )
                loss = a3c_loss(
                    to_logits(outputs, inputs[-1]),
                    inputs[-1],
                    value,
                    act,
                    advantages,
                    returns,
                    value_coef,
                    entropy_coef,
                )
            # One dense vector: the embedding's rows are summed where a node
            # type repeats, so clipping sees the norm of the applied gradient.
            grads = tf.convert_to_tensor(tape.gradient(loss.total, flat))
            (clipped,), norm = tf.clip_by_global_norm([grads], max_grad_norm)
            terms = tf.stack([loss.policy, loss.value, loss.entropy, loss.total, norm])
            return terms, clipped

        @tf.function(input_signature=[flat_spec])
        def set_flat(flat):
            for variable, value in zip(
                self.variables, _unflatten(flat, self.variables), strict=True
            ):
                variable.assign(value)

        #: What the gradient function was traced for (see ``gradients_from``).
        self.loss_settings = (entropy_coef, value_coef, max_grad_norm)
        #: The same clipped gradient in numpy, for Mathy networks (``None``
        #: for gym topics): see :meth:`numpy_gradients`.
        self._numpy_gradients = (
            NumpyGradients(self.layout, value_coef, entropy_coef, max_grad_norm)
            if spec is None
            else None
        )
        if gradients_from is not None:
            if (gradients_from.layout, gradients_from.loss_settings) != (
                self.layout,
                self.loss_settings,
            ) or self.model.non_trainable_variables:
                raise ValueError(
                    "gradients_from must be a model of the same network and loss"
                )
            gradients = gradients_from.gradient_function
        #: The tf.function of the clipped gradients (shared with the models
        #: built ``gradients_from`` this one).
        self.gradient_function: Any = gradients
        self._functions: dict[str, Any] = {
            "forward": forward,
            "gradients": gradients,
            "read": tf.function(
                lambda: [tf.identity(v) for v in self.variables], input_signature=[]
            ),
            "flat_weights": tf.function(
                lambda: _flatten(self.variables), input_signature=[]
            ),
            "set_flat": set_flat,
        }
        #: Each function's concrete function, traced at its first use: a
        #: worker never runs the forward pass in TensorFlow (it acts in
        #: numpy), and a model loaded to play never takes gradients.
        self._concrete: dict[str, Any] = {}
        self._last_flat_grads: tf.Tensor | np.ndarray | None = None
        #: Weights handed over by :meth:`set_flat_weights` that the Keras
        #: variables have not received yet (they get them when next read).
        self._pending: np.ndarray | None = None

    def _traced(self, name: str) -> Any:
        """The concrete function of ``name``, traced now if it is not yet.

        Calling a concrete function skips tf.function's dispatch on its
        arguments' types (about 0.25 ms a call). It is traced through
        ``get_concrete_function``, never by a first call: a tf.function first
        traced by a call counts as a retrace of the same code in every other
        model, and TensorFlow warns about "retracing" once a program has
        built six.
        """
        concrete = self._concrete.get(name)
        if concrete is None:
            concrete = self._functions[name].get_concrete_function()
            self._concrete[name] = concrete
        return concrete

    # ------------------------------------------------------------------
    def step(self, observation: Any) -> tuple[np.ndarray, float]:
        """Masked logits [action_size] and value for a single observation."""
        one = type(observation)(*(np.expand_dims(a, 0) for a in observation))
        self._flush()
        logits, value = self._traced("forward")(*self._prepare(one))
        return logits.numpy()[0], float(value.numpy()[0])

    def predict(self, batch: Any) -> tuple[np.ndarray, np.ndarray]:
        """Masked logits [B, action_size] and values [B] for a batch."""
        self._flush()
        logits, value = self._traced("forward")(*self._prepare(batch))
        return logits.numpy(), value.numpy()

    def numpy_actor(self) -> NumpyActor | VectorNumpyActor:
        """A numpy mirror of this model's forward pass, for acting; give it
        new weights with its ``refresh(flat)``."""
        actor = NumpyActor if self.spec is None else VectorNumpyActor
        return actor(self.layout, self.flat_weights())

    def gradient_inputs(
        self,
        batch: Observation,
        actions: np.ndarray,
        advantages: np.ndarray,
        returns: np.ndarray,
    ) -> GradientInputs:
        """A rollout as the tensors :meth:`run_gradients` takes, with the
        weights to differentiate at: made in Python, before the call."""
        weights = self._pending
        if weights is None:
            weights = self._traced("flat_weights")().numpy()
        return GradientInputs(
            [
                tf.constant(weights),
                *(tf.constant(a) for a in self._prepare(batch)),
                tf.constant(actions, tf.int32),
                tf.constant(advantages, tf.float32),
                tf.constant(returns, tf.float32),
            ]
        )

    def run_gradients(self, inputs: GradientInputs) -> LossTerms:
        """Clipped gradients of the A3C loss for :meth:`gradient_inputs`;
        returns the loss terms and keeps the gradients for
        :meth:`flat_gradients`. The call runs in TensorFlow, which needs no
        interpreter: other threads may run Python meanwhile."""
        terms, self._last_flat_grads = self._traced("gradients")(*inputs.tensors)
        return LossTerms(*(float(t) for t in terms.numpy()))

    @property
    def has_numpy_gradients(self) -> bool:
        """Whether :meth:`numpy_gradients` can take this network's gradients."""
        return self._numpy_gradients is not None

    def numpy_gradients(
        self,
        states: list[Observation] | list[Trace],
        actions: np.ndarray,
        advantages: np.ndarray,
        returns: np.ndarray,
    ) -> LossTerms:
        """What :meth:`compute_gradients` computes, computed in numpy
        (:class:`~mathy_a3c.numpy_gradients.NumpyGradients`) from the
        rollout's observations, unstacked, or from the traces this model's
        numpy actor made of them at its current weights
        (:meth:`~mathy_a3c.numpy_actor.NumpyActor.trace`: the forward pass is
        then not computed again): a worker's update with no TensorFlow call.
        Mathy networks only (:attr:`has_numpy_gradients`)."""
        if self._numpy_gradients is None:
            raise TypeError("numpy gradients are for Mathy networks only")
        weights = self._pending
        if weights is None:
            weights = self._traced("flat_weights")().numpy()
        gradients = self._numpy_gradients
        if states and isinstance(states[0], Trace):
            traces = cast(list[Trace], states)
            result = gradients.from_traces(
                weights, traces, actions, advantages, returns
            )
        else:
            result = gradients(weights, states, actions, advantages, returns)
        terms, self._last_flat_grads = result
        return terms

    def compute_gradients(
        self,
        batch: Observation,
        actions: np.ndarray,
        advantages: np.ndarray,
        returns: np.ndarray,
    ) -> LossTerms:
        """:meth:`gradient_inputs` then :meth:`run_gradients`."""
        inputs = self.gradient_inputs(batch, actions, advantages, returns)
        return self.run_gradients(inputs)

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
        return [t.numpy() for t in self._traced("read")()]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self._pending = None
        for variable, value in zip(self.variables, weights, strict=True):
            variable.assign(value)

    # Flat float32 vectors: one array per message for the remote backends.
    def flat_gradients(self) -> np.ndarray:
        """The last gradients (:meth:`run_gradients` or
        :meth:`numpy_gradients`) as one float32 vector; numpy's is this
        model's own buffer, which the next :meth:`numpy_gradients` call
        overwrites (copy it to keep it)."""
        if self._last_flat_grads is None:
            raise RuntimeError("flat_gradients() before compute_gradients()")
        if isinstance(self._last_flat_grads, np.ndarray):
            return self._last_flat_grads
        return self._last_flat_grads.numpy()

    def flat_weights(self) -> np.ndarray:
        """The weights as one float32 vector of length ``size``."""
        if self._pending is not None:
            return self._pending.copy()
        return self._traced("flat_weights")().numpy()

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
            self._traced("set_flat")(self._pending)
            self._pending = None


def _unchanged(batch: Any) -> Any:
    return batch


def _flatten(tensors: list) -> tf.Tensor:
    return tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0)


def _unflatten(flat: tf.Tensor, like: list) -> list[tf.Tensor]:
    sizes = [int(np.prod(v.shape)) for v in like]
    parts = tf.split(flat, sizes)
    return [tf.reshape(p, v.shape) for p, v in zip(parts, like, strict=True)]
