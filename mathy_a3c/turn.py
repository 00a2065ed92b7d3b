"""The interpreter's turn: worker threads of one process run Python one at a time.

A worker thread holds the turn while it runs Python (acting, stepping its
environment, applying its update) and gives it up while TensorFlow computes
its gradients, which needs no interpreter. Left to the GIL alone, the threads
would hand the interpreter back and forth at every numpy call.

Where the process may use 2 or more CPUs (Linux), the turn also places the
threads: the holder runs on one CPU, kept for Python, while a worker away from
the turn (its thread runs part of the gradient's arithmetic) and TensorFlow's
own threads run on the others. Only one worker runs Python at a time, so that
one CPU is all the workers' Python can use; keeping TensorFlow off it keeps
the interpreter, the bottleneck with 2 or more workers, from waiting for a
CPU, and its data in that CPU's caches.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

#: Threads TensorFlow starts for its own work are named with this prefix
#: (``tf_Compute``, ``tf_graph_runner``, ...).
TF_THREAD_PREFIX = "tf_"


def cpu_split() -> tuple[int, frozenset[int]] | None:
    """``(python_cpu, other_cpus)`` of this process, or ``None`` when it may
    use a single CPU or cannot place threads (not Linux)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2:
        return None
    python = min(cpus)
    return python, frozenset(cpus - {python})


class Turn:
    """Held by the one worker thread that runs Python (see the module doc).

    ``split`` is ``(python_cpu, other_cpus)`` as :func:`cpu_split` returns it,
    or ``None`` to leave every thread where it is.
    """

    def __init__(self, split: tuple[int, frozenset[int]] | None) -> None:
        self._lock = threading.Lock()
        self.split = split

    def locked(self) -> bool:
        return self._lock.locked()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the turn for a worker's whole run (given up in :meth:`away`),
        on the Python CPU; the calling thread's CPUs are restored at the end."""
        before = os.sched_getaffinity(0) if self.split is not None else None
        self._place_python()
        self._lock.acquire()
        try:
            yield
        finally:
            self._lock.release()
            if before is not None:
                self._place(before)

    @contextlib.contextmanager
    def away(self) -> Iterator[None]:
        """Give up the turn for a block that runs in TensorFlow, not Python."""
        self._lock.release()
        # Hand the GIL over too, so a worker waiting for the turn runs at once
        # instead of after this thread's Python up to its next GIL release
        # (the turn stood idle 12% of the time without this, 6% with it).
        # Moving to the other CPUs releases it; otherwise sleep(0) does.
        if self.split is not None:
            self._place(self.split[1])
        else:
            time.sleep(0)
        try:
            yield
        finally:
            # Wait off the Python CPU: the holder keeps it to itself.
            self._lock.acquire()
            self._place_python()

    def place_helpers(self) -> Callable[[], None]:
        """Move the calling thread (which serves the workers) and TensorFlow's
        own threads off the Python CPU; returns the function that puts them
        back where they were."""
        if self.split is None:
            return lambda: None
        moved = {}
        for tid in [threading.get_native_id(), *tensorflow_threads()]:
            with contextlib.suppress(OSError):  # it ended, or may not move
                moved[tid] = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, self.split[1])

        def restore() -> None:
            while moved:
                tid, cpus = moved.popitem()
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(tid, cpus)

        return restore

    def _place_python(self) -> None:
        if self.split is not None:
            self._place({self.split[0]})

    def _place(self, cpus: set[int] | frozenset[int]) -> None:
        try:
            set_thread_cpus(cpus)
        except OSError:  # a sandbox may refuse: run unplaced from now on
            self.split = None


def set_thread_cpus(cpus: set[int] | frozenset[int]) -> None:
    """Run the calling thread on ``cpus`` only (Linux).

    ``os.sched_setaffinity`` holds the GIL while the kernel moves the thread
    to another CPU, about 60 µs on a 2-CPU VM, and the worker taking the turn
    waits for it; libc's own call through ctypes releases the GIL meanwhile
    (2-3% more env steps/s with 2 workers).
    """
    if _sched_setaffinity is None or max(cpus) >= _CPU_SET_BITS:
        os.sched_setaffinity(0, cpus)
        return
    mask = _CpuSet()
    for cpu in cpus:
        mask.bits[cpu // 64] |= 1 << (cpu % 64)
    if _sched_setaffinity(0, ctypes.sizeof(mask), ctypes.byref(mask)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


_CPU_SET_BITS = 1024


class _CpuSet(ctypes.Structure):
    """glibc's ``cpu_set_t``: a bit mask of 1024 CPUs."""

    _fields_ = [("bits", ctypes.c_uint64 * (_CPU_SET_BITS // 64))]


def _libc_sched_setaffinity() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).sched_setaffinity
    except (OSError, AttributeError):
        return None


_sched_setaffinity = _libc_sched_setaffinity()


def tensorflow_threads() -> list[int]:
    """Thread ids of this process's TensorFlow threads (Linux; else none)."""
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return []
    found = []
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/comm") as comm:
                if comm.read().startswith(TF_THREAD_PREFIX):
                    found.append(int(tid))
        except OSError:  # the thread ended meanwhile
            continue
    return found
