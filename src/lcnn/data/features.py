"""The on-disk feature cache of the spoofing task (front-end configurations: :mod:`lcnn.audio.pipeline`).

The cache keeps one ``.npy`` array ``(frames, features)`` float32 per audio file and front-end configuration:
``ROOT/<name>-<hash of the config>/<2 hex digits of a hash of the file id>/<file id>-<file size>-<mtime in
ns>.npy``: 256 subfolders, so that no folder holds hundreds of thousands of files (ASVspoof 2021 DF has
611,829 trials). A changed audio file (new size or modification time) or a changed configuration misses the
cache and is computed again. Entries are written to a temporary file in the same folder and renamed with
``os.replace``, so several processes (DataLoader workers, DDP ranks, parallel runs) can share one cache: a
reader sees a whole file or none.

Caches written before the subfolders (entries directly in ``ROOT/<name>-<hash>/``) stay valid: an entry
missing from its subfolder is looked for there and moved into place (one rename), so an old cache
migrates as it is read. :func:`cache_folders` and :func:`clear_cache` are ``lcnn cache info`` and ``clear``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lcnn.audio.pipeline import FeaturePipeline
from lcnn.errors import UserError
from lcnn.io import atomic_path, write_json


def config_hash(config: dict[str, Any]) -> str:
    """A short stable hash of a configuration (12 hex digits of the SHA-1 of its sorted JSON)."""
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class FeatureCache:
    """Features of audio files under one front-end configuration, computed once and kept on disk.

    Args:
        config: a front-end configuration (see :func:`lcnn.audio.frontend_config`).
        root: the cache folder; ``None`` computes every time and stores nothing.
    """

    def __init__(self, config: dict[str, Any], root: str | os.PathLike | None = None) -> None:
        self.config = dict(config)
        self.pipeline = FeaturePipeline(self.config)
        self.n_features: int = self.pipeline.n_features
        self.dir = None if root is None else Path(root) / f"{config['name']}-{config_hash(self.config)}"
        if self.dir is not None and not (self.dir / "config.json").exists():
            write_json(self.dir / "config.json", self.config)

    def entry(self, utt: str, audio: str | os.PathLike) -> Path:
        """The cache file of trial ``utt`` whose audio is ``audio`` (which must exist)."""
        assert self.dir is not None
        st = os.stat(audio)
        digest = hashlib.sha1(utt.encode()).hexdigest()
        name = _UNSAFE.sub("_", utt)
        if name != utt:  # keep distinct ids distinct after sanitising (sub/dir/a vs sub_dir_a)
            name += "-" + digest[:8]
        return self.dir / digest[:2] / f"{name}-{st.st_size}-{st.st_mtime_ns}.npy"

    def get(self, utt: str, audio: str | os.PathLike) -> Tensor:
        """Features of ``audio`` (trial id ``utt``) from the cache, computing and storing them on a miss."""
        if self.dir is None:
            return self.pipeline(audio)
        path = self.entry(utt, audio)
        feats = _load(path)
        if feats is None and _adopt(path.parent.parent / path.name, path):  # an entry of the flat layout
            feats = _load(path)
        if feats is not None:
            return feats
        feats = self.pipeline(audio)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, feats.numpy())
        return feats


def _load(path: Path) -> Tensor | None:
    try:
        return torch.from_numpy(np.load(path))
    except (OSError, ValueError, EOFError):  # absent, or not an array (never torn: writes are atomic)
        return None


def _adopt(flat: Path, path: Path) -> bool:
    """Move an entry of the flat layout into its subfolder; False when there is none."""
    try:
        path.parent.mkdir(exist_ok=True)
        os.replace(flat, path)
    except FileNotFoundError:
        return False
    return True


def cache_folders(root: str | os.PathLike) -> list[tuple[str, int, int]]:
    """``(folder, entries, bytes)`` of each front-end configuration's folder under the cache ``root``
    (``lfcc-1a2b3c4d5e6f``: one per front-end name and settings), by name; ``[]`` when there is no cache."""
    root = Path(root)
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return [(folder.name, *_count(folder)) for folder in folders]


def _count(folder: Path) -> tuple[int, int]:
    entries = size = 0
    for base, _, files in os.walk(folder):
        for name in files:
            if name.endswith(".npy"):
                entries += 1
                size += os.stat(os.path.join(base, name)).st_size
    return entries, size


def clear_cache(root: str | os.PathLike, frontend: str | None = None) -> list[tuple[str, int, int]]:
    """Remove the front-end folders under ``root`` (only those of ``frontend``: a front-end name such as
    ``lfcc``, or a folder name) and return what was removed, as :func:`cache_folders`."""
    removed = [row for row in cache_folders(root)
               if frontend is None or row[0] == frontend or row[0].rpartition("-")[0] == frontend]  # fmt: skip
    for name, _, _ in removed:
        _remove(Path(root) / name)
    return removed


def _remove(folder: Path, tries: int = 5) -> None:
    """Remove a cache folder that a scoring run may be writing into: entries it adds meanwhile are removed on the
    next try; a folder still not removable after ``tries`` is a one-line error."""
    for _ in range(tries):
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            return
    raise UserError(f"{folder}: could not be removed while files are being added to it (a scoring or training run "
                    "using this cache?); run lcnn cache clear again once it is over")  # fmt: skip


def format_cache(rows: list[tuple[str, int, int]], root: str | os.PathLike, removed: bool = False) -> str:
    """The table of ``lcnn cache info`` (or ``clear``, with ``removed``): entries and MB per folder, and the total."""
    if not rows:
        return f"{root}: no cached features{' removed' if removed else ''}"
    lines = [f"{'removed' if removed else 'folder':<32}{'entries':>12}{'MB':>12}   in {root}"]
    for name, entries, size in [*rows, ("total", sum(r[1] for r in rows), sum(r[2] for r in rows))]:
        lines.append(f"{name:<32}{entries:>12,}{size / 1e6:>12.1f}")
    return "\n".join(lines)
