"""Ctrl-C and SIGTERM during training: stop, save, then exit.

While :class:`StopSignals` is active, SIGINT (Ctrl-C) and SIGTERM (``kill``,
``timeout``, Slurm, Kubernetes, ``docker stop``) no longer raise anything in
the middle of whatever the main thread is doing. They record a request, which
the training loop sees within a few milliseconds: it stops every worker, saves
the model, and only then ends the run (``KeyboardInterrupt`` for SIGINT,
``SystemExit(143)`` for SIGTERM; the CLI exits 130 or 143).

A second signal cannot interrupt the save: it prints that the save is in
progress and is otherwise ignored. A signal that was ignored when training
started (``nohup``, a background job of a non-interactive shell) stays ignored.

Handlers can only be installed from the main thread; elsewhere the block runs
with the process's handlers as they are.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

#: Exit codes by signal, as a shell reports a process that a signal ended.
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class StopSignals:
    """Turns SIGINT and SIGTERM into a stop request for the block's duration.

    ``what`` says in messages what the stop is for, e.g. ``"saving the model
    to output/agent"``; with ``None`` the first signal prints nothing (the
    caller reports it).
    """

    def __init__(self, what: str | None) -> None:
        self.what = what
        #: The first signal received, or ``None``.
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(signal.Signals(self.signum), 1) if self.signum else 0

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in EXIT_CODES:
            previous = signal.getsignal(signum)
            if previous == signal.SIG_IGN:
                continue
            self._previous[signum] = previous
            signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        while self._previous:
            signum, previous = self._previous.popitem()
            signal.signal(signum, previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signum is None:
            self.signum = signum
            if self.what is not None:
                _say(f"\n{name} received: stopping the workers, then {self.what}\n")
        elif self.what is not None:
            _say(
                f"\n{name} received again: {self.what} is in progress and will "
                f"not be interrupted; please wait\n"
            )


def _say(text: str) -> None:
    """Write to stderr from a signal handler: straight to the file descriptor,
    since the handler may run in the middle of a write to ``sys.stderr``."""
    try:
        os.write(2, text.encode())
    except OSError:
        pass
