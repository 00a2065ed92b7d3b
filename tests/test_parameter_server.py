"""The global model: flat weights and Adam behind a lock, saved by path."""

import threading

import numpy as np

from mathy_a3c.flat_adam import FlatAdam
from mathy_a3c.model import ActorCritic
from mathy_a3c.parameter_server import GlobalModel


def _grads(size, count, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(0.0, 0.1, size).astype(np.float32) for _ in range(count)]


def test_it_applies_gradients_and_resyncs_local_models():
    net, local = ActorCritic(model_size=8), ActorCritic(model_size=8)
    shared = GlobalModel(net.flat_weights(), net.layout, learning_rate=1e-2)
    reference = FlatAdam.fresh(net.flat_weights(), learning_rate=1e-2)
    flat = shared.copy_to(local)
    np.testing.assert_array_equal(local.flat_weights(), net.flat_weights())
    for grad in _grads(net.size, 3):
        flat = shared.apply_flat(grad)
        np.testing.assert_array_equal(flat, reference.apply(grad))
    assert shared.iterations == 3
    np.testing.assert_array_equal(shared.flat_weights(), flat)
    flat[:] = 0.0  # callers get copies
    assert np.any(shared.flat_weights() != 0.0)


def test_state_round_trips_by_variable_path_with_or_without_the_optimizer():
    net = ActorCritic(model_size=8)
    shared = GlobalModel(net.flat_weights(), net.layout, learning_rate=1e-2)
    for grad in _grads(net.size, 4, seed=1):
        shared.apply_flat(grad)
    state = shared.state()
    assert set(state.weights) == {path for path, *_ in net.layout}
    assert state.weights["conv_0/kernel"].shape == (3, 8, 8)
    assert state.iterations == 4
    again = GlobalModel(net.flat_weights(), net.layout, learning_rate=1e-2)
    again.load(state)
    np.testing.assert_array_equal(again.flat_weights(), shared.flat_weights())
    grad = _grads(net.size, 1, seed=2)[0]
    np.testing.assert_array_equal(again.apply_flat(grad), shared.apply_flat(grad))
    fresh = GlobalModel(net.flat_weights(), net.layout, learning_rate=1e-2)
    fresh.load(state, with_optimizer=False)  # --transfer: weights only
    assert fresh.iterations == 0
    saved = np.concatenate([state.weights[path].ravel() for path, *_ in net.layout])
    np.testing.assert_array_equal(fresh.flat_weights(), saved)


def test_updates_from_many_threads_are_each_applied_once():
    net = ActorCritic(model_size=8)
    shared = GlobalModel(net.flat_weights(), net.layout, learning_rate=1e-3)
    grads = _grads(net.size, 1)[0]

    def work():
        for _ in range(50):
            shared.apply_flat(grads)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert shared.iterations == 200


def _toy_model(size=1000):
    weights = np.linspace(-1.0, 1.0, size).astype(np.float32)
    return GlobalModel(weights, [("w", 0, size, (size,))], learning_rate=1e-3)


def test_worker_processes_update_a_model_in_shared_memory_each_update_once():
    import multiprocessing

    from shared_model_processes import apply

    model = _toy_model()
    reference = FlatAdam.fresh(model.flat_weights(), learning_rate=1e-3)
    gradient = _grads(1000, 1, seed=3)[0]
    model.apply_flat(gradient)  # what it learned before sharing stays
    reference.apply(gradient)
    context = multiprocessing.get_context("spawn")
    shared = model.share(context)
    model.lr_scale = 0.5  # the coordinator's scale reaches the workers
    workers = [
        context.Process(target=apply, args=(shared, gradient, 25)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    for _ in range(50):
        reference.apply(gradient, lr_scale=0.5)
    assert model.iterations == 51
    np.testing.assert_array_equal(model.flat_weights(), reference.weights)
    state = model.state()  # loading writes into the shared memory, in place
    model.load(state, with_optimizer=False)
    assert GlobalModel.attach(shared).iterations == 0
    assert not GlobalModel.attach(shared).stopping
    model.stopping = True
    assert GlobalModel.attach(shared).stopping


def test_the_coordinator_takes_the_lock_back_from_a_worker_killed_holding_it():
    import multiprocessing
    import time

    from shared_model_processes import hold_the_lock

    model = _toy_model()
    context = multiprocessing.get_context("spawn")
    shared = model.share(context)
    held = context.Event()
    worker = context.Process(target=hold_the_lock, args=(shared, held))
    worker.start()
    assert held.wait(timeout=120)
    model.holder_gone = lambda pid: pid == worker.pid and not worker.is_alive()
    worker.kill()
    start = time.monotonic()
    model.flat_weights()  # would wait forever for the dead worker's lock
    assert time.monotonic() - start < 10
    worker.join()
    # And the backend's way: told of the loss, it frees the lock at once.
    again = context.Process(target=hold_the_lock, args=(shared, held))
    held.clear()
    again.start()
    assert held.wait(timeout=120)
    again.kill()
    again.join()
    model.free_lock_of(again.pid)
    assert model.lock.acquire(timeout=1)
    model.lock.release()
