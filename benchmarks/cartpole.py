"""CartPole benchmark: how long until the greedy policy balances the pole?

    python benchmarks/cartpole.py --seed 0

Trains on ``gym:CartPole-v1`` with the library's defaults (only the topic and
the seed are set) in chunks of ``--eval-every`` training seconds. After each
chunk, training pauses and the greedy policy plays ``--episodes`` episodes
(episode ``i`` reset with seed ``EVAL_SEED + i``, a stream training never
uses); the clock counts training time only. It stops when the mean return
reaches ``--target`` (475, Gymnasium's "solved" threshold for CartPole-v1) or
after ``--seconds`` of training.

Prints one line per evaluation and, last, one JSON object with the training
seconds it took to reach the target (``null`` if it did not) and the final
mean return.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mathy_a3c.runtime import configure_for_training  # noqa: E402

# Before TensorFlow loads, as `mathy train` does: this program trains.
configure_for_training()

import tensorflow as tf  # noqa: E402

from mathy_a3c import A3CAgent, A3CConfig  # noqa: E402
from mathy_a3c.evaluation import gym_returns  # noqa: E402

EVAL_SEED = 987_654_321
TOPIC = "gym:CartPole-v1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--eval-every", type=float, default=10.0)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--target", type=float, default=475.0)
    parser.add_argument("--model-dir", default=None)
    args = parser.parse_args()
    # Each chunk builds new workers, whose tf.functions trace anew: not a problem.
    tf.get_logger().setLevel("ERROR")

    model_dir = args.model_dir or tempfile.mkdtemp(prefix="mathy_a3c_cartpole_")
    base = A3CConfig(topics=[TOPIC], model_dir=model_dir, seed=args.seed)
    agent = A3CAgent(base.replace(max_eps=10**9), console=False)
    random = gym_returns(TOPIC, None, episodes=args.episodes, seed=EVAL_SEED)
    print(f"random valid actions: mean return {random.mean_return:.1f}")

    trained = steps = episodes = 0.0
    curve: list[dict[str, float]] = []
    reached: float | None = None
    wall = time.perf_counter()
    while trained < args.seconds - 1e-9:
        chunk = min(args.eval_every, args.seconds - trained)
        agent.config = base.replace(max_eps=10**9, max_seconds=chunk)
        result = agent.train()
        trained += result.seconds
        steps += result.steps
        episodes += result.episodes
        greedy = gym_returns(
            TOPIC, agent.network.numpy_actor(), episodes=args.episodes, seed=EVAL_SEED
        )
        curve.append(
            {
                "train_seconds": round(trained, 1),
                "env_steps": int(steps),
                "mean_return": round(greedy.mean_return, 1),
            }
        )
        print(
            f"t={trained:6.1f}s steps={int(steps):8d} greedy mean return "
            f"{greedy.mean_return:6.1f} (std {greedy.std_return:.1f})",
            flush=True,
        )
        if greedy.mean_return >= args.target:
            reached = trained
            break

    final = curve[-1]["mean_return"] if curve else 0.0
    print(
        f"{'reached' if reached is not None else 'did not reach'} a greedy mean "
        f"return of {args.target:g} over {args.episodes} episodes"
        + (f" after {reached:.1f} s of training" if reached is not None else "")
    )
    summary = {
        "benchmark": "cartpole",
        "topic": TOPIC,
        "seed": args.seed,
        "target": args.target,
        "eval_episodes": args.episodes,
        "seconds_to_target": round(reached, 1) if reached is not None else None,
        "final_mean_return": final,
        "random_mean_return": round(random.mean_return, 1),
        "train_seconds": round(trained, 1),
        "wall_seconds": round(time.perf_counter() - wall, 1),
        "env_steps": int(steps),
        "episodes": int(episodes),
        "steps_per_s": round(steps / trained, 1) if trained else 0.0,
        "num_workers": base.num_workers,
        "curve": curve,
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
