"""The ray backend on a local runtime and on a real multi-node Ray cluster
(``ray.cluster_utils.Cluster``: a head and worker nodes, each a raylet with
its own resources and its own temporary folder, on this machine)."""

import os
import pstats
import re
import signal
import subprocess
import textwrap
import time

import pytest
from helpers import MATHY, TINY, Recorder, mathy_env

from mathy_a3c import A3CAgent, A3CConfig, WorkerError
from mathy_a3c.checkpoint import load_checkpoint

ray = pytest.importorskip("ray")
# One Ray test at a time, even when the tests run in parallel (pytest -n).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]

#: "ray: worker 1 runs on node 1c0118df3649 (host, pid 3927)"
PLACED = re.compile(r"ray: worker (\d+) runs on node (\w+) \(.*pid (\d+)")


class Output:
    """A running ``mathy`` command's merged output, read line by line."""

    def __init__(self, proc):
        self.proc, self.lines = proc, []

    def until(self, pattern, timeout=120.0):
        """Read until a line matches ``pattern``; returns the match."""
        deadline = time.monotonic() + timeout
        for line in self.proc.stdout:
            self.lines.append(line)
            found = re.search(pattern, line)
            if found:
                return found
            if time.monotonic() > deadline:
                break
        raise AssertionError(f"no line matched {pattern!r}:\n{self.text[-3000:]}")

    def rest(self, timeout=300.0):
        out, _ = self.proc.communicate(timeout=timeout)
        self.lines.append(out)
        return self.proc.returncode

    @property
    def text(self):
        return "".join(self.lines)


