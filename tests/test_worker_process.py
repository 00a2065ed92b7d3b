"""The worker process's start-up helpers (the processes backend runs them)."""

from __future__ import annotations

import multiprocessing

import pytest

from mathy_a3c.worker_process import readable


def test_readable_says_whether_a_message_or_the_end_is_waiting():
    here, there = multiprocessing.Pipe()
    ready = readable(here)
    assert not ready()
    there.send(("episode", 1))
    assert ready()
    assert ready()  # looking does not take the message
    assert here.recv() == ("episode", 1)
    assert not ready()
    there.send(("episode", 2))
    there.send(("stop",))
    assert here.recv() == ("episode", 2)
    assert ready()  # the second message
    assert here.recv() == ("stop",)
    there.close()
    assert ready()  # recv returns at once: the other end is gone
    with pytest.raises(EOFError):
        here.recv()
