"""Search benchmark: trained models with and without tree search.

    python benchmarks/search.py --models output/topics --difficulties normal,hard

* Every model folder in ``--models`` (for example the topic benchmark's,
  ``TOPIC_DIFFICULTY_seedN``) plays ``--problems`` generated problems of its
  first topic (with ``--every-topic``, of each topic it trained on) at each
  of ``--difficulties``, from the evaluation seed training
  never uses: greedy, ``no-revisit``, and a Monte Carlo tree search guided by
  the model with ``--simulations`` per move (one at a time, as ``mathy
  simplify --search mcts`` plays).
* Models of ``poly`` also play the hand-written problems of
  ``--problems-file`` (one line per group), at the first difficulty.
* For the search it reports the win rate, the median and 95th-percentile
  wall time per problem, and the mean simulations per problem.
* With ``--solvable N``, every problem the search lost gets a breadth-first
  search over the environment's own transitions (at most ``N`` of them,
  :mod:`mathy_a3c.solvable`): the JSON line counts the losses it won, those
  it showed cannot be won within the move budget, and those it could not
  decide.
* One JSON line per model and difficulty; the docs' search page renders the
  lines kept in ``docs/results/search.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mathy_a3c import A3CAgent  # noqa: E402
from mathy_a3c.config import DEFAULT_SIMULATIONS  # noqa: E402
from mathy_a3c.envs import make_env  # noqa: E402
from mathy_a3c.evaluation import (  # noqa: E402
    evaluate,
    evaluate_search,
    generated_states,
    read_problems,
    typed_states,
)
from mathy_a3c.search import MCTS  # noqa: E402
from mathy_a3c.solvable import WON_ELSEWHERE, judge_losses  # noqa: E402

#: Generated evaluation problems come from this seed (as in topics.py).
EVAL_SEED = 987_654_321


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=os.path.join("output", "topics"))
    parser.add_argument("--difficulties", default="normal,hard")
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--simulations", type=int, default=DEFAULT_SIMULATIONS)
    parser.add_argument("--seed", type=int, default=EVAL_SEED)
    parser.add_argument(
        "--problems-file",
        default=os.path.join(os.path.dirname(__file__), "problems", "poly.txt"),
    )
    parser.add_argument(
        "--solvable",
        type=int,
        default=0,
        metavar="N",
        help="check each problem the search lost by a breadth-first search of "
        "at most N transitions (0: no check)",
    )
    parser.add_argument(
        "--every-topic",
        action="store_true",
        help="play each topic a model trained on, not just its first",
    )
    args = parser.parse_args()
    written = read_problems(args.problems_file) if args.problems_file else []
    folders = sorted(
        os.path.join(args.models, name)
        for name in os.listdir(args.models)
        if os.path.isfile(os.path.join(args.models, name, "checkpoint.npz"))
    )
    if not folders:
        sys.exit(f"no model folders in {args.models}")
    command = "python " + " ".join(sys.argv)
    for folder in folders:
        agent = A3CAgent.load(folder)
        searcher = MCTS(agent.search_evaluator(), simulations=args.simulations)
        topics = agent.config.topics if args.every_topic else agent.config.topics[:1]
        for topic in topics:
            play(args, folder, agent, searcher, topic, written, command)


def play(args, folder, agent, searcher, topic, written, command) -> None:
    """Print one JSON line for each problem set of ``topic`` the model in
    ``folder`` plays: generated ones at each difficulty, and for poly the
    hand-written groups of ``written`` at the first."""
    levels = args.difficulties.split(",")
    sets = [(level, f"generated {level}", None) for level in levels]
    if topic == "poly":
        for group in dict.fromkeys(g for g, _ in written):
            texts = [t for g, t in written if g == group]
            sets.append((levels[0], f"file: {group}", texts))
    for level, label, texts in sets:
        if texts is None:
            states = generated_states(topic, level, args.problems, args.seed)
        else:
            states = typed_states(topic, texts, level)
        predict = agent.network.predict
        greedy = evaluate(topic, states, predict, "greedy", level)
        safe = evaluate(topic, states, predict, "no-revisit", level)
        found = evaluate_search(topic, states, searcher, level)
        row = {
            "benchmark": "search",
            "model": folder,
            "topic": topic,
            "difficulty": level,
            "set": label,
            "problems": len(states),
            "simulations": args.simulations,
            "greedy_win_rate": round(greedy.win_rate, 4),
            "no_revisit_win_rate": round(safe.win_rate, 4),
            "search_win_rate": round(found.win_rate, 4),
            "search_seconds_median": round(found.seconds_median, 4),
            "search_seconds_p95": round(found.seconds_p95, 4),
            "search_simulations_mean": round(found.simulations / len(states), 1),
        }
        if args.solvable:  # which losses could be won at all?
            counts = judge_losses(make_env(topic), states, found.won, args.solvable)
            del counts[WON_ELSEWHERE]  # no other strategy is asked
            row |= {f"search_lost_{verdict}": n for verdict, n in counts.items()}
            row["solvable_max_transitions"] = args.solvable
        row |= {
            "command": command,
            "date": time.strftime("%Y-%m-%d"),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