def _mathy(args, cwd, **popen):
    return subprocess.Popen(
        [*MATHY, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=mathy_env(),
        **popen,
    )


# -- a local runtime --------------------------------------------------------------


def test_two_ray_actors_train_a_gym_topic_with_a_local_runtime(tiny, capfd):
    config = A3CConfig(
        **{**tiny, "max_eps": 8, "topics": ["gym:CartPole-v1"]},
        backend="ray",
        profile=True,
        print_training=True,
    )
    recorder = Recorder()
    result = A3CAgent(config, callbacks=[recorder], console=False).train()
    assert result.episodes == 8
    assert sorted(r.episode for r in recorder.reports) == list(range(8))
    # --show is worker 0's alone; a worker that starts late may find every
    # episode taken (workers start in parallel, importing TensorFlow).
    played = {r.worker for r in recorder.reports}
    assert {w for w, _ in recorder.shown} == played & {0}
    assert load_checkpoint(config.model_dir).episodes == 8
    for worker in (0, 1):
        path = os.path.join(config.model_dir, f"worker_{worker}.profile")
        assert pstats.Stats(path).total_calls > 0
    assert not ray.is_initialized()  # the local runtime stopped with the run
    # Both workers run on the driver's node: their updates go through
    # compiled graphs, whose teardown logs nothing at the end.
    err = capfd.readouterr().err
    assert len(re.findall(r"runs on node .*; talks through a compiled graph", err)) == 2
    assert "ordinary actor calls" not in err and "Tearing down" not in err


def test_a_ray_worker_whose_claim_takes_the_last_episode_plays_it_once(tiny, capfd):
    # The worker is handed its next number ahead, with its first weights; its
    # first claim uses that number up while none is left to hand out in its
    # place: the worker must not keep it as a spare too.
    # (Through ordinary actor calls, as asked, though it runs on this node.)
    config = A3CConfig(
        **{**tiny, "num_workers": 1, "max_eps": 1},
        backend="ray",
        max_seconds=120,
        ray_ordinary_calls=True,
    )
    recorder = Recorder()
    result = A3CAgent(config, callbacks=[recorder], console=False).train()
    assert result.episodes == 1
    assert [r.episode for r in recorder.reports] == [0]
    assert "; talks through actor calls" in capfd.readouterr().err


def test_a_crashing_ray_actor_stops_training_with_its_traceback(
    tiny, tmp_path, monkeypatch
):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        textwrap.dedent("""
        import os
        if os.environ.get("MATHY_A3C_TEST_CRASH") == "1":
            from mathy_a3c import backends
            original = backends.run_remote_worker
            def crashing(worker_id, config, first_episode, send, recv):
                if worker_id == 1:
                    def boom(message):
                        if message[0] == "episode":
                            raise RuntimeError("boom in actor")
                        send(message)
                    return original(worker_id, config, first_episode, boom, recv)
                return original(worker_id, config, first_episode, send, recv)
            backends.run_remote_worker = crashing
    """)
    )
    monkeypatch.setenv(
        "PYTHONPATH", f"{hook}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    )
    monkeypatch.setenv("MATHY_A3C_TEST_CRASH", "1")
    # bounded in time: a crash that never comes fails the test, not hangs it
    config = A3CConfig(**{**tiny, "max_eps": 10**6}, backend="ray", max_seconds=120)
    with pytest.raises(WorkerError, match="worker 1 failed.*boom in actor") as info:
        A3CAgent(config, console=False).train()
    assert "Traceback" in str(info.value.__cause__)
    assert load_checkpoint(config.model_dir).episodes >= 0  # saved on the way out


def test_a_killed_actor_process_stops_the_run_with_a_save_when_asked(tmp_path):
    """``--ray-lost-worker stop``: a lost worker stops training cleanly; the
    model is saved and the command says what happened (exit 1)."""
    run = Output(
        _mathy(
            ["train", "a3c", "poly", "agent", "--backend", "ray", *TINY]
            + ["--episodes", "100000", "--ray-lost-worker", "stop", "--no-progress"],
            cwd=tmp_path,
        )
    )
    placed = {}
    while len(placed) < 2:
        found = run.until(PLACED.pattern)
        placed[int(found[1])] = int(found[3])
    run.until(" w0 ep ")
    os.kill(placed[1], signal.SIGKILL)
    assert run.rest() == 1, run.text[-3000:]
    assert "Error: worker 1 failed, training stopped: WorkerLost: its actor " in (
        run.text
    )
    assert "ray_lost_worker is stop" in run.text
    assert load_checkpoint(str(tmp_path / "agent")).episodes >= 1


# -- a cluster of three nodes ---------------------------------------------------------


@pytest.fixture
def cluster(tmp_path):
    """A head that runs no worker (0 CPUs) and two worker nodes of 2 CPUs,
    each node with a temporary folder of its own."""
    from ray.cluster_utils import Cluster

    def temp(name):
        folder = tmp_path / name
        folder.mkdir()
        return {"TMPDIR": str(folder)}

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "env_vars": temp("head")},
    )
    nodes = [cluster.add_node(num_cpus=2, env_vars=temp(f"node{i}")) for i in (1, 2)]
    cluster.wait_for_nodes()
    yield cluster, nodes
    cluster.shutdown()


