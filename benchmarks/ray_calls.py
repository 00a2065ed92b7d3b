"""What one update's round trip costs on each remote backend, with nothing
else running: the floor under the ray backend's speed.

    python benchmarks/ray_calls.py

Per update, a remote worker sends its gradients and gets the new global
weights back (flat float32 vectors of the model's size). This times that
round trip alone, as each backend makes it, with no training around it:

* ``processes``: a message through a pipe, the vectors through shared memory
  (copied in and out): how :class:`mathy_a3c.backends.ProcessBackend`
  exchanged them until its workers shared the global model itself (they
  now update it under a lock, with no message), kept as the floor of one
  message between two processes;
* ``ray``: one actor call that carries the weights in pieces and returns the
  gradients in pieces (:func:`mathy_a3c.ray_worker.split`, as
  :class:`mathy_a3c.ray_backend.RayBackend` does with workers on other nodes,
  or with ``--ray-ordinary-calls``);
* ``ray_compiled``: the same exchange through a Ray Compiled Graph of one
  call, the vectors whole (as the ray backend does with workers on the
  driver's node, :mod:`mathy_a3c.ray_lines`);
* ``ray_empty``: an actor call with a small argument and result: Ray's own
  cost per call, whatever it carries.

The last line printed is one JSON object: the median milliseconds per round
trip of ``--repeats`` passes of ``--calls`` calls each, their ratios, and
for each Ray way the CPU time the driver's process spends per round trip
(``*_driver_cpu_ms``, all its threads): with many workers, the driver is
the one process that serves every update.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from datetime import date
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mathy_a3c.ray_worker import join, pieces_for, split  # noqa: E402


def _model_size(model_size: int) -> int:
    from mathy_a3c.model import ActorCritic

    return ActorCritic(model_size=model_size).size


def _child(conn: Any, gradients: Any, weights: Any) -> None:
    """A processes-backend worker's side: take the weights, send gradients."""
    grads = np.frombuffer(gradients, np.float32)
    new = np.frombuffer(weights, np.float32)
    local = np.random.default_rng(0).random(grads.size, dtype=np.float32)
    while conn.recv()[0] != "stop":
        held = new.copy()  # as the worker's link copies them out
        np.copyto(grads, local)
        conn.send(("update", None))
        local, held = held, local


def time_processes(size: int, calls: int) -> float:
    context = multiprocessing.get_context("spawn")
    shared = (context.RawArray("f", size), context.RawArray("f", size))
    here, there = context.Pipe()
    child = context.Process(target=_child, args=(there, *shared), daemon=True)
    child.start()
    grads = np.frombuffer(shared[0], np.float32)
    weights = np.frombuffer(shared[1], np.float32)
    current = np.random.default_rng(1).random(size, dtype=np.float32)
    here.send(("weights", None))
    here.recv()
    start = time.perf_counter()
    for _ in range(calls):
        np.copyto(weights, current)
        here.send(("weights", None))
        here.recv()
        current = grads.copy()
    seconds = time.perf_counter() - start
    here.send(("stop",))
    child.join(timeout=10)
    return seconds / calls * 1e3


class Echo:
    """A ray-backend worker's side: take the weights, return gradients."""

    def __init__(self, size: int, pieces: int) -> None:
        self.gradients = np.random.default_rng(0).random(size, dtype=np.float32)
        self.pieces = pieces

    def exchange(self, reply: tuple, spare: int | None, *weights: Any) -> tuple:
        held = join(weights)
        messages = [("update", None)]
        out = (messages, *split(self.gradients, self.pieces))
        self.gradients = held
        return out

    def exchange_whole(self, call: tuple) -> tuple:
        _, _, weights = call
        held = np.array(weights, np.float32)
        out = ([("update", None)], self.gradients)
        self.gradients = held
        return out

    def empty(self, value: int) -> int:
        return value


def time_ray(size: int, calls: int, repeats: int) -> dict[str, list[float]]:
    """Milliseconds per round trip, and the driver's CPU milliseconds per
    round trip (``*_driver_cpu``), of each way to call a Ray actor."""
    import ray
    from ray.dag import InputNode

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        pieces = pieces_for(size)
        echo = ray.remote(num_cpus=1)(Echo)
        actor = echo.remote(size, pieces)
        # Its own actor: one in a compiled graph should run nothing else.
        compiled_actor = echo.remote(size, pieces)
        with InputNode() as call:
            graph = compiled_actor.exchange_whole.bind(call)
        compiled = graph.experimental_compile()
        weights = np.random.default_rng(1).random(size, dtype=np.float32)

        def ordinary(weights: np.ndarray) -> np.ndarray:
            refs = actor.exchange.options(num_returns=1 + pieces).remote(
                ("weights", None), None, *split(weights, pieces)
            )
            _, *parts = ray.get(refs)
            return join(parts)

        def through_graph(weights: np.ndarray) -> np.ndarray:
            call = (("weights", None), None, weights)
            _, gradients = ray.get(compiled.execute(call))
            return np.array(gradients, np.float32)

        def empty(weights: np.ndarray) -> np.ndarray:
            ray.get(actor.empty.remote(0))
            return weights

        ways = {"ray": ordinary, "ray_compiled": through_graph, "ray_empty": empty}
        times: dict[str, list[float]] = {}
        for name, way in ways.items():
            weights = way(weights)  # warm
            times[name], times[f"{name}_driver_cpu"] = [], []
        for _ in range(repeats):
            for name, way in ways.items():
                start, cpu = time.perf_counter(), time.process_time()
                for _ in range(calls):
                    weights = way(weights)
                times[name].append((time.perf_counter() - start) / calls * 1e3)
                used = (time.process_time() - cpu) / calls * 1e3
                times[f"{name}_driver_cpu"].append(used)
        compiled.teardown()
        return times
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-size", type=int, default=64)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    size = _model_size(args.model_size)
    processes = [time_processes(size, args.calls) for _ in range(args.repeats)]
    times = time_ray(size, args.calls, args.repeats)
    medians = {
        "processes": float(np.median(processes)),
        **{name: float(np.median(values)) for name, values in times.items()},
    }
    print(
        json.dumps(
            {
                "benchmark": "ray_calls",
                "weights": size,
                "pieces": pieces_for(size),
                "calls": args.calls,
                "repeats": args.repeats,
                **{f"{k}_ms": round(v, 3) for k, v in medians.items()},
                "ray_vs_processes": round(medians["ray"] / medians["processes"], 2),
                "ray_compiled_vs_processes": round(
                    medians["ray_compiled"] / medians["processes"], 2
                ),
                "ray_empty_vs_processes": round(
                    medians["ray_empty"] / medians["processes"], 2
                ),
                "cpus": os.cpu_count(),
                "command": " ".join(["python benchmarks/ray_calls.py", *sys.argv[1:]]),
                "date": date.today().isoformat(),
            }
        )
    )


if __name__ == "__main__":
    main()
