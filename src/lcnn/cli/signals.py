"""SIGINT and SIGTERM, to the process or to its whole group (as a job scheduler sends them), end a command
within seconds, cleanly: one line, exit 130 / 143, and what is done is kept (a scoring run's partial files, a
training run's last checkpoint), so that the same command resumes it."""

from __future__ import annotations

import functools
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType

from lcnn.errors import Interrupted

__all__ = ["WORKER_KILLED", "interruptible", "quiet_teardown", "received"]

#: The signals received while :func:`interruptible` was active: the raised exception can be swallowed where Python
#: cannot propagate it (a finaliser running at that instant prints "Exception ignored" and goes on).
received: list[int] = []

#: The error a DataLoader raises in the main process when a worker died of a signal: under a group kill the
#: workers may go before the main process has run its own handler.
WORKER_KILLED = re.compile(r"DataLoader worker \(pid.*\) (is killed by signal: (Terminated|Interrupt)|exited "
                           r"unexpectedly)")


@contextmanager
def interruptible() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM raise :class:`~lcnn.errors.Interrupted` in this process; forked
    workers (DataLoader, scoring) that inherit the handler leave at once and quietly, their parent reports."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    main = os.getpid()
    received.clear()

    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != main:
            os._exit(128 + signum)
        for s in (signal.SIGINT, signal.SIGTERM):  # a second signal must not break the clean-up
            signal.signal(s, signal.SIG_IGN)
        # Nor the workers' deaths: torch's SIGCHLD handler raises "DataLoader worker killed" from inside the
        # iterator's finaliser while the clean-up joins them, and Python prints that as a traceback. The command
        # is ending: the handler is not put back.
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        received.append(signum)
        raise Interrupted(signum)

    _register_at_fork()
    # Lightning logs the SIGTERM it sees beside ours; the command's own line says what happened.
    logging.getLogger("lightning.pytorch.trainer.connectors.signal_connector").setLevel(logging.WARNING)
    saved = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def quiet_teardown() -> None:
    """After the stop line, let the process end without the teardown's own tracebacks: a DataLoader iterator's
    finaliser joining killed workers, or multiprocessing's descriptor-sharing thread cut off mid-handshake, would
    print them ("Exception ignored in ...") after the one line that says what happened."""
    sys.unraisablehook = lambda unraisable: None
    threading.excepthook = lambda args: None


@functools.cache
def _register_at_fork() -> None:
    os.register_at_fork(after_in_child=_quiet_descriptor_sharing)  # once per process, however many commands run


def _quiet_descriptor_sharing() -> None:
    """In a forked worker: multiprocessing's descriptor-sharing thread reports a connection its peer cut (the
    command stopping and closing its end) through ``sys.excepthook``, as a traceback on the shared stderr. Those
    connection errors of that thread only are dropped; anything else is reported as before."""
    report = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, (EOFError, OSError)) and threading.current_thread().name.endswith("(_serve)"):
            return
        report(kind, value, tb)

    sys.excepthook = hook
