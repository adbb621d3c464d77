"""Speech front-end configurations and the on-disk feature cache.

A front-end is described by a plain dict (JSON-ready, stored in checkpoints), e.g. the ASVspoof 2021
LFCC-LCNN baseline's ``{"name": "lfcc", "n_fft": 1024, "f_max": 4000.0, ...}``; :func:`build_frontend` turns
it into an :mod:`lcnn.audio` module.

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
from torch import Tensor, nn

from lcnn.audio import LFCC, LogPowerSpectrogram, load_audio
from lcnn.io import atomic_path, write_json

#: Default front-ends. ``lfcc`` is the ASVspoof 2021 LFCC-LCNN baseline's: 20 ms / 10 ms frames, 1024-point
#: FFT, 20 linear filters on 0-4 kHz, c0 replaced by the log energy, deltas and delta-deltas (60 features).
#: ``spec`` is a log power spectrogram (STC's LCNN front-end), all bins up to ``f_max`` (Nyquist if None).
#: ``trim_silence`` drops the digital silence (samples exactly 0) at the start and end of a file first.
FRONTENDS: dict[str, dict[str, Any]] = {
    "lfcc": {
        "name": "lfcc", "sample_rate": 16000, "n_fft": 1024, "win_length": 320, "hop_length": 160,
        "n_filters": 20, "f_min": 0.0, "f_max": 4000.0, "with_energy": True, "with_delta": True,
        "pre_emphasis": 0.97, "trim_silence": False,
    },
    "spec": {
        "name": "spec", "sample_rate": 16000, "n_fft": 512, "win_length": 320, "hop_length": 160,
        "window": "hann", "f_max": None, "pre_emphasis": None, "trim_silence": False,
    },
}


def frontend_config(name: str = "lfcc", **overrides: Any) -> dict[str, Any]:
    """The default configuration of front-end ``name`` (``lfcc`` or ``spec``) with ``overrides``
    (``None`` values keep the default)."""
    if name not in FRONTENDS:
        raise ValueError(f"unknown front-end {name!r}; expected one of {', '.join(FRONTENDS)}")
    config = dict(FRONTENDS[name])
    unknown = set(overrides) - set(config)
    if unknown:
        raise ValueError(f"front-end {name} has no settings {sorted(unknown)}")
    config.update({k: v for k, v in overrides.items() if v is not None})
    return config


class BandLimitedSpectrogram(nn.Module):
    """:class:`lcnn.audio.LogPowerSpectrogram` keeping bins ``[0, int(f_max / nyquist * (n_fft//2 + 1)))``.

    Shape: ``(batch, samples) -> (batch, frames, n_features)``.
    """

    def __init__(self, sample_rate: int = 16000, n_fft: int = 512, win_length: int | None = None,
                 hop_length: int = 160, window: str = "hann", f_max: float | None = None,
                 pre_emphasis: float | None = None) -> None:
        super().__init__()
        self.spec = LogPowerSpectrogram(n_fft, win_length, hop_length, window, pre_emphasis=pre_emphasis)
        nyquist = sample_rate / 2
        bins = n_fft // 2 + 1
        self.n_features = bins if f_max is None else int(min(f_max, nyquist) / nyquist * bins)
        if self.n_features < 1:
            raise ValueError(f"f_max={f_max} keeps no frequency bin")

    def forward(self, waveform: Tensor) -> Tensor:
        return self.spec(waveform)[..., : self.n_features]


def build_frontend(config: dict[str, Any]) -> nn.Module:
    """The :mod:`lcnn.audio` module of a front-end configuration; it has an ``n_features`` attribute."""
    kw = {k: v for k, v in config.items() if k not in ("name", "trim_silence")}
    if config["name"] == "lfcc":
        return LFCC(**kw)
    if config["name"] == "spec":
        return BandLimitedSpectrogram(**kw)
    raise ValueError(f"unknown front-end {config['name']!r}; expected one of {', '.join(FRONTENDS)}")


def config_hash(config: dict[str, Any]) -> str:
    """A short stable hash of a configuration (12 hex digits of the SHA-1 of its sorted JSON)."""
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def trim_silence(wave: Tensor) -> Tensor:
    """``(samples,)`` without its leading and trailing exact zeros (digital silence); all-zero input is kept."""
    voiced = torch.nonzero(wave).flatten()
    return wave[int(voiced[0]) : int(voiced[-1]) + 1] if len(voiced) else wave


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class FeatureCache:
    """Features of audio files under one front-end configuration, computed once and kept on disk.

    Args:
        config: a front-end configuration (see :func:`frontend_config`).
        root: the cache folder; ``None`` computes every time and stores nothing.
    """

    def __init__(self, config: dict[str, Any], root: str | os.PathLike | None = None) -> None:
        self.config = dict(config)
        self.frontend = build_frontend(self.config).eval()
        self.n_features: int = self.frontend.n_features
        self.dir = None if root is None else Path(root) / f"{config['name']}-{config_hash(self.config)}"
        if self.dir is not None and not (self.dir / "config.json").exists():
            write_json(self.dir / "config.json", self.config)

    def extract(self, audio: str | os.PathLike) -> Tensor:
        """Decode ``audio`` and compute its features: ``(frames, n_features)`` float32."""
        wave = load_audio(audio, self.config["sample_rate"])
        if self.config.get("trim_silence"):
            wave = trim_silence(wave)
        with torch.no_grad():
            return self.frontend(wave).float()

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
            return self.extract(audio)
        path = self.entry(utt, audio)
        try:
            return torch.from_numpy(np.load(path))
        except (OSError, ValueError, EOFError):  # absent, or not an array (never torn: writes are atomic)
            pass
        feats = self.extract(audio)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, feats.numpy())
        return feats
