"""Throughput benchmark: training env-steps/s against the raw environment's rate.

    python benchmarks/throughput.py --seconds 20 --topic poly --difficulty easy

In one run, on the same topic and difficulty, it measures:

* ``raw_gym``: random valid actions through mathy_envs' gymnasium env
  (``mathy-poly-easy-v0``), one process: the rate users know;
* ``raw_env``: random valid actions through ``mathy_a3c.envs.MathyTask`` (the
  same mathy_envs environment plus this library's observation), one process;
* ``BACKEND_N``: A3C training env-steps/s with N workers (1, 2, 4) for each
  backend (threads, processes, ray; and ``ray-ordinary``, the ray backend
  with every update an ordinary actor call, if ``--backends`` names it),
  each in a fresh process, counted from
  ``--warmup`` seconds after the first finished episode, so start-up and
  tracing are excluded;
* the ratio of each training rate to each raw rate, and of each processes rate
  to the threads rate with the same number of workers, and of each ray rate
  to the processes rate (``ray_N_vs_processes``);
* how fast the machine is varies from minute to minute (other tenants of a
  VM, clock boost), so every rate is set against its neighbours in time: the
  raw gymnasium rate is measured again (``--raw-seconds``) between every two
  training measurements, and each ``*_vs_raw_gym`` divides a training rate by
  the mean of the raw rates just before and just after it; the backends with
  the same number of workers are measured one after another;
* ``transport_ms``: one pipe round trip between two processes carrying this
  model's weights both ways, pickled: what an update would cost the
  processes backend without the shared memory it uses;
* ``two_runs``: two threads-backend runs with 2 workers each, started at the
  same moment as two separate commands (a seed sweep does that), right after
  one such run alone, and their combined rate against it
  (``two_runs_vs_one``): no run may take a CPU another needs. Runs side by
  side are measured over one shared window, ``--settle`` seconds after they
  start (past their start-up), so neither has the machine to itself while
  the other starts or ends.

Each training measurement also prints, on stderr, its window's episodes:
how many, their mean length and win rate. Two rates compare as systems only
where those match: a policy that wins in fewer steps updates more often per
step.

``--versus A,B`` (each ``BACKEND:WORKERS``) compares two settings alone, in
``--rounds`` rounds: each round measures both, in a fresh process each, with
the same seed, and takes B's rate against A's; the order alternates (A then
B, B then A, ...), so that the machine's speed drifting over the minutes
favours neither. It prints each round's ratio, their median, an interval
that holds that median with at least 95% chance (between two of the ratios,
assuming no shape of their spread; 97.9% for 10 rounds, whose second lowest
and second highest ratios bound it) and in how many rounds B was the
slower::

    python benchmarks/throughput.py --versus processes:2,processes:4 --rounds 10

``--versus A,B --together`` starts A and B at the same moment in each round
and measures both over the same window: the machine's speed, whatever it
does, is the same for both (the runs' own variation stays: 10 rounds of
processes:2 against processes:4 spread as widely as alone). The two share
the CPUs, the way runs of a sweep do; a run whose workers leave no CPU idle
while one waits (a process of several workers runs another) can take a
little of the other's share, which running alone would have left idle::

    python benchmarks/throughput.py --versus processes:2,processes:4 --together

Each round of ``--versus`` also sets B's steps per CPU second against A's
(``b_vs_a_per_cpu``): the env steps a run made in its window over the CPU
seconds its process and its worker processes used in it (from ``/proc``;
none for Ray, whose workers are not the run's child processes). That is
the work a CPU second buys, whatever share of the machine each run got:
with ``--together``, free of the machine's drift too.

``--shared-process`` takes, in ``--rounds`` rounds, one run of one worker
more than CPUs: the processes backend then runs one process of two workers
taking turns beside a process of one worker for each other CPU, all at the
same moments. Each round sets the steps the two made together in the
window against a lone worker's (the mean of them): whether two workers
sharing a core get less done than one, free of the machine's drift (here
too the two can fill each other's waits, a lone worker cannot)::

    python benchmarks/throughput.py --shared-process --rounds 10

The processes backend runs at most one worker process per CPU by default
(more workers share them as threads); ``--worker-processes N`` sets the
number of processes, as the config field does (``--only processes:4
--worker-processes 4``: a process for each of 4 workers).

The last line printed is one JSON object (with ``--only``: the rate, each
worker's steps in the window, and the steps per CPU second).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mathy_a3c.runtime import configure_for_training  # noqa: E402

# Before TensorFlow loads, as `mathy train` does: this program trains.
configure_for_training()

import numpy as np  # noqa: E402

from mathy_a3c import A3CAgent, A3CConfig  # noqa: E402
from mathy_a3c.backends import usable_cpus, worker_hosts  # noqa: E402
from mathy_a3c.callbacks import Callback, RunStats  # noqa: E402
from mathy_a3c.envs import MathyTask  # noqa: E402


def run_cpu_seconds() -> float | None:
    """CPU seconds used so far by this process (every thread) and its live
    child processes (the processes backend's workers), read from ``/proc``;
    ``None`` where there is no ``/proc`` to read."""
    import multiprocessing

    total = time.process_time()
    for child in multiprocessing.active_children():
        try:
            with open(f"/proc/{child.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def raw_gym_rate(topic: str, difficulty: str, seconds: float, seed: int) -> float:
    import gymnasium as gym
    import mathy_envs.gym  # noqa: F401  (registers the ids)

    name = "poly-like-terms-haystack" if topic == "poly-like-terms-haystack" else topic
    env = gym.make(f"mathy-{name}-{difficulty}-v0")
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        mask = env.unwrapped.action_space.mask
        action = int(rng.choice(np.flatnonzero(mask)))
        _, _, terminated, truncated, _ = env.step(action)
        steps += 1
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def raw_task_rate(topic: str, difficulty: str, seconds: float, seed: int) -> float:
    task = MathyTask([topic], difficulty, seed=seed)
    rng = np.random.default_rng(seed)
    observation = task.reset()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        result = task.step(int(rng.choice(np.flatnonzero(observation.mask))))
        steps += 1
        observation = task.reset() if result.done else result.observation
    return steps / (time.perf_counter() - start)


class Rate(Callback):
    """Env steps per second, from ``warmup`` seconds after the first episode,
    or from the first episode at or after ``start`` (``time.perf_counter``),
    where runs side by side share a window."""

    def __init__(self, warmup: float, start: float | None = None) -> None:
        self.warmup = warmup
        self.start = start
        self.first: float | None = None
        #: (time, steps, episodes, wins) when the window opened and now.
        self.mark: tuple[float, int, int, int] | None = None
        self.last: tuple[float, int, int, int] | None = None
        #: Steps of the episodes each worker finished in the window.
        self.worker_steps: dict[int, int] = {}
        #: The run's CPU seconds (:func:`run_cpu_seconds`) when the window
        #: opened, and in the window once it closed (``None``: unknown).
        self.cpu_at_mark: float | None = None
        self.cpu_s: float | None = None

    def close(self) -> None:
        """The window closes at the last episode seen: take its CPU seconds."""
        now = run_cpu_seconds()
        if self.cpu_at_mark is not None and now is not None:
            self.cpu_s = now - self.cpu_at_mark

    def on_episode(self, report, stats: RunStats) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        point = (now, stats.steps, stats.episodes, stats.wins)
        opens = (
            now >= self.start
            if self.start is not None
            else now - self.first >= self.warmup
        )
        if self.mark is None and opens:
            self.mark = point
            self.cpu_at_mark = run_cpu_seconds()
        elif self.mark is not None:
            steps = self.worker_steps.get(report.worker, 0)
            self.worker_steps[report.worker] = steps + report.steps
        self.last = point

    def episodes(self) -> str:
        """The window's episodes: how many, their mean length and win rate
        (a policy that wins in fewer steps updates more often per step)."""
        if self.mark is None or self.last is None:
            return "no episode in the window"
        steps, episodes, wins = (
            b - a for a, b in zip(self.mark[1:], self.last[1:], strict=True)
        )
        if not episodes:
            return "no episode in the window"
        return (
            f"{episodes} episodes, {steps / episodes:.2f} steps each, "
            f"win rate {wins / episodes:.3f}"
        )

    @property
    def steps_per_cpu_s(self) -> float | None:
        """Env steps in the window per CPU second the run (its process and
        its worker processes) used in it: how much work a CPU second buys,
        whatever share of the machine the run got."""
        if self.cpu_s is None or self.cpu_s <= 0 or self.mark is None:
            return None
        assert self.last is not None
        return (self.last[1] - self.mark[1]) / self.cpu_s

    @property
    def value(self) -> float:
        if self.mark is None or self.last is None or self.last[0] <= self.mark[0]:
            return 0.0
        return (self.last[1] - self.mark[1]) / (self.last[0] - self.mark[0])


def train_rate(args: argparse.Namespace, backend: str, workers: int) -> dict:
    """One training measurement: ``rate`` (env steps/s in the window) and
    ``worker_steps`` (each worker's steps in it)."""
    with tempfile.TemporaryDirectory() as folder:
        config = A3CConfig(
            topics=[args.topic],
            difficulty=args.difficulty,
            model_dir=folder,
            backend="ray" if backend == "ray-ordinary" else backend,
            ray_ordinary_calls=backend == "ray-ordinary",
            num_workers=workers,
            worker_processes=args.worker_processes,
            max_eps=10**9,
            seed=args.seed,
        )
        # A shared window (--start-at) is the same wall-clock span for every
        # run beside this one, so none has the machine to itself at its ends.
        start = None
        if args.start_at is not None:
            start = time.perf_counter() + (args.start_at - time.time())
        rate = Rate(args.warmup, start)
        end = None if start is None else start + args.seconds

        class Budget(Callback):  # stop once the measured window is long enough
            def on_episode(self, report, stats: RunStats) -> None:
                now = time.perf_counter()
                if (end is not None and now >= end) or (
                    end is None and rate.mark and now - rate.mark[0] >= args.seconds
                ):
                    rate.close()
                    raise _Done

        try:
            A3CAgent(config, callbacks=[rate, Budget()], console=False).train()
        except _Done:
            pass
        print(f"{backend}:{workers}: {rate.episodes()}", file=sys.stderr)
        if start is not None and rate.mark is not None and rate.mark[0] > start + 1:
            raise SystemExit(
                f"{backend}:{workers} trained its first episode "
                f"{rate.mark[0] - start:.1f} s after the shared window opened: "
                f"--settle {args.settle:g} is too short for this machine"
            )
        return {
            "rate": rate.value,
            "worker_steps": rate.worker_steps,
            # Ray's workers are not this process's children: their CPU is
            # not counted here, so there is no figure for Ray.
            "steps_per_cpu_s": (
                None if backend.startswith("ray") else rate.steps_per_cpu_s
            ),
        }


def fresh_train_rate(args: argparse.Namespace, backend: str, workers: int) -> float:
    """``train_rate`` in a new interpreter: no TensorFlow state carried over."""
    return side_by_side(args, [f"{backend}:{workers}"])[0]["rate"]


def side_by_side(args: argparse.Namespace, settings: list[str]) -> list[dict]:
    """Fresh ``train_rate`` measurements of ``settings`` (``BACKEND:WORKERS``
    each), started at the same moment. Two or more share one window, which
    opens ``--settle`` seconds after their start (past every run's start-up
    and first episodes) and lasts ``--seconds``."""
    import subprocess

    shared: list[str] = []
    if len(settings) > 1:
        shared = ["--start-at", str(time.time() + args.settle)]
    common = [
        "--seconds",
        str(args.seconds),
        "--warmup",
        str(args.warmup),
        "--topic",
        args.topic,
        "--difficulty",
        args.difficulty,
        "--seed",
        str(args.seed),
        "--worker-processes",
        str(args.worker_processes),
        "--settle",
        str(args.settle),
        *shared,
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--only", setting, *common],
            stdout=subprocess.PIPE,
            text=True,
        )
        for setting in settings
    ]
    outputs = [proc.communicate()[0] for proc in procs]
    if any(proc.returncode for proc in procs):
        raise RuntimeError(f"a measurement failed: {[p.returncode for p in procs]}")
    return [json.loads(out.strip().splitlines()[-1]) for out in outputs]


def median_interval(
    values: list[float], confidence: float = 0.95
) -> tuple[float, float, float]:
    """The narrowest interval between order statistics, ``[x(k), x(n+1-k)]``,
    that holds the median of what ``values`` sample with at least
    ``confidence``, whatever their distribution (the chance that fewer than
    ``k`` of ``n`` values fall below the median is a binomial tail), and the
    chance that it does. With too few values for ``confidence``, the whole
    range and its lower chance (50% for 2 values)."""
    ordered = sorted(values)
    n = len(ordered)

    def coverage(k: int) -> float:  # 1 - 2 P(at most k - 1 of n below)
        return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n

    k = 1
    while 2 * (k + 1) <= n + 1 and coverage(k + 1) >= confidence:
        k += 1
    return ordered[k - 1], ordered[n - k], coverage(k)


def summary(ratios: list[float], what: str, key: str, who: str) -> dict[str, object]:
    """Print the rounds' median ratio, its interval (:func:`median_interval`)
    and how many were below 1; return them as JSON fields named from ``key``
    (the ratios) and ``who`` (the side that was slower)."""
    median = float(np.median(ratios))
    low, high, chance = median_interval(ratios)
    slower = sum(r < 1.0 for r in ratios)
    print(
        f"{what}: median {median:.3f}x ({chance:.1%} interval {low:.3f} to "
        f"{high:.3f}), slower in {slower} of {len(ratios)} rounds"
    )
    return {
        key: [round(r, 3) for r in ratios],
        f"{key}_median": round(median, 3),
        f"{key}_median_interval": [round(low, 3), round(high, 3)],
        f"{key}_median_interval_chance": round(chance, 4),
        f"{who}_slower_rounds": slower,
    }


def versus_rounds(args: argparse.Namespace) -> dict[str, object]:
    """B's training rate against A's, alone, in rounds taken in turn."""
    settings = args.versus.split(",")
    parsed = [s.split(":") for s in settings]
    if len(settings) != 2 or any(len(p) != 2 or not p[1].isdigit() for p in parsed):
        raise SystemExit(
            f"--versus wants A,B (BACKEND:WORKERS each), not {args.versus!r}"
        )
    setting = {"a": settings[0], "b": settings[1]}
    rates: dict[str, list[float]] = {"a": [], "b": []}
    per_cpu: dict[str, list[float | None]] = {"a": [], "b": []}
    joiner = " beside " if args.together else " then "
    for i in range(args.rounds):
        # The same seed for both in a round; the order (of measuring, or of
        # starting with --together) alternates.
        round_args = argparse.Namespace(**{**vars(args), "seed": args.seed + i})
        order = ["a", "b"] if i % 2 == 0 else ["b", "a"]
        if args.together:
            both = side_by_side(round_args, [setting[which] for which in order])
        else:
            both = [side_by_side(round_args, [setting[which]])[0] for which in order]
        for which, measured in zip(order, both, strict=True):
            rates[which].append(measured["rate"])
            per_cpu[which].append(measured["steps_per_cpu_s"])
        ratio = rates["b"][-1] / rates["a"][-1]
        a_cpu, b_cpu = per_cpu["a"][-1], per_cpu["b"][-1]
        print(
            f"round {i + 1} (seed {round_args.seed}, {joiner.join(order)}): "
            f"{settings[0]} {rates['a'][-1]:.1f}, {settings[1]} {rates['b'][-1]:.1f} "
            f"steps/s, {ratio:.3f}x"
            + (f"; per CPU second {b_cpu / a_cpu:.3f}x" if a_cpu and b_cpu else "")
        )
    ratios = [b / a for a, b in zip(rates["a"], rates["b"], strict=True)]
    cpu_ratios = [
        b / a for a, b in zip(per_cpu["a"], per_cpu["b"], strict=True) if a and b
    ]
    return {
        "benchmark": "throughput_versus",
        "a": settings[0],
        "b": settings[1],
        "topic": args.topic,
        "difficulty": args.difficulty,
        "seconds": args.seconds,
        "seed": args.seed,
        "rounds": args.rounds,
        "together": args.together,
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
        "a_steps_per_s": [round(r, 1) for r in rates["a"]],
        "b_steps_per_s": [round(r, 1) for r in rates["b"]],
        **summary(ratios, f"{settings[1]} against {settings[0]}", "b_vs_a", "b"),
        **(
            {
                "a_steps_per_cpu_s": [round(r or 0, 1) for r in per_cpu["a"]],
                "b_steps_per_cpu_s": [round(r or 0, 1) for r in per_cpu["b"]],
                **summary(
                    cpu_ratios,
                    f"{settings[1]} against {settings[0]}, steps per CPU second",
                    "b_vs_a_per_cpu",
                    "b_per_cpu",
                ),
            }
            if len(cpu_ratios) == args.rounds
            else {}
        ),
    }


def shared_process_rounds(args: argparse.Namespace) -> dict[str, object]:
    """A process of two workers against processes of one, in the same run.

    With one worker more than CPUs (or than ``--worker-processes``), the
    processes backend runs one process of two workers (taking turns) and one
    process of one worker for each other CPU (:func:`worker_hosts`). All
    share the machine at the same moments, so its speed, drifting or not, is
    the same for all: each round takes the steps the two workers made
    together against the mean of a lone worker's.
    """
    cpus = usable_cpus()
    processes = args.worker_processes or cpus  # as the backend will count them
    if processes < 2:
        raise SystemExit(
            f"--shared-process needs 2 or more worker processes, not {processes}: "
            "a process of one worker to compare with"
        )
    workers = processes + 1
    hosts = worker_hosts(workers, processes)
    shared = next(ids for ids in hosts if len(ids) == 2)
    alone = [ids[0] for ids in hosts if len(ids) == 1]
    ratios: list[float] = []
    for i in range(args.rounds):
        round_args = argparse.Namespace(**{**vars(args), "seed": args.seed + i})
        (measured,) = side_by_side(round_args, [f"processes:{workers}"])
        steps = {int(w): n for w, n in measured["worker_steps"].items()}
        pair = sum(steps.get(w, 0) for w in shared)
        single = float(np.mean([steps.get(w, 0) for w in alone]))
        ratios.append(pair / single)
        print(
            f"round {i + 1} (seed {round_args.seed}): workers {shared} in one "
            f"process {pair} steps, a worker alone {single:.0f}: {ratios[-1]:.3f}x"
        )
    return {
        "benchmark": "throughput_shared_process",
        "workers": workers,
        "hosts": hosts,
        "topic": args.topic,
        "difficulty": args.difficulty,
        "seconds": args.seconds,
        "seed": args.seed,
        "rounds": args.rounds,
        "cpus": cpus,
        "date": time.strftime("%Y-%m-%d"),
        **summary(
            ratios,
            "a process of two workers against a process of one",
            "pair_vs_alone",
            "pair",
        ),
    }


class _Done(Exception):
    pass


def _echo(conn) -> None:  # a stand-in worker process for the transport timing
    while (message := conn.recv()) is not None:
        conn.send(message)


def transport_ms(rounds: int = 200) -> float:
    """A pipe round trip carrying the weights both ways (no shared memory)."""
    import multiprocessing

    from mathy_a3c.model import ActorCritic

    weights = ActorCritic(A3CConfig().model_size).flat_weights()
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_echo, args=(child,), daemon=True)
    process.start()
    parent.send(("update", weights))
    parent.recv()
    start = time.perf_counter()
    for _ in range(rounds):
        parent.send(("update", weights))
        parent.recv()
    elapsed = time.perf_counter() - start
    parent.send(None)
    process.join(timeout=10)
    return elapsed / rounds * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument(
        "--raw-seconds",
        type=float,
        default=5.0,
        help="each measurement of the raw gymnasium rate, between the others",
    )
    parser.add_argument("--topic", default="poly")
    parser.add_argument("--difficulty", default="easy")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument(
        "--backends",
        default="threads,processes,ray",
        help="also ray-ordinary: the ray backend with --ray-ordinary-calls",
    )
    parser.add_argument(
        "--only", default=None, help="BACKEND:WORKERS: measure one training rate"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--versus",
        default=None,
        help="A,B (BACKEND:WORKERS each): B's rate against A's, alone, in rounds",
    )
    parser.add_argument(
        "--shared-process",
        action="store_true",
        help="in rounds: a process of two workers against processes of one, "
        "in one run of one worker more than CPUs (or --worker-processes)",
    )
    parser.add_argument(
        "--rounds", type=int, default=10, help="with --versus or --shared-process"
    )
    parser.add_argument(
        "--together",
        action="store_true",
        help="with --versus: start A and B at the same moment in each round, "
        "measured over one shared window, instead of one after the other",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=30.0,
        help="seconds from starting runs side by side to their shared window",
    )
    parser.add_argument(
        "--start-at",
        type=float,
        default=None,
        help="with --only: open the window at this time.time() (set by runs "
        "side by side)",
    )
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=0,
        help="the processes backend's worker_processes (0: one per CPU at most)",
    )
    parser.add_argument(
        "--no-pair", action="store_true", help="skip the two-runs measurement"
    )
    args = parser.parse_args()
    if args.only:  # one measurement in a fresh process, as `mathy train` runs
        backend, workers = args.only.split(":")
        print(json.dumps(train_rate(args, backend, int(workers))))
        return
    if args.versus:
        print(json.dumps(versus_rounds(args)))
        return
    if args.shared_process:
        print(json.dumps(shared_process_rounds(args)))
        return

    result: dict[str, object] = {
        "benchmark": "throughput",
        "topic": args.topic,
        "difficulty": args.difficulty,
        "seconds": args.seconds,
        "raw_seconds": args.raw_seconds,
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
    }
    raw_env = raw_task_rate(args.topic, args.difficulty, args.seconds, args.seed)
    result["raw_env_steps_per_s"] = round(raw_env, 1)
    result["transport_ms"] = round(transport_ms(), 3)
    print(f"raw MathyTask, random valid actions: {raw_env:8.1f} steps/s")
    print(f"processes transport: {result['transport_ms']:.2f} ms per update")
    raw_rates = [raw_gym_rate(args.topic, args.difficulty, args.raw_seconds, args.seed)]

    def raw_around() -> float:
        """The raw gym rate around the measurement just made: the mean of the
        one before it and one measured now."""
        raw_rates.append(
            raw_gym_rate(args.topic, args.difficulty, args.raw_seconds, args.seed)
        )
        return (raw_rates[-2] + raw_rates[-1]) / 2

    rates: dict[tuple[str, int], float] = {}
    print(
        f"{'backend':<10} {'workers':>7} {'steps/s':>9} {'raw gym':>9} "
        f"{'x raw gym':>9} {'x raw env':>9} {'x threads':>9} {'x processes':>11}"
    )
    for workers in (int(w) for w in args.workers.split(",")):
        for backend in args.backends.split(","):
            rate = rates[backend, workers] = fresh_train_rate(args, backend, workers)
            raw_gym = raw_around()
            key = f"{backend}_{workers}"
            result[f"{key}_steps_per_s"] = round(rate, 1)
            result[f"raw_gym_around_{key}_steps_per_s"] = round(raw_gym, 1)
            result[f"{key}_vs_raw_gym"] = round(rate / raw_gym, 3)
            result[f"{key}_vs_raw_env"] = round(rate / raw_env, 3)
            versus = ""
            if backend != "threads" and ("threads", workers) in rates:
                ratio = rate / rates["threads", workers]
                result[f"{key}_vs_threads"] = round(ratio, 3)
                versus = f"{ratio:9.2f}"
            if backend.startswith("ray") and ("processes", workers) in rates:
                ratio = rate / rates["processes", workers]
                result[f"{key}_vs_processes"] = round(ratio, 3)
                versus += f"{ratio:11.2f}"
            print(
                f"{backend:<10} {workers:>7} {rate:9.1f} {raw_gym:9.1f} "
                f"{rate / raw_gym:9.2f} {rate / raw_env:9.2f} {versus:>9}"
            )
            if key == "threads_2" and not args.no_pair:  # right after one alone
                pair = [
                    m["rate"] for m in side_by_side(args, ["threads:2", "threads:2"])
                ]
                raw_around()
                combined = sum(pair)
                result["two_runs_threads_2_steps_per_s"] = [round(r, 1) for r in pair]
                result["two_runs_combined_steps_per_s"] = round(combined, 1)
                result["two_runs_vs_one"] = round(combined / rate, 3)
                print(
                    f"two threads runs side by side: {pair[0]:.1f} + {pair[1]:.1f} "
                    f"= {combined:.1f} steps/s, {combined / rate:.2f}x one alone"
                )
    result["raw_gym_steps_per_s"] = round(float(np.median(raw_rates)), 1)
    result["raw_gym_steps_per_s_each"] = [round(r, 1) for r in raw_rates]
    print(
        "raw gymnasium env, random valid actions: "
        + ", ".join(f"{r:.0f}" for r in raw_rates)
        + " steps/s, between the measurements"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
