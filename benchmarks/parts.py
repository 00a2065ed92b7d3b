"""The numpy parts of a worker's step, each timed alone on recorded states.

    python benchmarks/parts.py --states 2000

Plays random valid moves on a topic (poly easy by default) to record
``--states`` observations and rollouts of about five states (the length a
poly-easy update has in training), then times, each in a loop:

* ``trace_us``: the numpy actor's forward pass of one observation
  (``NumpyActor.trace``), the model at its initial weights;
* ``gradient_ms``: one update's clipped gradient from the actor's traces
  (``NumpyGradients.from_traces``);
* ``sample_us``: one draw from the masked softmax (``policy.sample_action``);
* ``adam_ms`` and ``adam_cold_ms``: one Adam step of the global model
  (``FlatAdam.apply``), with its state in the cache, and after a pass over
  1 GB that takes it out (what training sees: its state waits for the next
  update in memory);
* ``adam_subnormal_ms``: the same step when 14% of the first moments are
  subnormal (below 1.2e-38) and their gradients 0, as after 2,000 poly
  updates before ``FlatAdam`` dropped negligible moments: what x86's slow
  arithmetic on subnormal numbers costs (``adam_subnormal_vs_adam``).

Each figure is the median of ``--repeats`` loops. In training every part is
slower than here (its data is no longer in the cache after the
environment's step: ``benchmarks/phases.py`` times them there); this
compares code, not machines. To compare two commits, run it in a checkout
of each, one after the other, more than once.

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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mathy_a3c.runtime import configure_for_training  # noqa: E402

configure_for_training()  # one BLAS thread, as in training

import numpy as np  # noqa: E402

from mathy_a3c import A3CConfig  # noqa: E402
from mathy_a3c.envs import MathyTask  # noqa: E402
from mathy_a3c.flat_adam import FlatAdam  # noqa: E402
from mathy_a3c.model import network_for  # noqa: E402
from mathy_a3c.policy import sample_action  # noqa: E402
from mathy_a3c.returns import advantages_and_returns  # noqa: E402

#: States per recorded rollout: a poly-easy update's length in training.
ROLLOUT = 5


def median_time(loop: Callable[[], int], repeats: int) -> float:
    """Seconds per item: ``loop`` runs once over its items and returns how
    many; the median over ``repeats`` runs, after one to warm up."""
    loop()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        count = loop()
        times.append((time.perf_counter() - start) / count)
    return float(np.median(times))


def record(config: A3CConfig, states: int, seed: int) -> list[list[Any]]:
    """Rollouts of up to ROLLOUT observations, played with random valid moves."""
    task = MathyTask(config.topics, config.difficulty, seed=seed)
    rng = np.random.default_rng(seed)
    rollouts: list[list[Any]] = []
    observation, rollout, seen = task.reset(), [], 0
    while seen < states:
        rollout.append(observation)
        seen += 1
        result = task.step(int(rng.choice(np.flatnonzero(observation.mask))))
        if result.done or len(rollout) == ROLLOUT:
            rollouts.append(rollout)
            rollout = []
        observation = task.reset() if result.done else result.observation
    return rollouts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topic", default="poly")
    parser.add_argument("--difficulty", default="easy")
    parser.add_argument("--states", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    config = A3CConfig(topics=[args.topic], difficulty=args.difficulty)
    net = network_for(config, None, seed=args.seed)
    flat = net.flat_weights()
    net.set_flat_weights(flat)  # as a worker's resync leaves it: no TF call
    actor = net.numpy_actor()
    rollouts = record(config, args.states, args.seed)
    observations = [o for rollout in rollouts for o in rollout]
    rng = np.random.default_rng(args.seed)

    def traces() -> int:
        for observation in observations:
            actor.trace(observation)
        return len(observations)

    updates = []
    for rollout in rollouts:
        traced = [actor.trace(o) for o in rollout]
        actions = np.array(
            [
                sample_action(t.logits, o.mask, rng)
                for t, o in zip(traced, rollout, strict=True)
            ]
        )
        rewards = rng.normal(size=len(rollout)).astype(np.float32)
        values = np.array([t.value for t in traced], np.float32)
        advantages, returns = advantages_and_returns(
            rewards, values, 0.0, config.gamma, config.gae_lambda
        )
        updates.append((traced, actions, advantages, returns))
    logits = [t.logits for traced, *_ in updates for t in traced]

    def gradients() -> int:
        for traced, actions, advantages, returns in updates:
            net.numpy_gradients(traced, actions, advantages, returns)
        return len(updates)

    def samples() -> int:
        for row, observation in zip(logits, observations, strict=True):
            sample_action(row, observation.mask, rng)
        return len(observations)

    adam = FlatAdam.fresh(flat, config.lr)
    gradient = rng.normal(0.0, 0.01, flat.size).astype(np.float32)

    def adam_steps() -> int:
        for _ in range(200):
            adam.apply(gradient)
        return 200

    result: dict[str, Any] = {
        "benchmark": "parts",
        "topic": args.topic,
        "difficulty": args.difficulty,
        "date": time.strftime("%Y-%m-%d"),
        "states": len(observations),
        "states_per_update": round(len(observations) / len(rollouts), 2),
        "trace_us": round(median_time(traces, args.repeats) * 1e6, 1),
        "gradient_ms": round(median_time(gradients, args.repeats) * 1e3, 3),
        "sample_us": round(median_time(samples, args.repeats) * 1e6, 2),
        "adam_ms": round(median_time(adam_steps, args.repeats) * 1e3, 3),
    }
    memory = np.ones(256 * 2**20, np.float32)  # 1 GiB
    cold = []
    for _ in range(args.repeats * 4):
        memory[::16] += 1.0  # touch every cache line of the GiB
        start = time.perf_counter()
        adam.apply(gradient)
        cold.append(time.perf_counter() - start)
    result["adam_cold_ms"] = round(float(np.median(cold)) * 1e3, 3)
    result["adam_subnormal_ms"] = round(subnormal_adam_s(adam, rng, args) * 1e3, 3)
    result["adam_subnormal_vs_adam"] = round(
        result["adam_subnormal_ms"] / result["adam_ms"], 2
    )
    for key in (
        "trace_us",
        "gradient_ms",
        "sample_us",
        "adam_ms",
        "adam_cold_ms",
        "adam_subnormal_ms",
    ):
        print(f"{key:<18} {result[key]}")
    print(json.dumps(result))


def subnormal_adam_s(adam: FlatAdam, rng: Any, args: argparse.Namespace) -> float:
    """Seconds for one Adam step with 14% of the first moments subnormal and
    their gradients 0 (the state restored before every step, the moments
    never dropped: no step count is a multiple of 16 here)."""
    part = slice(0, adam.weights.size * 14 // 100)
    gradient = rng.normal(0.0, 0.01, adam.weights.size).astype(np.float32)
    gradient[part] = 0.0
    tiny = float(np.finfo(np.float32).tiny)
    momentum = adam.momentum.copy()
    # Spread over the subnormal range, as a moment decaying by 0.9 a step is.
    momentum[part] = np.exp(rng.uniform(np.log(2e-45), np.log(tiny), part.stop))
    velocity = adam.velocity.copy()
    saved = adam.weights.copy(), adam.count[0]
    times = []
    for _ in range(args.repeats * 20):
        adam.momentum[...] = momentum
        adam.velocity[...] = velocity
        adam.weights[...], adam.count[0] = saved[0], 1  # step 2: no drop
        start = time.perf_counter()
        adam.apply(gradient)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


if __name__ == "__main__":
    main()
