"""Learning benchmark: train with the library's defaults for a wall-clock budget,
then measure the greedy policy.

    python benchmarks/learning.py --seconds 120 --topic poly --difficulty easy --seed 0

* Trains ``A3CConfig`` defaults (only topic, difficulty, seed and the time budget
  are set) for ``--seconds``.
* Snapshots the global weights every ``--curve-every`` seconds while training
  (a cheap copy, so measuring does not slow training) and evaluates each
  snapshot afterwards: the learning curve, greedy win rate against wall-clock
  seconds, goes to ``OUT/learning_curve.csv`` and ``.png``.
* Evaluates the final greedy policy, and a random-valid-action policy, on
  ``--eval-problems`` generated problems from ``--eval-seed`` (a stream training
  never draws from) and on the hand-written problems of ``--problems-file``,
  per group.
* The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mathy_a3c.runtime import configure_for_training  # noqa: E402

# Before TensorFlow loads, as `mathy train` does: this program trains.
configure_for_training()

from mathy_a3c import A3CAgent, A3CConfig  # noqa: E402
from mathy_a3c.callbacks import Callback, RunStats  # noqa: E402
from mathy_a3c.envs import Observation  # noqa: E402
from mathy_a3c.evaluation import (  # noqa: E402
    evaluate,
    generated_states,
    read_problems,
    typed_states,
)
from mathy_a3c.model import ActorCritic  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
#: Generated evaluation problems come from this seed; training seeds derive
#: worker streams with SeedSequence([seed, worker]) and never use it directly.
EVAL_SEED = 987_654_321


class Snapshots(Callback):
    """Copies the global weights every ``every`` seconds of training."""

    def __init__(self, agent: A3CAgent, every: float) -> None:
        self.agent, self.every = agent, every
        self.start = time.perf_counter()
        self.next = every
        self.taken: list[tuple[float, int, object]] = []

    def on_start(self, total_episodes: int, stats: RunStats) -> None:
        self.start = time.perf_counter()

    def on_episode(self, report, stats: RunStats) -> None:
        elapsed = time.perf_counter() - self.start
        if elapsed >= self.next:
            weights = self.agent.global_model.flat_weights()
            self.taken.append((elapsed, stats.steps, weights))
            self.next += self.every


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--topic", default="poly")
    parser.add_argument("--difficulty", default="easy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-problems", type=int, default=200)
    parser.add_argument("--eval-seed", type=int, default=EVAL_SEED)
    parser.add_argument("--curve-every", type=float, default=15.0)
    parser.add_argument(
        "--problems-file", default=os.path.join(HERE, "problems", "poly.txt")
    )
    parser.add_argument(
        "--out", default=os.path.join(os.path.dirname(HERE), "docs", "results")
    )
    parser.add_argument("--model-dir", default=None)
    args = parser.parse_args()

    os.makedirs(args.out, exist_ok=True)
    model_dir = args.model_dir or tempfile.mkdtemp(prefix="mathy_a3c_bench_")
    config = A3CConfig(
        topics=[args.topic],
        difficulty=args.difficulty,
        model_dir=model_dir,
        seed=args.seed,
        max_eps=10**9,
        max_seconds=args.seconds,
    )
    agent = A3CAgent(config, console=False)
    snapshots = Snapshots(agent, args.curve_every)
    agent.callbacks.append(snapshots)
    result = agent.train()

    eval_states = generated_states(
        args.topic, args.difficulty, args.eval_problems, args.eval_seed
    )
    hand = read_problems(args.problems_file) if args.problems_file else []
    net = ActorCritic(config.model_size)

    def greedy_on(states):
        return evaluate(args.topic, states, net.predict, "greedy", args.difficulty)

    curve = []
    for seconds, steps, weights in snapshots.taken:
        net.set_flat_weights(weights)
        curve.append((seconds, steps, greedy_on(eval_states).win_rate))
    net.set_flat_weights(agent.global_model.flat_weights())
    final = greedy_on(eval_states)
    curve.append((result.seconds, result.steps, final.win_rate))
    rand = evaluate(args.topic, eval_states, None, difficulty=args.difficulty)

    groups: dict[str, dict[str, float]] = {}
    for group in dict.fromkeys(g for g, _ in hand):
        texts = [t for g, t in hand if g == group]
        states = typed_states(args.topic, texts, args.difficulty)
        got = greedy_on(states)
        rnd = evaluate(args.topic, states, None, difficulty=args.difficulty)
        groups[group] = {
            "problems": got.problems,
            "greedy_win_rate": round(got.win_rate, 3),
            "random_win_rate": round(rnd.win_rate, 3),
        }
        print(
            f"hand-written [{group}]: greedy {got.win_rate:.2f} "
            f"random {rnd.win_rate:.2f} ({got.problems} problems)"
        )

    stem = f"learning_{args.topic}_{args.difficulty}_seed{args.seed}"
    csv_path = os.path.join(args.out, stem + ".csv")
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["seconds", "env_steps", "greedy_win_rate"])
        for seconds, steps, rate in curve:
            writer.writerow([f"{seconds:.1f}", steps, f"{rate:.4f}"])
    png_path = plot(curve, rand.win_rate, os.path.join(args.out, stem + ".png"), args)

    for seconds, steps, rate in curve:
        print(f"t={seconds:6.1f}s steps={steps:7d} greedy win rate {rate:.3f}")
    summary = {
        "benchmark": "learning",
        "topic": args.topic,
        "difficulty": args.difficulty,
        "seed": args.seed,
        "train_seconds": round(result.seconds, 1),
        "episodes": result.episodes,
        "env_steps": result.steps,
        "steps_per_s": round(result.steps_per_second, 1),
        "num_workers": config.num_workers,
        "lr": config.lr,
        "observation": list(Observation._fields),
        "eval_problems": final.problems,
        "greedy_win_rate": round(final.win_rate, 4),
        "greedy_mean_steps": round(final.mean_steps, 2),
        "random_win_rate": round(rand.win_rate, 4),
        "random_mean_steps": round(rand.mean_steps, 2),
        "hand_written": groups,
        "curve_csv": os.path.relpath(csv_path),
        "curve_png": os.path.relpath(png_path) if png_path else None,
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(summary))


def plot(curve, random_rate, path, args) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: pip install -e '.[bench]' for the PNG")
        return None
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(
        [c[0] for c in curve], [c[2] for c in curve], marker="o", label="A3C greedy"
    )
    ax.axhline(random_rate, color="grey", linestyle="--", label="random valid actions")
    ax.set_xlabel("training wall-clock seconds")
    ax.set_ylabel("greedy win rate")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{args.topic} {args.difficulty}, seed {args.seed}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
