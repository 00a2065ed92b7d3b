"""Where one worker's time goes: milliseconds per env step, phase by phase.

    python benchmarks/phases.py --seconds 30 --topic poly --difficulty easy

One threads-backend run with one worker, with ``time.perf_counter`` around
each phase of the A3C loop (no profiler, whose cost per Python call would
inflate the Python phases). It reports each phase's milliseconds per env step
and per call, and the raw gymnasium env's rate measured just before and
after, then two ceilings that follow from them:

* ``python_ms_per_step``: the step's time outside TensorFlow's gradient call.
  Worker threads share the interpreter and give it up only for that call, so
  threads can run at most ``1 / python_ms_per_step`` steps/s together
  (``threads_ceiling_vs_raw_gym``), however many there are. Mathy topics
  make no such call (their gradients are numpy's, under the interpreter), so
  there the ceiling is one worker's own rate;
* ``one_worker_vs_raw_gym``: one worker against the raw env. N processes on N
  free cores run at most N times that.

With ``--workers N`` (N > 1) the same threads-backend run has N worker
threads taking turns: each phase's time per step then shows what sharing
one core's caches between N workers' models and environments costs (the
``episode`` and ``update`` phases then include the wait for the turn, and
the ceilings are left out).

It also times the garbage collector (``gc.callbacks``) from the first
finished episode on: ``collector_share`` is its share of that time (every
worker waits while it runs; mathy_core's expression trees are cycles that
only the collector frees).

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from mathy_a3c.runtime import configure_for_training  # noqa: E402

configure_for_training()  # before TensorFlow loads, as `mathy train` does

from throughput import raw_gym_rate  # noqa: E402

from mathy_a3c import A3CAgent, A3CConfig, envs, model, numpy_actor  # noqa: E402
from mathy_a3c import worker as worker_module  # noqa: E402

spent: collections.defaultdict[str, float] = collections.defaultdict(float)
calls: collections.Counter[str] = collections.Counter()

#: (owner, attribute, label): the phases timed. ``observe`` runs inside
#: ``step`` and ``reset``; the gradients inside ``update``: ``numpy
#: gradients`` for Mathy topics, ``gradient inputs`` and TensorFlow's
#: ``gradient call`` for gym topics; every phase inside ``episode``.
PHASES: list[tuple[Any, str, str]] = [
    (envs.MathyTask, "step", "env step"),
    (envs.MathyTask, "reset", "env reset"),
    (envs, "observe", "observe"),
    (numpy_actor.NumpyActor, "trace", "numpy actor"),
    (model.ActorCritic, "numpy_gradients", "numpy gradients"),
    (model.ActorCritic, "gradient_inputs", "gradient inputs"),
    (model.ActorCritic, "run_gradients", "gradient call"),
    (worker_module.Worker, "update", "update"),
    (worker_module.Worker, "run_episode", "episode"),
]


def timed(original: Callable[..., Any], label: str) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - start
            calls[label] += 1

    return wrapper


class Collector:
    """The garbage collector's time, by generation, once :meth:`open` is
    called (a hook on ``gc.callbacks``)."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.by_generation = [0.0, 0.0, 0.0]
        self.passes_by_generation = [0, 0, 0]
        self._start = 0.0

    @property
    def spent(self) -> float:
        return sum(self.by_generation)

    @property
    def passes(self) -> int:
        return sum(self.passes_by_generation)

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if self.since is None:
            return
        if phase == "start":
            self._start = time.perf_counter()
        elif self._start:
            generation = info["generation"]
            self.by_generation[generation] += time.perf_counter() - self._start
            self.passes_by_generation[generation] += 1

    def open(self) -> None:
        """Start counting; later calls change nothing."""
        if self.since is None:
            self.since = time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--raw-seconds", type=float, default=5.0)
    parser.add_argument("--topic", default="poly")
    parser.add_argument("--difficulty", default="easy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="worker threads")
    args = parser.parse_args()

    raw_before = raw_gym_rate(args.topic, args.difficulty, args.raw_seconds, args.seed)
    for owner, name, label in PHASES:
        setattr(owner, name, timed(getattr(owner, name), label))
    collector = Collector()
    gc.callbacks.append(collector)
    run_episode = worker_module.Worker.run_episode

    def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            return run_episode(*args, **kwargs)
        finally:
            collector.open()  # from the first finished episode on

    worker_module.Worker.run_episode = counted  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as folder:
        config = A3CConfig(
            topics=[args.topic],
            difficulty=args.difficulty,
            model_dir=folder,
            num_workers=args.workers,
            max_eps=10**9,
            max_seconds=args.seconds,
            seed=args.seed,
        )
        A3CAgent(config, console=False).train()
    gc.callbacks.remove(collector)
    assert collector.since is not None
    collected_over = time.perf_counter() - collector.since
    raw_after = raw_gym_rate(args.topic, args.difficulty, args.raw_seconds, args.seed)
    raw = (raw_before + raw_after) / 2

    steps = calls["env step"]
    result: dict[str, Any] = {
        "benchmark": "phases",
        "topic": args.topic,
        "difficulty": args.difficulty,
        "seconds": args.seconds,
        "workers": args.workers,
        "env_steps": steps,
        "date": time.strftime("%Y-%m-%d"),
    }
    for _, _, label in PHASES:
        if not calls[label]:
            continue
        key = label.replace(" ", "_")
        result[f"{key}_ms_per_step"] = round(spent[label] / steps * 1000, 3)
        result[f"{key}_ms_per_call"] = round(spent[label] / calls[label] * 1000, 3)
        print(
            f"{label:<16} {spent[label] / steps * 1000:7.3f} ms/step "
            f"{spent[label] / calls[label] * 1000:7.3f} ms/call ({calls[label]} calls)"
        )
    step_ms = spent["episode"] / steps * 1000
    python_ms = step_ms - spent["gradient call"] / steps * 1000
    result["steps_per_update"] = round(steps / calls["update"], 2)
    result["collector_passes"] = collector.passes
    result["collector_share"] = round(collector.spent / collected_over, 4)
    print(
        f"garbage collector: {collector.passes} passes, "
        f"{collector.spent / collected_over:.1%} of the run"
    )
    result["raw_gym_steps_per_s_each"] = [round(raw_before, 1), round(raw_after, 1)]
    if args.workers > 1:  # the episode phase includes waiting for the turn
        print(f"raw gym {raw:.0f} steps/s; {args.workers} worker threads")
        print(json.dumps(result))
        return
    result["python_ms_per_step"] = round(python_ms, 3)
    result["one_worker_vs_raw_gym"] = round(1000 / step_ms / raw, 3)
    result["threads_ceiling_vs_raw_gym"] = round(1000 / python_ms / raw, 3)
    print(
        f"raw gym {raw:.0f} steps/s; one worker {1000 / step_ms:.0f} steps/s "
        f"({result['one_worker_vs_raw_gym']:.2f}x); threads at most "
        f"{1000 / python_ms:.0f} steps/s ({result['threads_ceiling_vs_raw_gym']:.2f}x)"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
