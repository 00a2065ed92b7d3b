"""The garbage collector in a worker process: its time per 1,000 env steps.

    python benchmarks/collector.py --episodes 1500 --rounds 3

Runs the body of a processes-backend worker process
(``backends.run_worker_process``) with 1 worker, and with 2 workers taking
turns, each in a fresh interpreter, against a coordinator in that
interpreter that answers at once, for ``--episodes`` episodes of poly easy
in all. The learning rate is 1e-9 (``--lr``), so the policy stays as built
and every run plays the same kind of episode. Each runs twice: as shipped,
with what the worker process built frozen (``runtime.freeze_built_objects``),
and with that call left out, as before 2026-12-07. A hook on
``gc.callbacks`` (``phases.Collector``) times every collection once the
first worker is built.

For each of the four it reports the collector's milliseconds per 1,000
steps (``collector_ms_per_kstep``, by generation too) and the process's CPU
seconds per 1,000 steps, the medians of ``--rounds`` runs taken in turn,
then ``two_vs_one_collector_ms_per_kstep``: what the collector costs a
process of two workers over a process of one, per 1,000 steps, frozen and
not.

``--child WORKERS FREEZE`` runs one of them and prints its JSON line: under
valgrind it counts instructions, e.g.
``valgrind --tool=cachegrind python benchmarks/collector.py --child 2 no
--episodes 150 --quantum 10`` (``--quantum``: the turn's quantum in
seconds, long enough for valgrind's pace).

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)


def child(workers: int, freeze: bool, episodes: int, lr: float, quantum: float):
    """One worker process's body, timed; returns its figures."""
    from mathy_a3c.runtime import configure_for_training

    configure_for_training()
    import multiprocessing

    from phases import Collector

    from mathy_a3c import backends, turn
    from mathy_a3c.config import A3CConfig
    from mathy_a3c.model import network_for
    from mathy_a3c.parameter_server import GlobalModel
    from mathy_a3c.tasks import task_spec

    if quantum > 0:  # a fixed quantum: neither start nor growth
        turn.Turn.__init__.__defaults__ = (quantum, 0.0, quantum)
    collector = Collector()
    cpu_at_built: list[float] = []
    freeze_built_objects = backends.freeze_built_objects

    def built() -> None:  # called once, when the first worker is built
        if freeze:
            freeze_built_objects()
        collector.open()
        cpu_at_built.append(time.process_time())

    backends.freeze_built_objects = built
    gc.callbacks.append(collector)
    config = A3CConfig(
        topics=["poly"],
        difficulty="easy",
        num_workers=workers,
        lr=lr,
        seed=1,
        model_dir=os.path.join(ROOT, "output", "collector-benchmark"),
    )
    network = network_for(config, task_spec(config))
    global_model = GlobalModel(network.flat_weights(), network.layout, config.lr)
    shared = global_model.share(multiprocessing.get_context("spawn"))
    handed_out = [0]
    steps = [0]

    def channel() -> backends.Channel:
        replies: collections.deque[tuple] = collections.deque()

        def send(message: tuple) -> None:
            if message[0] == "episode":
                steps[0] += message[1].steps
            if message[0] in ("claim", "episode"):
                n = handed_out[0]
                handed_out[0] += 1
                replies.append(("stop",) if n >= episodes else ("episode", n))

        return backends.Channel(send, replies.popleft, lambda: bool(replies))

    backends.run_worker_process(
        list(range(workers)),
        config.to_dict(),
        0,
        [channel() for _ in range(workers)],
        shared,
    )
    cpu = time.process_time() - cpu_at_built[0]
    per_kstep = 1000.0 / steps[0]
    return {
        "workers": workers,
        "frozen": freeze,
        "steps": steps[0],
        "collections": collector.passes_by_generation,
        "collector_ms_per_kstep": round(1000 * collector.spent * per_kstep, 2),
        "collector_ms_per_kstep_by_generation": [
            round(1000 * s * per_kstep, 2) for s in collector.by_generation
        ],
        "cpu_s_per_kstep": round(cpu * per_kstep, 4),
        "frozen_objects": gc.get_freeze_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-9)
    parser.add_argument("--quantum", type=float, default=0.0)
    parser.add_argument("--child", nargs=2, metavar=("WORKERS", "FREEZE"))
    args = parser.parse_args()
    if args.child:
        workers, freeze = int(args.child[0]), args.child[1] == "yes"
        result = child(workers, freeze, args.episodes, args.lr, args.quantum)
        print(json.dumps(result), flush=True)
        return
    runs: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for r in range(args.rounds):
        for workers in (1, 2):
            for freeze in ("yes", "no"):
                done = subprocess.run(
                    [
                        sys.executable,
                        os.path.abspath(__file__),
                        "--child",
                        str(workers),
                        freeze,
                        "--episodes",
                        str(args.episodes),
                        "--lr",
                        str(args.lr),
                        "--quantum",
                        str(args.quantum),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                run = json.loads(done.stdout.strip().splitlines()[-1])
                key = f"{workers}_{'frozen' if freeze == 'yes' else 'not_frozen'}"
                runs[key].append(run)
                print(f"round {r + 1}: {key} {json.dumps(run)}", file=sys.stderr)
    print(json.dumps(summarize(runs, args.episodes, args.rounds)))


def summarize(
    runs: dict[str, list[dict[str, Any]]], episodes: int, rounds: int
) -> dict[str, Any]:
    """The medians of each case's runs, and what a second worker adds."""
    summary: dict[str, Any] = {
        "benchmark": "collector",
        "episodes": episodes,
        "rounds": rounds,
        "date": datetime.date.today().isoformat(),
    }
    for key, measured in runs.items():
        summary[key] = {
            figure: statistics.median(run[figure] for run in measured)
            for figure in ("collector_ms_per_kstep", "cpu_s_per_kstep", "steps")
        }
        summary[key]["collector_ms_per_kstep_by_generation"] = [
            statistics.median(
                run["collector_ms_per_kstep_by_generation"][g] for run in measured
            )
            for g in range(3)
        ]
    summary["two_vs_one_collector_ms_per_kstep"] = {
        state: round(
            summary[f"2_{state}"]["collector_ms_per_kstep"]
            - summary[f"1_{state}"]["collector_ms_per_kstep"],
            2,
        )
        for state in ("frozen", "not_frozen")
    }
    return summary


if __name__ == "__main__":
    main()
