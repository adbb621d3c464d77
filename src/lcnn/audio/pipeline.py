"""Front-end configurations and the waveform-to-features pipeline of the spoofing task.

A front-end is described by a plain dict (JSON-ready, stored in checkpoints), e.g. the ASVspoof 2021
LFCC-LCNN baseline's ``{"name": "lfcc", "n_fft": 1024, "f_max": 4000.0, ...}``: :func:`frontend_config` gives
the defaults with overrides, :func:`build_frontend` the :mod:`lcnn.audio.frontends` module, and
:class:`FeaturePipeline` turns a file into features (decode, resample, optional silence trimming, front-end).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor, nn

from lcnn.audio.frontends import LFB, LFCC, LogPowerSpectrogram, PowerSpectrogram
from lcnn.audio.io import load_audio
from lcnn.audio.ssl import RawWaveform

__all__ = ["FRONTENDS", "FeaturePipeline", "build_frontend", "frontend_config", "trim_silence"]

#: Default front-ends. ``lfcc`` is the ASVspoof 2021 LFCC-LCNN baseline's: 20 ms / 10 ms frames, 1024-point
#: FFT, 20 linear filters on 0-4 kHz, c0 replaced by the log energy, deltas and delta-deltas (60 features).
#: ``spec`` is a log power spectrogram (STC's LCNN front-end), all bins up to ``f_max`` (Nyquist if None).
#: ``lfb`` (60 log linear filterbank energies, 0-8 kHz) and ``power`` (the power spectrum, no log, for a model's
#: own trainable filterbank: NII's ``spec2``) are the other front-ends of Wang & Yamagishi's LCNN study (2021);
#: its LFCCs are ``lfcc`` with ``n_fft=512, f_max=8000``.
#: ``ssl`` hands the waveform to a self-supervised model in the spoof module (:mod:`lcnn.audio.ssl`): ``model``
#: names it (``ssl:NAME_OR_PATH`` on the command line), ``finetune`` trains it too, ``features`` is the size of
#: its projection for the back-end.
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
    "lfb": {
        "name": "lfb", "sample_rate": 16000, "n_fft": 512, "win_length": 320, "hop_length": 160,
        "n_filters": 60, "f_min": 0.0, "f_max": 8000.0, "with_energy": False, "with_delta": False,
        "pre_emphasis": 0.97, "trim_silence": False,
    },
    "power": {
        "name": "power", "sample_rate": 16000, "n_fft": 512, "win_length": 320, "hop_length": 160,
        "window": "hamming", "f_max": None, "pre_emphasis": 0.97, "trim_silence": False,
    },
    "ssl": {
        "name": "ssl", "sample_rate": 16000, "model": None, "finetune": False, "features": 128, "trim_silence": False,
    },
}  # fmt: skip


def frontend_config(name: str = "lfcc", **overrides: Any) -> dict[str, Any]:
    """The default configuration of front-end ``name`` (``lfcc``, ``spec``, ``lfb``, ``power`` or
    ``ssl:NAME_OR_PATH``) with
    ``overrides`` (``None`` values keep the default)."""
    name, _, model = name.partition(":")
    if name not in FRONTENDS or bool(model) != (name == "ssl"):
        raise ValueError(f"unknown front-end {name!r}; expected lfcc, spec, lfb, power or ssl:NAME_OR_PATH "
                         "(a speech model)")
    config = dict(FRONTENDS[name], **({"model": model} if model else {}))
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(overrides) - set(config)
    if unknown:
        raise ValueError(f"front-end {name} has no settings {sorted(unknown)}")
    config.update(overrides)
    return config


def build_frontend(config: dict[str, Any]) -> nn.Module:
    """The :mod:`lcnn.audio.frontends` module of a front-end configuration; it has an ``n_features`` attribute."""
    kw = {k: v for k, v in config.items() if k not in ("name", "trim_silence")}
    if config["name"] == "ssl":  # the model itself runs in the spoof module, on the waveform
        return RawWaveform()
    if config["name"] == "lfcc":
        return LFCC(**kw)
    if config["name"] == "spec":
        return LogPowerSpectrogram(**kw)
    if config["name"] == "lfb":
        return LFB(**kw)
    if config["name"] == "power":
        return PowerSpectrogram(**kw)
    raise ValueError(f"unknown front-end {config['name']!r}; expected one of {', '.join(FRONTENDS)}")


def trim_silence(wave: Tensor) -> Tensor:
    """``(samples,)`` without its leading and trailing exact zeros (digital silence); all-zero input is kept."""
    voiced = torch.nonzero(wave).flatten()
    return wave[int(voiced[0]) : int(voiced[-1]) + 1] if len(voiced) else wave


class FeaturePipeline:
    """Audio -> features under one front-end configuration: a file is decoded and resampled
    (:func:`load_audio`), a waveform is taken as it is (at the configuration's rate); then the digital silence is
    trimmed where the configuration says so, then the front-end. A file and its decoded waveform give the same
    features: the one feature path of scoring, prediction and serving.

    ``pipeline(file_or_waveform)`` -> ``(frames, n_features)`` float32.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = dict(config)
        self.frontend = build_frontend(self.config).eval()
        self.n_features: int = self.frontend.n_features

    def prepare(self, wave: Tensor) -> Tensor:
        """A decoded ``(samples,)`` waveform as the front-end sees it: trimmed where the configuration says so."""
        return trim_silence(wave) if self.config.get("trim_silence") else wave

    def waveform(self, audio: str | os.PathLike | Tensor, start: int = 0, frames: int = -1) -> Tensor:
        """The ``(samples,)`` waveform the front-end sees: of the whole file (or waveform), or of the block of
        ``frames`` samples from ``start`` (a file's at its own rate, see :func:`load_audio`), trimmed as a whole
        file would be."""
        if isinstance(audio, Tensor):
            wave = audio[start : start + frames] if frames >= 0 else audio[start:]
        else:
            wave = load_audio(audio, self.config["sample_rate"], start=start, frames=frames)
        return self.prepare(wave)

    def features(self, wave: Tensor) -> Tensor:
        """A prepared ``(samples,)`` waveform (:meth:`prepare`) -> ``(frames, n_features)`` float32."""
        with torch.no_grad():
            return self.frontend(wave).float()

    def __call__(self, audio: str | os.PathLike | Tensor, start: int = 0, frames: int = -1) -> Tensor:
        return self.features(self.waveform(audio, start, frames))
