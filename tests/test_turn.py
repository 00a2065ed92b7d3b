"""The turn: one worker thread runs Python at a time, on one CPU."""

import os
import threading

import pytest

from mathy_a3c import turn as turn_module
from mathy_a3c.turn import Turn, cpu_split, set_thread_cpus

needs_two_cpus = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs a process that may use 2 CPUs and can pin threads",
)


def _in_thread(target):
    """Run ``target`` in a new thread (placement changes stay there)."""
    out, errors = [], []

    def run():
        try:
            out.append(target())
        except BaseException as error:  # re-raised in the test's thread
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return out[0]


def test_the_turn_is_held_except_away_and_given_back_on_errors():
    turn = Turn(None)
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
    turn = Turn(None)
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


@needs_two_cpus
def test_the_holder_runs_on_the_python_cpu_and_away_on_the_others():
    split = cpu_split()
    python, others = split
    turn = Turn(split)

    def placements():
        before = os.sched_getaffinity(0)
        seen = []
        with turn.held():
            seen.append(os.sched_getaffinity(0))
            with turn.away():
                seen.append(os.sched_getaffinity(0))
            seen.append(os.sched_getaffinity(0))
        return before, seen, os.sched_getaffinity(0)

    before, seen, after = _in_thread(placements)
    assert seen == [{python}, set(others), {python}]
    assert after == before  # the thread's own CPUs are given back


@needs_two_cpus
def test_set_thread_cpus_moves_only_the_calling_thread():
    everything = os.sched_getaffinity(0)
    one = min(everything)

    def move():
        set_thread_cpus({one})
        return os.sched_getaffinity(0)

    assert _in_thread(move) == {one}
    assert os.sched_getaffinity(0) == everything


def test_a_refused_placement_leaves_the_threads_where_they_are(monkeypatch):
    def refuse(cpus):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(turn_module, "set_thread_cpus", refuse)
    turn = Turn((0, frozenset({1})))
    with turn.held():  # does not fail...
        with turn.away():
            pass
    assert turn.split is None  # ...and stops trying