def test_a_cluster_trains_across_nodes_loses_one_and_resumes(cluster, tmp_path):
    cluster, nodes = cluster
    address = cluster.address
    driver = tmp_path / "driver"  # the driver's machine: its own working folder
    driver.mkdir()
    folder = driver / "agent"
    ray_args = ["--backend", "ray", "--ray-address", address]

    # A worker that no node can hold is refused before anything trains.
    refused = _mathy(
        ["train", "a3c", "poly", "agent", *ray_args, *TINY]
        + ["--ray-cpus-per-worker", "3"],
        cwd=driver,
    )
    out, _ = refused.communicate(timeout=120)
    assert refused.returncode == 2, out
    assert (
        "Error: --ray-cpus-per-worker 3: no node of the Ray cluster has that many "
        "CPUs (the largest has 2)"
    ) in out
    assert not folder.exists()

    # Train across both worker nodes, with the package shipped to them.
    episodes = 160
    run = Output(
        _mathy(
            ["train", "a3c", "poly", "agent", *ray_args, *TINY, "--difficulty", "hard"]
            + ["--episodes", str(episodes), "--show", "--profile", "--save-every", "1"]
            + ["--ray-ship-code", "--verbose", "--no-progress"],
            cwd=driver,
        )
    )
    on, shipped = {}, set()
    while len(on) < 2:
        found = run.until(PLACED.pattern)
        on[int(found[1])] = next(n for n in nodes if n.node_id.startswith(found[2]))
        # Not on the driver's node: ordinary actor calls, not a compiled graph.
        assert "; talks through actor calls; its mathy_a3c: " in run.lines[-1]
        shipped.add(run.lines[-1].split("its mathy_a3c: ")[-1].strip())
    assert {on[0], on[1]} == set(nodes)  # one worker on each worker node
    import mathy_a3c

    here = os.path.dirname(os.path.abspath(mathy_a3c.__file__))
    assert here not in shipped and all("runtime_resources" in p for p in shipped)
    run.until(r" w1 ep ")
    removed = on[1].node_id[:12]
    cluster.remove_node(on[1])  # worker 1's node dies

    run.until(r"ray: worker 1 lost \(ActorDiedError")
    load_checkpoint(str(folder))  # the folder stays loadable throughout
    # A new actor process imports TensorFlow first: minutes on a loaded machine.
    again = run.until(PLACED.pattern, timeout=300.0)
    assert int(again[1]) == 1
    assert on[0].node_id.startswith(again[2])  # the survivor has a free CPU
    load_checkpoint(str(folder))
    assert run.rest() == 0, run.text[-3000:]
    # The node ids, the loss and the recreation (pytest -s -n 0 shows them).
    print("\n".join(x for x in run.text.splitlines() if x.startswith("ray:")))
    print(f"cluster nodes: {[n.node_id[:12] for n in nodes]}, removed {removed}")

    assert f"Trained {episodes} episodes" in run.text
    assert load_checkpoint(str(folder)).episodes == episodes  # exact
    # Every number once: the lost worker's unfinished episode was played again.
    numbers = [int(n) for n in re.findall(r" w\d ep +(\d+) ", run.text)]
    assert sorted(numbers) == list(range(episodes))
    assert "[poly hard]" in run.text  # --show, from worker 0
    for worker in (0, 1):  # profiles came back to the driver's folder
        assert pstats.Stats(str(folder / f"worker_{worker}.profile")).total_calls
    written_on_nodes = [
        os.path.join(root, name)
        for node in ("head", "node1", "node2")
        for root, _, names in os.walk(tmp_path / node)
        for name in names
        if name.endswith(".profile")
    ]
    assert not written_on_nodes

    # The model resumes through the cluster that is left: one node of 2 CPUs,
    # so of two workers of 2 CPUs one never finds a node. The other plays
    # every episode, and the run stops waiting for the first.
    resumed = _mathy(
        ["train", "a3c", "poly", "agent", *ray_args, "--episodes", "4"]
        + ["--ray-cpus-per-worker", "2", "--no-progress"],
        cwd=driver,
    )
    out, _ = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, out
    assert f"Resuming agent: {episodes} episodes" in out
    assert load_checkpoint(str(folder)).episodes == episodes + 4
    (placed,) = PLACED.findall(out)
    assert (
        f"ray: worker {1 - int(placed[0])} never found a node with 2 free CPUs; "
        f"every episode is done without it"
    ) in out

    # Without an address a run starts a runtime of its own: it does not join
    # the cluster that runs on this machine.
    alone = _mathy(
        ["train", "a3c", "gym:CartPole-v1", "alone", "--backend", "ray", *TINY]
        + ["--episodes", "4", "--no-progress"],
        cwd=driver,
    )
    out, _ = alone.communicate(timeout=180)
    assert alone.returncode == 0, out
    ours = {node.node_id[:12] for node in [cluster.head_node, *nodes]}
    placed = [m[1] for m in PLACED.findall(out)]
    assert placed and not ours & set(placed)
