"""The on-disk feature cache of the spoofing task (front-end configurations: :mod:`lcnn.audio.pipeline`).

The cache keeps one ``.npy`` array ``(frames, features)`` float32 per audio file and front-end configuration:
``ROOT/<name>-<hash of the config>/<file id>-<file size>-<mtime in ns>.npy``. A changed audio file (new size
or modification time) or a changed configuration misses the cache and is computed again. Entries are
written to a temporary file in the same folder and renamed with ``os.replace``, so several processes
(DataLoader workers, DDP ranks, parallel runs) can share one cache: a reader sees a whole file or none.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lcnn.audio.pipeline import FeaturePipeline
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
        name = _UNSAFE.sub("_", utt)
        if name != utt:  # keep distinct ids distinct after sanitising (sub/dir/a vs sub_dir_a)
            name += "-" + hashlib.sha1(utt.encode()).hexdigest()[:8]
        return self.dir / f"{name}-{st.st_size}-{st.st_mtime_ns}.npy"

    def get(self, utt: str, audio: str | os.PathLike) -> Tensor:
        """Features of ``audio`` (trial id ``utt``) from the cache, computing and storing them on a miss."""
        if self.dir is None:
            return self.pipeline(audio)
        path = self.entry(utt, audio)
        try:
            return torch.from_numpy(np.load(path))
        except (OSError, ValueError, EOFError):  # absent, or not an array (never torn: writes are atomic)
            pass
        feats = self.pipeline(audio)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, feats.numpy())
        return feats
