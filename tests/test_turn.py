"""The turn: one worker thread runs Python at a time; no thread is pinned."""

import contextlib
import threading
import time

import pytest

from mathy_a3c.turn import Turn


def test_the_turn_is_held_except_away_and_given_back_on_errors():
    turn = Turn()
    with turn.held():
        assert turn.locked()
        with turn.away():
            assert not turn.locked()
        assert turn.locked()
        with pytest.raises(RuntimeError), turn.away():
            raise RuntimeError("boom")
        assert turn.locked()  # taken back before the error goes on
    assert not turn.locked()


def test_between_updates_the_turn_is_passed_on_only_after_its_quantum():
    turn = Turn(quantum_s=0.2)
    passed = []
    turn.away = lambda: _logged(passed)  # type: ignore[method-assign]
    with turn.held():
        turn.between_updates()  # just taken
        assert passed == []
        time.sleep(0.25)
        turn.between_updates()  # held longer than its quantum
        assert passed == ["away"]
    turn = Turn(quantum_s=0.2)
    with turn.held():
        time.sleep(0.25)
        with turn.away():  # taken back: the quantum starts again
            pass
        turn.away = lambda: _logged(passed)  # type: ignore[method-assign]
        turn.between_updates()
        assert passed == ["away"]


def test_the_quantum_grows_with_the_run_up_to_its_longest():
    turn = Turn(quantum_s=0.02, growth=0.02, max_quantum_s=0.2)
    assert turn.quantum(time.perf_counter()) == 0.02  # not taken yet
    before = time.perf_counter()
    with turn.held():
        after = time.perf_counter()
        assert 0.02 <= turn.quantum(after) <= 0.02 + 0.02 * (after - before)
        assert turn.quantum(after + 4) == pytest.approx(0.1, abs=1e-3)
        assert turn.quantum(after + 60) == 0.2
        with turn.away():  # counted from the first time it was taken
            pass
        assert turn.quantum(after + 4) == pytest.approx(0.1, abs=1e-3)
    # Held 0.25 s, a run 0.25 s old keeps it: its quantum is 0.27 s by then.
    turn = Turn(quantum_s=0.02, growth=1.0, max_quantum_s=1.0)
    passed = []
    with turn.held():
        time.sleep(0.25)
        turn.away = lambda: _logged(passed)  # type: ignore[method-assign]
        turn.between_updates()
        assert passed == []


def _logged(log):
    log.append("away")
    return contextlib.nullcontext()


def test_with_no_quantum_a_waiting_thread_gets_the_turn_after_each_update():
    turn = Turn(quantum_s=0.0, growth=0.0)
    order = []
    with turn.held():
        assert not turn.between_updates()  # nobody waiting: taken straight back
        other = threading.Thread(target=lambda: _hold_and_log(turn, order))
        other.start()
        other.join(timeout=0.2)
        assert other.is_alive()
        order.append("first update")
        # The lock is not fair: it may be taken straight back; then again.
        while not turn.between_updates():  # the other thread held it between
            assert other.is_alive()
        other.join(timeout=10)
        assert not other.is_alive()
    assert order == ["first update", "second held"]


def test_a_thread_waits_for_the_turn_while_another_holds_it():
    turn = Turn()
    order = []
    with turn.held():
        other = threading.Thread(target=lambda: _hold_and_log(turn, order))
        other.start()
        other.join(timeout=0.2)
        assert other.is_alive()  # waiting for the turn
        order.append("first away")
        with turn.away():
            other.join(timeout=10)
    assert order == ["first away", "second held"]


def _hold_and_log(turn, order):
    with turn.held():
        order.append("second held")
