"""The processes backend: same A3C semantics as threads, across OS processes."""

import gc
import multiprocessing
import os
import pstats
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from helpers import Recorder, start_training, wait_for_episode

from mathy_a3c import A3CAgent, A3CConfig, WorkerError
from mathy_a3c.backends import Channel, _Link, make_backend, worker_hosts
from mathy_a3c.callbacks import Callback, QueueReporter
from mathy_a3c.checkpoint import load_checkpoint
from mathy_a3c.pipes import readable
from mathy_a3c.turn import Turn


@pytest.mark.parametrize("topic", ["poly", "gym:CartPole-v1"])
def test_two_worker_processes_train_exactly_max_eps_with_show_and_profiles(tiny, topic):
    config = A3CConfig(
        **{**tiny, "max_eps": 8, "topics": [topic]},
        backend="processes",
        profile=True,
        print_training=True,
        worker_wait=5.0,
    )
    recorder = Recorder()
    agent = A3CAgent(config, callbacks=[recorder], console=False)
    result = agent.train()
    assert result.episodes == 8
    assert sorted(r.episode for r in recorder.reports) == list(range(8))
    # --show is worker 0's alone; a worker that starts late may find every
    # episode taken (workers start in parallel, importing TensorFlow).
    played = {r.worker for r in recorder.reports}
    assert {w for w, _ in recorder.shown} == played & {0}
    assert load_checkpoint(config.model_dir).episodes == 8
    assert agent.global_model.iterations > 0
    for worker in (0, 1):
        path = os.path.join(config.model_dir, f"worker_{worker}.profile")
        assert pstats.Stats(path).total_calls > 0


