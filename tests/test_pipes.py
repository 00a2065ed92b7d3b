"""Cheap checks for messages waiting on pipes (worker processes and their
coordinator use them)."""

from __future__ import annotations

import multiprocessing
import select
import time

import pytest

from mathy_a3c.pipes import Mailboxes, readable


@pytest.fixture(params=["poll", "no poll"], autouse=True)
def platform(request, monkeypatch):
    """Each test runs with ``select.poll`` and without it (as on Windows,
    where the checks fall back to ``multiprocessing``'s)."""
    if request.param == "no poll":
        monkeypatch.delattr(select, "poll")
    return request.param


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


def test_mailboxes_name_the_connections_with_something_waiting():
    pipes = {key: multiprocessing.Pipe() for key in (3, 5, 8)}
    boxes = Mailboxes()
    for key, (here, _) in pipes.items():
        boxes.add(key, here)
    start = time.monotonic()
    assert boxes.ready(0.05) == []
    assert time.monotonic() - start >= 0.04  # it waited for one
    pipes[5][1].send("claim")
    pipes[8][1].send("report")
    assert sorted(boxes.ready(0)) == [5, 8]
    assert pipes[5][0].recv() == "claim"
    assert boxes.ready(0) == [8]  # looking does not take a message
    assert boxes.ready(0) == [8]
    assert pipes[8][0].recv() == "report"
    assert boxes.ready(0) == []
    pipes[3][1].close()
    assert boxes.ready(0) == [3]  # its end: recv raises EOFError at once
    boxes.discard(3)
    assert 3 not in boxes and 5 in boxes
    assert boxes.ready(0) == []  # a discarded end no longer wakes it
    boxes.discard(3)  # twice is harmless
    pipes[5][1].send("done")
    assert boxes.ready(1.0) == [5]
