"""Topic benchmark: train every Mathy topic with the library's defaults for a
time budget, then measure each model on generated problems.

    python benchmarks/topics.py --difficulty normal --seconds 300 --seed 0
    python benchmarks/topics.py --difficulty curriculum --seconds 900 --seed 0
    python benchmarks/topics.py --together --difficulty curriculum --seconds 1800

* Each topic (``--topics``, default all eight) trains alone, or with
  ``--together`` all of them in one run, with ``A3CConfig`` defaults: only the
  topics, the difficulty (``curriculum`` for the curriculum), the seed and the
  time budget are set.
* Each model plays ``--eval-problems`` generated problems per topic and
  difficulty, from ``--eval-seed``, a seed training never uses (worker streams
  come from ``SeedSequence([seed, worker, episode])``), with greedy play, the
  ``no-revisit`` strategy and random valid actions; mean steps are of greedy
  play. A fixed-difficulty model is measured at its difficulty, a curriculum
  model at every difficulty (``--eval-difficulties`` to choose).
* With ``--solvable N``, every problem greedy play lost is checked: a problem
  the no-revisit or the random strategy won can be won; every other one is
  searched breadth-first over the environment's own transitions (at most
  ``N`` of them, :mod:`mathy_a3c.solvable`). The JSON line counts the losses
  another strategy won, and of the rest those the search won, those it showed
  cannot be won within the move budget, and those it could not decide.
* Models are kept in ``--models`` (``TOPIC_DIFFICULTY_seedN``), for
  ``mathy evaluate`` and ``mathy simplify`` afterwards.
* One JSON line per topic and difficulty as it is measured, then a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mathy_a3c.runtime import configure_for_training  # noqa: E402

# Before TensorFlow loads, as `mathy train` does: this program trains.
configure_for_training()

from mathy_a3c import A3CAgent, A3CConfig  # noqa: E402
from mathy_a3c.config import DIFFICULTIES, TOPICS  # noqa: E402
from mathy_a3c.envs import Observation, make_env  # noqa: E402
from mathy_a3c.evaluation import evaluate, generated_states  # noqa: E402
from mathy_a3c.solvable import judge_losses  # noqa: E402

#: Generated evaluation problems come from this seed (as in learning.py).
EVAL_SEED = 987_654_321


def train(
    topics: list[str],
    difficulty: str,
    seconds: float,
    seed: int,
    folder: str,
    settings: dict[str, object],
):
    config = A3CConfig(
        topics=topics,
        difficulty=None if difficulty == "curriculum" else difficulty,
        model_dir=folder,
        seed=seed,
        max_eps=10**12,
        max_seconds=seconds,
        **settings,
    )
    agent = A3CAgent(config, console=False)
    return agent, agent.train()


def raw_rate(topic: str, level: str, seconds: float = 5.0) -> float:
    """Random valid actions through mathy_envs' gymnasium env, steps/s: how
    fast this machine is (time budgets mean less on a slower one)."""
    import gymnasium as gym
    import mathy_envs.gym  # noqa: F401  (registers the ids)
    import numpy as np

    env = gym.make(f"mathy-{topic}-{level}-v0")
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        action = int(rng.choice(np.flatnonzero(env.unwrapped.action_space.mask)))
        _, _, terminated, truncated, _ = env.step(action)
        steps += 1
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def measure(
    agent: A3CAgent,
    topic: str,
    level: str,
    problems: int,
    seed: int,
    quick: bool,
    solvable_budget: int,
):
    states = generated_states(topic, level, problems, seed)
    predict = agent.network.predict
    greedy = evaluate(topic, states, predict, "greedy", level)
    row = {
        "greedy_win_rate": round(greedy.win_rate, 4),
        "greedy_mean_steps": round(greedy.mean_steps, 2),
        "problems": greedy.problems,
    }
    others: tuple[tuple[bool, ...], ...] = ()
    if not quick:
        safe = evaluate(topic, states, predict, "no-revisit", level)
        rand = evaluate(topic, states, None, difficulty=level, seed=seed)
        row["no_revisit_win_rate"] = round(safe.win_rate, 4)
        row["random_win_rate"] = round(rand.win_rate, 4)
        others = (safe.won, rand.won)
    if solvable_budget:
        # Which greedy losses could be won at all within the move budget? A
        # problem another strategy won can; the others are searched.
        counts = judge_losses(
            make_env(topic), states, greedy.won, solvable_budget, others
        )
        row |= {f"greedy_lost_{verdict}": n for verdict, n in counts.items()}
        row["solvable_max_transitions"] = solvable_budget
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topics", default=",".join(TOPICS))
    parser.add_argument(
        "--difficulty", default="normal", choices=[*DIFFICULTIES, "curriculum"]
    )
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--together", action="store_true")
    parser.add_argument("--eval-problems", type=int, default=200)
    parser.add_argument("--eval-seed", type=int, default=EVAL_SEED)
    parser.add_argument("--eval-difficulties", default=None)
    parser.add_argument("--models", default=os.path.join("output", "topics"))
    parser.add_argument(
        "--quick", action="store_true", help="greedy play only (to screen levers)"
    )
    parser.add_argument(
        "--solvable",
        type=int,
        default=0,
        metavar="TRANSITIONS",
        help="breadth-first search each problem greedy play lost, with at most "
        "this many transitions, to count the ones that can be won at all "
        "(default 0: skip)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="change a default (to try a lever; recorded in every JSON line)",
    )
    args = parser.parse_args()
    settings = {
        key: json.loads(value) for key, value in (s.split("=", 1) for s in args.set)
    }
    topics = args.topics.split(",")
    if args.eval_difficulties:
        levels = args.eval_difficulties.split(",")
    elif args.difficulty == "curriculum":
        levels = list(DIFFICULTIES)
    else:
        levels = [args.difficulty]
    runs = [topics] if args.together else [[t] for t in topics]
    command = "python " + " ".join(sys.argv)
    machine = round(raw_rate("poly", "easy"), 1)
    rows = []
    for run in runs:
        name = "all" if args.together else run[0]
        folder = os.path.join(args.models, f"{name}_{args.difficulty}_seed{args.seed}")
        if os.path.exists(folder):  # a benchmark trains from scratch
            sys.exit(f"{folder} exists: remove it, or pass --models ANOTHER_FOLDER")
        agent, result = train(
            run, args.difficulty, args.seconds, args.seed, folder, settings
        )
        for topic in run:
            for level in levels:
                row = {
                    "benchmark": "topics",
                    "trained_on": name,
                    "topic": topic,
                    "train_difficulty": args.difficulty,
                    "difficulty": level,
                    "seed": args.seed,
                    "settings": settings,
                    "budget_seconds": args.seconds,
                    "train_seconds": round(result.seconds, 1),
                    "episodes": result.episodes,
                    "env_steps": result.steps,
                    "steps_per_s": round(result.steps_per_second, 1),
                    "raw_gym_poly_easy_steps_per_s": machine,
                    "observation": list(Observation._fields),
                    **measure(
                        agent,
                        topic,
                        level,
                        args.eval_problems,
                        args.eval_seed,
                        args.quick,
                        args.solvable,
                    ),
                    "model": folder,
                    "command": command,
                    "date": time.strftime("%Y-%m-%d"),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    print()
    print(
        f"{'topic':<26} {'trained':<11} {'eval':<7} {'greedy':>7} "
        f"{'no-revisit':>10} {'random':>7} {'steps':>6}"
    )
    for r in rows:
        print(
            f"{r['topic']:<26} {r['train_difficulty']:<11} {r['difficulty']:<7} "
            f"{r['greedy_win_rate']:>7.3f} {r.get('no_revisit_win_rate', -1):>10.3f} "
            f"{r.get('random_win_rate', -1):>7.3f} {r['greedy_mean_steps']:>6.2f}"
        )


if __name__ == "__main__":
    main()
