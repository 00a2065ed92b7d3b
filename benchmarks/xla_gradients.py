"""The gradient call as the library makes it, against the same call compiled
with XLA: why the library does not use XLA.

    python benchmarks/xla_gradients.py --topic poly --difficulty easy

Rollouts (of at most ``update_interval`` steps, or to an episode's end, as a
worker makes them) come from random valid actions in the real environment.
The library's call takes them at any size. XLA compiles one program per
input shape, so the XLA call pads each rollout's rows to 1, 2, 4, 8 or 16 (and
its nodes to a multiple of 8, as the library trims them), and its loss
weights the padding rows 0. Both compute the A3C loss and its clipped
gradient with the same weights; the largest difference between their
gradients is reported with the times.

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from mathy_a3c.runtime import configure_for_training  # noqa: E402

configure_for_training()  # before TensorFlow loads, as `mathy train` does

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mathy_a3c import A3CConfig  # noqa: E402
from mathy_a3c.envs import MathyTask, stack  # noqa: E402
from mathy_a3c.model import ActorCritic, GradientInputs, network_for  # noqa: E402
from mathy_a3c.networks import masked_policy_logits  # noqa: E402

#: Row counts the XLA call pads a rollout to.
BUCKETS = (1, 2, 4, 8, 16)


def rollouts(topic: str, difficulty: str, count: int, seed: int) -> list[tuple]:
    """``count`` rollouts of random valid actions: (observations, actions)."""
    rng = np.random.default_rng(seed)
    task = MathyTask([topic], difficulty, seed=seed)
    made: list[tuple] = []
    observation, steps = task.reset(), []
    while len(made) < count:
        action = int(rng.choice(np.flatnonzero(observation.mask)))
        result = task.step(action)
        steps.append((observation, action))
        if result.done or len(steps) >= BUCKETS[-1]:
            seen, actions = zip(*steps, strict=True)
            made.append((stack(list(seen)), np.asarray(actions, np.int32)))
            steps = []
        observation = task.reset() if result.done else result.observation
    return made


def xla_gradients(net: ActorCritic, config: A3CConfig) -> Callable[..., Any]:
    """The library's loss and clipped gradient, with a weight per row,
    compiled by XLA (one program per input shape)."""
    model, variables = net.model, net.variables
    sizes = [int(np.prod(v.shape)) for v in variables]

    @tf.function(jit_compile=True)
    def gradients(flat, rows, *args):
        inputs, actions, advantages, returns = args[:-3], args[-3], args[-2], args[-1]
        with tf.GradientTape() as tape:
            tape.watch(flat)
            weights = [
                tf.reshape(part, v.shape)
                for part, v in zip(tf.split(flat, sizes), variables, strict=True)
            ]
            (outputs, value), _ = model.stateless_call(
                weights, model.non_trainable_variables, list(inputs[:-1]), training=True
            )
            mask = inputs[-1]
            log_probs = tf.nn.log_softmax(masked_policy_logits(outputs, mask))
            chosen = tf.gather(log_probs, actions, batch_dims=1)
            entropy = -tf.reduce_sum(
                tf.where(mask > 0, tf.exp(log_probs) * log_probs, 0.0), axis=-1
            )
            count = tf.reduce_sum(rows)
            policy = (
                -tf.reduce_sum(rows * chosen * tf.stop_gradient(advantages)) / count
            )
            value_loss = tf.reduce_sum(rows * tf.square(returns - value)) / count
            entropy_mean = tf.reduce_sum(rows * entropy) / count
            total = (
                policy
                + config.value_coef * value_loss
                - config.entropy_coef * entropy_mean
            )
        grads = tf.convert_to_tensor(tape.gradient(total, flat))
        (clipped,), _ = tf.clip_by_global_norm([grads], config.max_grad_norm)
        return total, clipped

    return gradients


def padded(inputs: GradientInputs) -> list[tf.Tensor]:
    """The XLA call's arguments for the library's: rows padded to a bucket,
    with a row weight (1 for a real row, 0 for padding)."""
    flat, *observation, actions, advantages, returns = inputs.tensors
    real = int(actions.shape[0])
    size = next(b for b in BUCKETS if b >= real)

    def pad(tensor: tf.Tensor) -> np.ndarray:
        array = tensor.numpy()
        extra = np.zeros((size - real, *array.shape[1:]), array.dtype)
        return np.concatenate([array, extra])

    arrays = [pad(t) for t in observation]
    arrays[-1][real:, 0] = 1.0  # padding rows get one valid action: finite softmax
    rows = np.concatenate(
        [np.ones(real, np.float32), np.zeros(size - real, np.float32)]
    )
    tail = [pad(actions), pad(advantages), pad(returns)]
    return [flat, tf.constant(rows), *map(tf.constant, arrays + tail)]


def ms_per_call(
    call: Callable[[Any], Any], arguments: list[Any], repeats: int
) -> float:
    """The best of ``repeats`` passes over ``arguments``, in ms per call."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for argument in arguments:
            call(argument)
        best = min(best, (time.perf_counter() - start) / len(arguments) * 1000)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topic", default="poly")
    parser.add_argument("--difficulty", default="easy")
    parser.add_argument("--rollouts", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    config = A3CConfig(seed=args.seed)
    net = network_for(config, None)
    rng = np.random.default_rng(args.seed)
    library = []
    for observations, actions in rollouts(
        args.topic, args.difficulty, args.rollouts, args.seed
    ):
        advantages = rng.normal(size=len(actions)).astype(np.float32)
        returns = rng.normal(size=len(actions)).astype(np.float32)
        library.append(net.gradient_inputs(observations, actions, advantages, returns))
    xla = xla_gradients(net, config)
    compiled = [padded(inputs) for inputs in library]
    shapes = sorted({tuple(a[2].shape) for a in compiled})

    ms_per_call(net.run_gradients, library[:20], 1)  # first calls: graph set-up
    start = time.perf_counter()
    for arguments in compiled:  # every shape compiled once
        xla(*arguments)
    compile_s = time.perf_counter() - start
    difference = 0.0
    for inputs, arguments in zip(library, compiled, strict=True):
        net.run_gradients(inputs)
        _, gradients = xla(*arguments)
        gap = np.abs(net.flat_gradients() - gradients.numpy()).max()
        difference = max(difference, float(gap))
    graph_ms = ms_per_call(net.run_gradients, library, args.repeats)
    xla_ms = ms_per_call(lambda a: xla(*a), compiled, args.repeats)
    sizes = np.bincount([len(inputs.tensors[-1]) for inputs in library]).tolist()
    result = {
        "benchmark": "xla_gradients",
        "topic": args.topic,
        "difficulty": args.difficulty,
        "rollouts": args.rollouts,
        "rows_per_rollout_counts": sizes,
        "xla_shapes": len(shapes),
        "xla_compile_s": round(compile_s, 1),
        "graph_ms_per_call": round(graph_ms, 3),
        "xla_ms_per_call": round(xla_ms, 3),
        "xla_speedup": round(graph_ms / xla_ms, 3),
        "max_gradient_difference": difference,
        "date": time.strftime("%Y-%m-%d"),
    }
    print(
        f"library's call {graph_ms:.2f} ms, XLA {xla_ms:.2f} ms "
        f"({graph_ms / xla_ms:.2f}x), {len(shapes)} shapes compiled in "
        f"{compile_s:.0f} s; largest gradient difference {difference:.1e}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
