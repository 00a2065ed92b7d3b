"""The turn: one worker thread runs Python at a time; no thread is pinned."""

import threading

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