def _at_fifth_call_in_worker_1(tmp_path, monkeypatch, module, method, action):
    """Make worker process 1 run ``action`` (source, ``self`` in scope) at its
    fifth call of ``module``'s ``Class.method``: sitecustomize runs in every
    new interpreter, so the spawned workers get the patch."""
    hook = tmp_path / "hook"
    hook.mkdir()
    owner, name = method.split(".")
    head = textwrap.dedent(f"""\
        import importlib, multiprocessing, os, signal, threading
        if os.environ.get("MATHY_A3C_TEST_HOOK") == "1":
            owner = getattr(importlib.import_module("{module}"), "{owner}")
            original = getattr(owner, "{name}")
            calls = {{"n": 0}}
            def {name}(self, *args):
                if "a3c-worker-1" in (
                    multiprocessing.current_process().name,  # alone in a process
                    threading.current_thread().name,  # one of several
                ):
                    calls["n"] += 1
                    if calls["n"] == 5:
        """)
    tail = f"""\
        return original(self, *args)
    setattr(owner, "{name}", {name})
"""
    body = textwrap.indent(action, " " * 16) + "\n"
    (hook / "sitecustomize.py").write_text(head + body + tail)
    monkeypatch.setenv(
        "PYTHONPATH", f"{hook}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    )
    monkeypatch.setenv("MATHY_A3C_TEST_HOOK", "1")


def test_worker_hosts_deal_workers_out_to_the_processes_in_turn():
    assert worker_hosts(4, 2) == [[0, 2], [1, 3]]
    assert worker_hosts(3, 2) == [[0, 2], [1]]
    assert worker_hosts(2, 8) == [[0], [1]]  # never more processes than workers
    assert worker_hosts(3, 1) == [[0, 1, 2]]


def test_a_worker_sharing_its_process_gives_up_the_turn_only_to_wait():
    """A reply already in the pipe (the next episode's number, asked for an
    episode ahead) is read at once: the process's other worker gets the turn
    when this one must wait for the coordinator, not at every episode."""
    here, there = multiprocessing.Pipe()
    turn = Turn()
    channel = Channel(here.send, here.recv, readable(here))
    link = _Link(channel, threading.Event(), turn=turn)
    other_held = threading.Event()

    def other_worker():
        with turn.held():
            other_held.set()

    def coordinator():
        there.recv()  # the first claim below; its answer waits for the other
        other_held.wait(timeout=10)
        there.send(("episode", 4))

    there.send(("episode", 3))  # the answer to a claim made an episode ago
    with turn.held():
        other = threading.Thread(target=other_worker, daemon=True)
        other.start()
        other.join(timeout=0.2)  # waiting for the turn
        threading.Thread(target=coordinator, daemon=True).start()
        assert link.claim() == 3
        assert not other_held.is_set()
        assert link.claim() == 4  # waited, and the other worker played
        assert other_held.is_set()


def test_workers_beyond_the_processes_run_in_them_as_threads(tiny):
    """3 workers in 2 processes: the same exact episode count, every worker
    reporting and profiled, as with a process each."""
    config = A3CConfig(
        **{**tiny, "max_eps": 12, "num_workers": 3},
        backend="processes",
        worker_processes=2,
        profile=True,
        print_training=True,
    )
    processes: set[str] = set()

    class Processes(Callback):
        def on_episode(self, report, stats):
            processes.update(p.name for p in multiprocessing.active_children())

    recorder = Recorder()
    agent = A3CAgent(config, callbacks=[recorder, Processes()], console=False)
    result = agent.train()
    assert processes == {"a3c-worker-0-2", "a3c-worker-1"}
    assert result.episodes == 12
    assert sorted(r.episode for r in recorder.reports) == list(range(12))
    played = {r.worker for r in recorder.reports}
    assert {w for w, _ in recorder.shown} == played & {0}
    for worker in (0, 1, 2):
        path = os.path.join(config.model_dir, f"worker_{worker}.profile")
        assert pstats.Stats(path).total_calls > 0


def test_a_worker_process_freezes_what_it_built_and_still_collects_what_it_plays(
    tiny, tmp_path, monkeypatch
):
    """Before its workers play, a worker process exempts what it built
    (TensorFlow, Keras, the network) from the collector's scans. The
    collector stays on, and what playing makes is never frozen: mathy_core's
    expression trees are cycles that only the collector frees."""
    hook = tmp_path / "hook"
    hook.mkdir()
    seen = tmp_path / "seen"
    (hook / "sitecustomize.py").write_text(
        textwrap.dedent(f"""\
            import gc, os
            if os.environ.get("MATHY_A3C_TEST_HOOK") == "1":
                from mathy_a3c import worker
                original = worker.Worker.run_episode
                played = {{"n": 0}}
                def run_episode(self, episode):
                    played["n"] += 1
                    if played["n"] in (20, 300):
                        enabled, frozen = gc.isenabled(), gc.get_freeze_count()
                        gc.collect()  # what is left is alive
                        alive = len(gc.get_objects())
                        with open({str(seen)!r}, "a") as out:
                            out.write(f"{{enabled}} {{frozen}} {{alive}}\\n")
                    return original(self, episode)
                worker.Worker.run_episode = run_episode
        """)
    )
    monkeypatch.setenv(
        "PYTHONPATH", f"{hook}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    )
    monkeypatch.setenv("MATHY_A3C_TEST_HOOK", "1")
    config = A3CConfig(
        **{**tiny, "max_eps": 400, "update_interval": 4},
        backend="processes",
        worker_processes=1,  # both workers in one process, taking turns
    )
    assert A3CAgent(config, console=False).train().episodes == 400
    (enabled, frozen, early), (still_enabled, frozen_later, late) = (
        line.split() for line in seen.read_text().splitlines()
    )
    assert enabled == still_enabled == "True"
    assert int(frozen) > 50_000  # the modules, TensorFlow, Keras, the network
    # What the workers make is never frozen (a frozen object may still die).
    assert int(frozen_later) <= int(frozen)
    # Unfrozen, the collector tracks a few thousand objects, not all of them.
    assert int(early) < 50_000 and int(late) < 50_000, (early, late)
    assert gc.get_freeze_count() == 0  # the training process keeps its own


@pytest.mark.parametrize("processes", [2, 1], ids=["alone", "sharing a process"])
def test_a_crashing_worker_process_stops_training_with_its_traceback(
    tiny, tmp_path, monkeypatch, processes
):
    _at_fifth_call_in_worker_1(
        tmp_path,
        monkeypatch,
        "mathy_a3c.envs",
        "MathyTask.step",
        'raise RuntimeError("boom in process")',
    )
    config = A3CConfig(
        **{**tiny, "max_eps": 10**6},
        backend="processes",
        worker_processes=processes,
        max_seconds=120,
    )
    start = time.monotonic()
    with pytest.raises(WorkerError, match="worker 1 failed.*boom in process") as info:
        A3CAgent(config, console=False).train()
    assert "Traceback" in str(info.value.__cause__)
    assert "in step" in str(info.value.__cause__)
    assert time.monotonic() - start < 120


def test_a_worker_process_killed_holding_the_global_models_lock_stops_training(
    tiny, tmp_path, monkeypatch
):
    """Worker processes update the global model in shared memory under one
    lock: a worker killed while it holds it must not leave the others, or the
    coordinator's save, waiting forever."""
    _at_fifth_call_in_worker_1(
        tmp_path,
        monkeypatch,
        "mathy_a3c.parameter_server",
        "GlobalModel.apply_flat",
        "with self._held():\n    os.kill(os.getpid(), signal.SIGKILL)",
    )
    config = A3CConfig(
        **{**tiny, "max_eps": 10**6}, backend="processes", max_seconds=120
    )
    start = time.monotonic()
    with pytest.raises(WorkerError, match="worker 1 failed.*exited"):
        A3CAgent(config, console=False).train()
    assert time.monotonic() - start < 100
    assert A3CAgent.load(config.model_dir).total_episodes > 0


@pytest.mark.parametrize(
    ("workers", "processes"), [(2, 0), (3, 1)], ids=["a process each", "sharing one"]
)
def test_ctrl_c_stops_every_worker_process_and_saves(tmp_path, workers, processes):
    folder = tmp_path / "agent"
    proc = start_training(
        folder,
        "--backend",
        "processes",
        "--episodes",
        "1000000",
        "--workers",
        str(workers),
        "--worker-processes",
        str(processes),
        "--model-size",
        "8",
        "--no-progress",
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    wait_for_episode(proc, " w0 ep ")
    children = subprocess.run(
        ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
    ).stdout.split()
    assert len(children) >= 2
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert f"Interrupted by SIGINT: stopped {workers} workers (processes)" in err
    assert "Traceback" not in err
    deadline = time.monotonic() + 15
    while _running(children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(children), f"processes left behind: {_running(children)}"
    assert load_checkpoint(str(folder)).episodes >= 1


def _running(pids):
    """PIDs still running (zombies waiting to be reaped do not count)."""
    alive = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                state = next(line for line in status if line.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if "Z" not in state.split()[1]:
            alive.append(pid)
    return alive


# -- ray (tests/test_ray_backend.py runs it) --------------------------------------


def test_asking_for_ray_without_ray_installed_says_how_to_install_it(tmp_path):
    code = (
        "import sys\n"
        "sys.modules['ray'] = None  # as if Ray were not installed\n"
        "from mathy_a3c.cli import app\n"
        f"app(['train', 'a3c', 'poly', {str(tmp_path / 'x')!r}, '--backend', 'ray'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2
    assert "pip install 'mathy-a3c[ray]'" in done.stderr + done.stdout


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity"), reason="needs Linux's CPU affinity"
)
def test_no_thread_is_ever_pinned_to_a_cpu(tiny, monkeypatch):
    """The operating system places every thread: two runs side by side share
    all the machine's cores (a run that pinned its threads to the lowest CPU
    left the others idle when two ran at once)."""
    from mathy_a3c.worker import Worker

    everywhere = os.sched_getaffinity(0)
    seen = []
    run_episode = Worker.run_episode

    def recording(self, episode):
        seen.append(os.sched_getaffinity(0))
        return run_episode(self, episode)

    class During(Callback):
        def on_episode(self, report, stats):
            seen.append(os.sched_getaffinity(0))

    monkeypatch.setattr(Worker, "run_episode", recording)
    A3CAgent(A3CConfig(**tiny), callbacks=[During()], console=False).train()
    assert len(seen) >= 2 * tiny["max_eps"]
    assert all(cpus == everywhere for cpus in seen)


def test_a_script_without_the_main_guard_is_told_what_to_add(tmp_path):
    """Each worker process imports the main script again (spawn): a script
    that trains at its top level would train there too. It is stopped there
    before it touches the model folder, and the training stops with a line
    that says what to add."""
    script = tmp_path / "train.py"
    script.write_text(
        "from mathy_a3c import A3CAgent, A3CConfig\n"
        f"config = A3CConfig(topics=['poly'], model_dir={str(tmp_path / 'm')!r},"
        " num_workers=1, max_eps=4, model_size=8, backend='processes')\n"
        "A3CAgent(config, console=False).train()\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "while starting up" in last and 'if __name__ == "__main__":' in last
    assert "TrainingInWorker: training started inside a worker process" in done.stderr
    assert "FolderBusy" not in done.stderr  # not "trained by another run"


def test_stopping_copes_with_worker_processes_that_never_started(tiny):
    """start() can fail before every worker process started (too many open
    files, say): stop() then must not kill or join the others."""
    config = A3CConfig(**{**tiny, "num_workers": 2}, backend="processes")
    agent = A3CAgent(config, console=False)
    backend = make_backend(config, agent.global_model, QueueReporter(), 0)
    backend.stop()  # none started: nothing to kill, nothing to wait for
    assert not backend.alive()
