"""The framing shared by the STFT front-ends (:mod:`lcnn.audio.frontends`, :mod:`lcnn.audio.spectrogram`):
windows, input checks, pre-emphasis, masks of padded batches and the power spectrum."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

WindowName = Literal["hann", "hamming", "blackman"]

WINDOWS = {
    "hann": torch.hann_window,
    "hamming": torch.hamming_window,
    "blackman": torch.blackman_window,
}

# The reference LFCC adds float32's machine epsilon before log10 whatever the compute dtype.
F32_EPS = torch.finfo(torch.float32).eps


def make_window(name: str, length: int) -> Tensor:
    """Periodic ("DFT-even") window, as ``scipy.signal.get_window(name, length)`` and torch's default."""
    if name not in WINDOWS:
        raise ValueError(f"window must be one of {sorted(WINDOWS)}, got {name!r}")
    return WINDOWS[name](length, periodic=True, dtype=torch.float32)


def compute_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def as_batch(waveform: Tensor) -> tuple[Tensor, bool]:
    """(samples,) or (batch, samples) -> (batch, samples), plus whether to squeeze the batch back out."""
    if waveform.dim() == 1:
        waveform = waveform.unsqueeze(0)
        squeeze = True
    elif waveform.dim() == 2:
        squeeze = False
    else:
        raise ValueError(f"expected a waveform of shape (samples,) or (batch, samples), got {tuple(waveform.shape)}")
    if waveform.shape[-1] == 0:
        raise ValueError("expected at least one sample, got an empty waveform")
    if waveform.is_complex() or not waveform.is_floating_point():
        raise TypeError(f"expected a real floating-point waveform, got {waveform.dtype}")
    return waveform, squeeze


def as_lengths(
    lengths: Tensor | Sequence[int] | None, batch: int, samples: int, device: torch.device
) -> Tensor | None:
    if lengths is None:
        return None
    lengths = torch.as_tensor(lengths, device=device).long().reshape(-1)
    if lengths.numel() != batch:
        raise ValueError(f"lengths has {lengths.numel()} entries for a batch of {batch}")
    if bool((lengths < 1).any()) or bool((lengths > samples).any()):
        raise ValueError(f"lengths must lie in [1, {samples}] (the padded length), got {lengths.tolist()}")
    return lengths


def pre_emphasis(x: Tensor, coef: float | None) -> Tensor:
    """y[n] = x[n] - coef * x[n-1], y[0] = x[0]; out of place (the reference edits its input in place)."""
    if not coef:
        return x
    return torch.cat([x[:, :1], x[:, 1:] - coef * x[:, :-1]], dim=1)


def mask_samples(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Zero every sample at or after a row's length, so padding looks like the STFT's own zero padding."""
    if lengths is None:
        return x
    keep = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
    return x * keep.to(x.dtype)


def mask_frames(feats: Tensor, n_frames: Tensor | None) -> Tensor:
    """Zero frames t >= n_frames[b] of (batch, frames, features)."""
    if n_frames is None:
        return feats
    keep = torch.arange(feats.shape[1], device=feats.device)[None, :] < n_frames[:, None]
    return feats * keep.unsqueeze(-1).to(feats.dtype)


def power_spectrum(x: Tensor, n_fft: int, hop_length: int, win_length: int, window: Tensor, center: bool,
                   bins: tuple[int, int] | None = None) -> Tensor:
    """|STFT|^2 of (batch, samples) as (batch, frames, n_fft // 2 + 1), or of the bins ``[lo, hi)`` alone:
    (batch, frames, hi - lo), the same values for a fraction of the cost (the norm below is most of it)."""
    spec = torch.stft(
        x,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=window,
        center=center,
        pad_mode="constant",
        onesided=True,
        return_complex=True,
    )
    # |X| squared as NII's front-ends compute it (the norm of (re, im), then squared): the released LCNNs'
    # scores then round as the official ones (re^2 + im^2 differs in the last bit, and an ill-conditioned
    # score, e.g. a two-step attention pooling, shows it at 1e-5).
    if bins is not None:
        spec = spec[:, bins[0] : bins[1]]
    return torch.view_as_real(spec).norm(2, -1).pow(2).transpose(1, 2)
