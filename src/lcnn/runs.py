"""Run folders are owned: one process at a time (a lock file naming its pid and host), and a folder that holds
a run is continued (``--resume``) or replaced (``--overwrite``) only when asked, after the arguments and the
data have been checked, never silently."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lcnn.errors import UserError

__all__ = ["RunFolder"]

LOCK = ".lock"
RUN_FILES = ("config.json", "checkpoints", "metrics.json", "summary.json")  # any of them: the folder holds a run


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


class RunFolder:
    """The folder of a training run (``--out``)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def holds_run(self) -> list[str]:
        """The run files the folder holds (empty: no run)."""
        return [name for name in RUN_FILES if (self.path / name).exists()] if self.path.is_dir() else []

    def check(self, resume: bool, overwrite: bool, force: bool = False) -> None:
        """Refuse what would lose or mix a run: a folder another process holds (unless ``force``), a folder
        holding a run without ``resume`` or ``overwrite``, ``resume`` of a folder without a run."""
        lock = self.path / LOCK
        if lock.exists() and not force:
            raise UserError(self._refusal(self._holder(lock)))
        if resume and overwrite:
            raise UserError("--resume continues the run in --out and --overwrite replaces it: give one of them")
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"--out {self.path}: exists and is not a folder")
        found = self.holds_run()
        if found and not (resume or overwrite):
            raise UserError(f"{self.path} holds a run ({', '.join(found)}): --resume continues it, --overwrite "
                            "replaces it, or choose another --out")  # fmt: skip
        if resume and not found:
            raise UserError(f"{self.path}: nothing to resume (no run in this folder)")

    def clear(self) -> None:
        """Remove the folder's contents (``--overwrite``), its lock excepted."""
        for entry in self.path.iterdir():
            if entry.name == LOCK:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    @contextmanager
    def lock(self, force: bool = False) -> Iterator[None]:
        """Hold the folder's lock for the duration of the block (creating the folder).

        A lock held by a live process of this host, or by any process of another host, stops at once with
        one line naming the holder; one left by a process that no longer runs is reported as stale. ``force``
        takes either over.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        lock = self.path / LOCK
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join(["lcnn", *sys.argv[1:]])}  # fmt: skip
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            holder = self._holder(lock)
            if not force:
                raise UserError(self._refusal(holder)) from None
            fd = os.open(lock, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o666)
        with os.fdopen(fd, "w") as f:
            json.dump(mine, f)
        try:
            yield
        finally:
            if self._holder(lock).get("pid") == mine["pid"]:
                lock.unlink(missing_ok=True)

    @staticmethod
    def _holder(lock: Path) -> dict:
        try:
            holder = json.loads(lock.read_text())
            return holder if isinstance(holder, dict) else {}
        except (OSError, ValueError):
            return {}

    def _refusal(self, holder: dict) -> str:
        pid, host = holder.get("pid"), holder.get("host", "an unknown host")
        who = f"pid {pid} on {host} since {holder.get('started', '?')} ({holder.get('command', '?')})"
        if not isinstance(pid, int):
            return f"{self.path}: an unreadable lock {LOCK}; if no run uses the folder, --force takes it over"
        if host == socket.gethostname() and not _alive(pid):
            return f"{self.path}: a stale lock of {who}, which no longer runs; --force takes the folder over"
        if host == socket.gethostname():
            return f"{self.path} is in use by {who}"
        return f"{self.path} is in use by {who}; if that run is over, --force takes the folder over"
