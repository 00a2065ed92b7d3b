"""One worker, driven directly: rollout length, bootstrapping, reporting."""

import numpy as np
import pytest
from helpers import one_worker

from mathy_a3c.config import A3CConfig


def _worker(tmp_path, **overrides):
    config = A3CConfig(
        model_dir=str(tmp_path),
        model_size=8,
        max_eps=4,
        update_interval=3,
        **overrides,
    )
    return one_worker(config)


def test_one_update_per_update_interval_steps_and_per_episode_end(tmp_path):
    worker, learner, reporter = _worker(tmp_path)
    worker.run()
    assert len(reporter.episodes) == 4
    expected = sum(-(-r.steps // 3) for r in reporter.episodes)  # ceil(steps / 3)
    assert learner.updates == expected
    assert worker.steps.value == sum(r.steps for r in reporter.episodes)


def test_rollout_bootstraps_from_the_local_value_unless_terminal(tmp_path, monkeypatch):
    worker, _, _ = _worker(tmp_path)
    seen = []
    original = worker.update

    def spy(rollout, bootstrap):
        seen.append((len(rollout), bootstrap))
        return original(rollout, bootstrap)

    monkeypatch.setattr(worker, "update", spy)
    worker.run()
    cut = [b for n, b in seen[:-1] if n == 3]
    assert seen[-1][1] == 0.0  # the last rollout ended an episode
    assert any(b != 0.0 for b in cut)  # cut rollouts bootstrap from V(s)


def test_local_model_matches_global_after_every_update(tmp_path):
    worker, learner, _ = _worker(tmp_path)
    worker.run()
    np.testing.assert_array_equal(
        worker.local.flat_weights(), learner.shared.flat_weights()
    )
    assert learner.shared.iterations == learner.updates


def test_show_lines_describe_every_step(tmp_path):
    worker, _, reporter = _worker(tmp_path, print_training=True)
    worker.run()
    steps = sum(r.steps for r in reporter.episodes)
    step_lines = [t for _, t in reporter.lines if not t.startswith("[")]
    assert len(step_lines) == steps
    assert all(" | " in line and "@" in line for line in step_lines)


@pytest.mark.parametrize("topic", ["poly", "gym:CartPole-v1"])
def test_a_worker_holds_the_turn_except_while_tensorflow_computes(
    tmp_path, monkeypatch, topic
):
    """Threads share one interpreter: a worker acts, steps its environment and
    takes a Mathy network's gradients in numpy holding the turn; a gym
    network's gradients are a TensorFlow call, made without it."""
    from mathy_a3c.turn import Turn

    worker, learner, reporter = _worker(tmp_path, topics=[topic])
    worker.turn = turn = Turn(quantum_s=0.0, growth=0.0)  # passed on after every update
    held: dict[str, list[bool]] = {
        "step": [],
        "numpy": [],
        "prepare": [],
        "tensorflow": [],
        "update": [],
        "away": [],
    }

    def spy(name, target):
        def call(*args, **kwargs):
            held[name].append(turn.locked())
            return target(*args, **kwargs)

        return call

    local = worker.local
    monkeypatch.setattr(worker.task, "step", spy("step", worker.task.step))
    monkeypatch.setattr(local, "numpy_gradients", spy("numpy", local.numpy_gradients))
    monkeypatch.setattr(local, "_prepare", spy("prepare", local._prepare))
    monkeypatch.setattr(local, "run_gradients", spy("tensorflow", local.run_gradients))
    monkeypatch.setattr(learner, "update", spy("update", learner.update))
    away = turn.away
    monkeypatch.setattr(turn, "away", spy("away", away))
    worker.run()
    assert len(reporter.episodes) == 4
    # ... and, with no quantum, gives it up after every update, whichever way
    # it computed it.
    assert len(held["away"]) >= len(held["update"])
    assert held["step"] and all(held["step"])
    assert held["update"] and all(held["update"])  # one update at a time
    if topic == "poly":
        assert held["numpy"] and all(held["numpy"])
        assert not held["tensorflow"] and not held["prepare"]
    else:
        assert not held["numpy"]
        assert held["prepare"] and all(held["prepare"])  # numpy -> tensors
        assert held["tensorflow"] and not any(held["tensorflow"])
    assert not turn.locked()  # given back when the worker is done


def test_a_worker_keeps_the_turn_across_updates_for_its_quantum(tmp_path, monkeypatch):
    from mathy_a3c.turn import Turn

    worker, learner, reporter = _worker(tmp_path)
    worker.turn = turn = Turn(quantum_s=3600.0)
    updates, aways = [], []
    monkeypatch.setattr(learner, "update", _counting(updates, learner.update))
    monkeypatch.setattr(turn, "away", _counting(aways, turn.away))
    worker.run()
    assert len(reporter.episodes) == 4 and updates
    assert not aways  # never held an hour, so never passed on
    assert not turn.locked()


def test_after_another_worker_held_the_turn_a_worker_resyncs(tmp_path, monkeypatch):
    """Its next rollout starts from the global weights the others updated."""
    import threading
    import time

    from mathy_a3c.turn import Turn

    worker, learner, reporter = _worker(tmp_path)
    worker.turn = turn = Turn(quantum_s=0.0, growth=0.0)
    global_model = learner.shared
    rng = np.random.default_rng(0)
    size = worker.local.size

    def other_worker():  # another worker thread's update, in its turn
        with turn.held():
            global_model.apply_flat(rng.normal(size=size).astype(np.float32))

    passed_on = turn.between_updates

    def between_updates():
        other = threading.Thread(target=other_worker)
        other.start()
        # Passed on, then taken back before the other thread took it: again.
        deadline = time.monotonic() + 30
        while not passed_on():
            assert time.monotonic() < deadline, "the other worker never took it"
        other.join()
        return True

    monkeypatch.setattr(turn, "between_updates", between_updates)
    resynced = []
    copy_to = learner.copy_to

    def checked_copy_to(local):
        weights = copy_to(local)
        resynced.append(np.array_equal(weights, global_model.flat_weights()))
        return weights

    monkeypatch.setattr(learner, "copy_to", checked_copy_to)
    worker.run()
    assert len(reporter.episodes) == 4
    # Once at the start, then after every update.
    assert len(resynced) == 1 + learner.updates and all(resynced)
    np.testing.assert_array_equal(
        worker.local.flat_weights(), global_model.flat_weights()
    )


def _counting(calls, target):
    def call(*args, **kwargs):
        calls.append(1)
        return target(*args, **kwargs)

    return call


def test_a_failing_worker_gives_the_turn_back(tmp_path, monkeypatch):
    from mathy_a3c.turn import Turn

    worker, _, _ = _worker(tmp_path)
    worker.turn = turn = Turn()

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(worker.learner, "update", broken)
    with pytest.raises(RuntimeError, match="boom"):
        worker.run()
    assert not turn.locked()


def test_search_strategies_choose_which_workers_search(tmp_path):
    from mathy_a3c.worker import Worker

    def searching(strategy):
        config = A3CConfig(
            model_dir=str(tmp_path), model_size=8, action_strategy=strategy
        )
        worker, learner, reporter = one_worker(config)
        others = [
            Worker(
                i, config, learner, reporter, worker.episodes, worker.steps, worker.stop
            )
            for i in (1, 2)
        ]
        return [w.search is not None for w in (worker, *others)]

    assert searching("a3c") == [False, False, False]
    assert searching("mcts_worker_0") == [True, False, False]
    assert searching("mcts_worker_n") == [False, True, True]


def test_a_searching_worker_plays_and_learns_from_the_searched_moves(tmp_path):
    worker, learner, reporter = _worker(
        tmp_path, action_strategy="mcts_worker_0", mcts_sims=4
    )
    chosen, learned = [], []
    choose, update = worker.search.choose, worker.update

    def spy_choose(task):
        chosen.append(choose(task))
        return chosen[-1]

    def spy_update(rollout, bootstrap):
        learned.extend(step[1] for step in rollout)
        return update(rollout, bootstrap)

    worker.search.choose = spy_choose
    worker.update = spy_update
    worker.run()
    assert len(reporter.episodes) == 4
    assert chosen and learned == chosen  # the A3C gradient of the moves taken
    assert learner.updates > 0


def _pair(tmp_path, **overrides):
    """Workers 0 and 1 of one process, taking turns (handed over after every
    update) against one real global model, as the backends build them."""
    import threading

    from helpers import ListReporter, RecordingLearner

    from mathy_a3c.counting import EpisodeCounter, StepCounter
    from mathy_a3c.tasks import task_spec
    from mathy_a3c.turn import Turn
    from mathy_a3c.worker import Worker

    config = A3CConfig(
        model_dir=str(tmp_path),
        model_size=8,
        max_eps=16,
        update_interval=3,
        num_workers=2,
        **overrides,
    )
    learner, reporter = RecordingLearner(task_spec(config)), ListReporter()
    shared = (EpisodeCounter(config.max_eps), StepCounter(), threading.Event())
    turn = Turn(quantum_s=0.0, growth=0.0)
    first = Worker(0, config, learner, reporter, *shared, turn=turn)
    second = Worker(1, config, learner, reporter, *shared, turn=turn, beside=first)
    return (first, second), learner, reporter


@pytest.mark.parametrize(
    ("overrides", "shared"),
    [
        ({}, True),
        ({"worker_wait": 1.0}, False),  # worker 1 sleeps in mid-rollout
        ({"topics": ["gym:CartPole-v1"]}, False),  # TensorFlow's gradients
    ],
)
def test_workers_taking_turns_share_the_local_model_unless_a_rollout_is_cut(
    tmp_path, overrides, shared
):
    (first, second), _, _ = _pair(tmp_path, **overrides)
    assert (second.local is first.local) is shared
    assert (second.actor is first.actor) is shared
    # Either way, the gradient function is traced once.
    assert second.local.gradient_function is first.local.gradient_function


def _run_checking_rollouts(workers, learner):
    """Run the workers as threads; return how many updates computed their
    gradients at other weights than the ones their rollout was played with."""
    import threading
    from collections import defaultdict

    played = defaultdict(list)  # thread -> the actor's weights at each step
    actors = {id(w.actor): w.actor for w in workers}
    for actor in actors.values():
        now = {"weights": None}

        def refresh(flat, _refresh=actor.refresh, _now=now):
            _now["weights"] = np.array(flat, copy=True)
            _refresh(flat)

        def trace(obs, _trace=actor.trace, _now=now):
            played[threading.get_ident()].append(_now["weights"])
            return _trace(obs)

        actor.refresh, actor.trace = refresh, trace
    mixed = []
    update = learner.update

    def checked_update(local):
        weights = local.flat_weights()
        rollout = played.pop(threading.get_ident())
        mixed.append(not all(np.array_equal(w, weights) for w in rollout))
        return update(local)

    learner.update = checked_update
    threads = [threading.Thread(target=w.run) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert len(mixed) == learner.updates > 0
    return sum(mixed)


@pytest.mark.parametrize("worker_wait", [0.0, 2.0])
def test_every_update_learns_at_the_weights_its_rollout_was_played_with(
    tmp_path, worker_wait
):
    workers, learner, reporter = _pair(tmp_path, worker_wait=worker_wait)
    assert _run_checking_rollouts(workers, learner) == 0
    assert len(reporter.episodes) == 16
    assert {r.worker for r in reporter.episodes} == {0, 1}


def test_a_local_model_shared_across_a_cut_rollout_would_mix_weights(
    tmp_path, monkeypatch
):
    """Why a worker that sleeps in mid-rollout keeps its own model: the check
    above catches the other worker's updates landing in its rollout."""
    from mathy_a3c.worker import Worker

    monkeypatch.setattr(Worker, "_shares_local_with", lambda self, other: True)
    workers, learner, _ = _pair(tmp_path, worker_wait=2.0)
    assert workers[1].local is workers[0].local
    assert _run_checking_rollouts(workers, learner) > 0
