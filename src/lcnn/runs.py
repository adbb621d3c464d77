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

__all__ = ["RunFolder", "hold", "is_rank_zero", "output_lock"]

LOCK = ".lock"
RUN_FILES = ("config.json", "checkpoints", "metrics.json", "summary.json")  # any of them: the folder holds a run


def is_rank_zero() -> bool:
    """Whether this is the first process of a distributed run (or the only one), from what the launchers set:
    ``RANK`` (torchrun), ``SLURM_PROCID``, else Lightning's ``NODE_RANK`` and ``LOCAL_RANK``."""
    for name in ("RANK", "SLURM_PROCID"):
        if os.environ.get(name, "").isdecimal():
            return int(os.environ[name]) == 0
    return all(int(os.environ.get(name, "0") or 0) == 0 for name in ("NODE_RANK", "LOCAL_RANK"))


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

    def check(self, resume: bool, overwrite: bool, force: bool = False, holding: bool = False) -> None:
        """Refuse what would lose or mix a run: a folder another process holds (``force`` takes over only a lock
        whose holder is gone or on another host; ``holding``: the lock is ours), a folder holding a run without
        ``resume`` or ``overwrite``, ``resume`` of a folder without a run, ``overwrite`` of a folder holding
        other files but no run, and a folder that cannot be made."""
        lock = self.path / LOCK
        if not holding and lock.exists() and not (force and _may_take(_holder(lock))):
            raise UserError(self._refusal(_holder(lock)))
        if resume and overwrite:
            raise UserError("--resume continues the run in --out and --overwrite replaces it: give one of them")
        existing = next((p for p in (self.path, *self.path.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise UserError(f"--out {self.path}: {existing} exists and is not a folder")
        found = self.holds_run()
        if found and not (resume or overwrite):
            raise UserError(f"{self.path} holds a run ({', '.join(found)}): --resume continues it, --overwrite "
                            "replaces it, or choose another --out")  # fmt: skip
        if resume and not found:
            raise UserError(f"{self.path}: nothing to resume (no run in this folder)")
        others = [e.name for e in self.path.iterdir() if not e.name.startswith(LOCK)] if self.path.is_dir() else []
        if overwrite and not found and others:
            raise UserError(f"{self.path} holds files but no lcnn run (e.g. {', '.join(sorted(others)[:3])}): "
                            "--overwrite only replaces a run; choose a new or empty --out")  # fmt: skip

    def refuse_if_held(self) -> None:
        """Stop with the holder named when a live run (here, or any on another host) holds the folder: for
        commands that rewrite a file of a run, such as ``lcnn calibrate --checkpoint``."""
        if not (self.path / LOCK).exists():
            return
        holder = _holder(self.path / LOCK)
        pid = holder.get("pid")
        if isinstance(pid, int) and holder.get("host") == socket.gethostname() and not _alive(pid):
            return  # a stale lock: its run is over
        raise UserError(self._refusal(holder))

    def clear(self) -> None:
        """Remove the folder's contents (``--overwrite``), its lock excepted."""
        for entry in self.path.iterdir():
            if entry.name.startswith(LOCK):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    @contextmanager
    def lock(self, force: bool = False) -> Iterator[None]:
        """Hold the folder's lock for the duration of the block (creating the folder): :func:`hold` on
        ``FOLDER/.lock``."""
        self.path.mkdir(parents=True, exist_ok=True)
        with hold(self.path / LOCK, self.path, force, "the folder"):
            yield

    def _refusal(self, holder: dict) -> str:
        return _refusal(self.path, holder, self.path / LOCK, "the folder")



@contextmanager
def hold(lock: Path, owned: Path, force: bool = False, what: str = "it") -> Iterator[None]:
    """Hold the lock file ``lock`` of ``owned`` (a run folder, or an output file of a long command) for the
    duration of the block.

    A lock held by a live process of this host, or by any process of another host, stops at once with one line
    naming the holder; one left by a process that no longer runs is reported as stale. ``force`` takes over a
    stale lock or one of another host, never one of a live process here. The lock file appears whole (written
    aside, then linked into place), so a reader never sees it half-written.
    """
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(["lcnn", *sys.argv[1:]])}  # fmt: skip
    aside = lock.with_name(f"{lock.name}.{os.getpid()}")
    aside.write_text(json.dumps(mine))
    try:
        os.link(aside, lock)
    except FileExistsError:
        holder = _holder(lock)
        if not (force and _may_take(holder)):
            raise UserError(_refusal(owned, holder, lock, what)) from None
        os.replace(aside, lock)
    finally:
        aside.unlink(missing_ok=True)
    try:
        yield
    finally:
        holder = _holder(lock)
        if (holder.get("pid"), holder.get("host")) == (mine["pid"], mine["host"]):
            lock.unlink(missing_ok=True)


def output_lock(out: str | os.PathLike) -> Path:
    """The lock file of an output file ``out`` of a long command (``lcnn score --out``): ``.NAME.lock`` beside it,
    so that a second writer of the same output stops at once, naming the first."""
    out = Path(out)
    return out.with_name(f".{out.name}{LOCK}")


def _may_take(holder: dict) -> bool:
    """Whether ``--force`` may take the lock over: its holder is unreadable, gone, or on another host."""
    pid = holder.get("pid")
    return not isinstance(pid, int) or holder.get("host") != socket.gethostname() or not _alive(pid)


def _holder(lock: Path) -> dict:
    try:
        holder = json.loads(lock.read_text())
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


def _refusal(owned: Path, holder: dict, lock: Path, what: str) -> str:
    pid, host = holder.get("pid"), holder.get("host", "an unknown host")
    who = f"pid {pid} on {host} since {holder.get('started', '?')} ({holder.get('command', '?')})"
    if not isinstance(pid, int):
        return f"{owned}: an unreadable lock {lock.name}; if nothing uses {what}, --force takes {what} over"
    if host == socket.gethostname() and not _alive(pid):
        return f"{owned}: a stale lock of {who}, which no longer runs; --force takes {what} over"
    if host == socket.gethostname():
        return f"{owned} is in use by {who}"
    return f"{owned} is in use by {who}; if that run is over, --force takes {what} over"
