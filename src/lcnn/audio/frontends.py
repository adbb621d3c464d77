"""Speech front-ends: waveform batches in, feature-frame batches out.

The front-ends (LFCC and LFB here, the spectrograms in :mod:`lcnn.audio.spectrogram`) are ``nn.Module`` s so
they move with a model (``.to(device)``), run batched on the GPU and can sit inside an exported graph.
Constant tensors (window, filterbank, DCT matrix) are built once in ``__init__`` and registered as
non-persistent buffers: they follow ``.to()`` but stay out of checkpoints, since they are a pure function of
the constructor arguments.

Shapes: ``(batch, samples) -> (batch, frames, features)``; a 1-D ``(samples,)`` input gives
``(frames, features)``. Frames are centred (``torch.stft(center=True)`` with zero padding), so a wave of
``n`` samples gives ``1 + n // hop_length`` frames: see ``num_frames``.

Variable-length batches: pass ``lengths`` (valid samples per row). Frames ``t < num_frames(lengths[b])``
are then the same as for the unpadded wave alone (pre-emphasis and deltas do not see the padding) and the
frames after them are set to 0, so callers can mask them.

Precision: float64 input is processed in float64, anything else (float32, float16, bfloat16) in float32
with autocast disabled, since logs of tiny spectral powers are not meaningful in half precision. The
output is float64 or float32 accordingly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lcnn.audio.spectrogram import LogPowerSpectrogram, PowerSpectrogram
from lcnn.audio.stft import (
    F32_EPS,
    as_batch,
    as_lengths,
    compute_dtype,
    make_window,
    mask_frames,
    mask_samples,
    power_spectrum,
    pre_emphasis,
)

__all__ = ["LFB", "LFCC", "LogPowerSpectrogram", "PowerSpectrogram"]


def _delta(x: Tensor, n_frames: Tensor | None = None) -> Tensor:
    """d[t] = x[t+1] - x[t-1] along frames of (batch, frames, features), edge frames replicated.

    With ``n_frames``, each row's last valid frame is replicated over its padding first, so the delta of
    the valid frames equals that of the unpadded sequence.
    """
    if n_frames is not None:
        last = (n_frames - 1).clamp(min=0)[:, None]
        idx = torch.minimum(torch.arange(x.shape[1], device=x.device)[None, :], last)
        x = x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[2]))
    padded = torch.cat([x[:, :1], x, x[:, -1:]], dim=1)
    return padded[:, 2:] - padded[:, :-2]


def _triangular_filterbank(freqs: Tensor, n_filters: int) -> Tensor:
    """(len(freqs), n_filters) triangles with edges linspace(min(freqs), max(freqs), n_filters + 2).

    Follows Matlab's ``trimf`` as the reference does: strict inequalities on both slopes (0 at the feet)
    and exactly 1 where a frequency equals the centre.
    """
    edges = torch.linspace(float(freqs.min()), float(freqs.max()), n_filters + 2, dtype=freqs.dtype)
    f = freqs[:, None]
    a, b, c = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    rising = torch.where((a < f) & (f < b), (f - a) / (b - a), torch.zeros_like(f))
    falling = torch.where((b < f) & (f < c), (c - f) / (c - b), torch.zeros_like(f))
    fb = rising + falling
    return torch.where(f == b, torch.ones_like(fb), fb)


def _dct_matrix(n: int) -> Tensor:
    """Orthonormal DCT-II as a right-multiplied matrix: ``y = x @ D`` (scipy ``dct(x, norm="ortho")``)."""
    m = torch.arange(n, dtype=torch.float64)[:, None]  # input index
    k = torch.arange(n, dtype=torch.float64)[None, :]  # output index
    d = torch.cos(math.pi * (2 * m + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[:, 0] /= math.sqrt(2.0)
    return d.to(torch.float32)


class LFCC(nn.Module):
    """Linear-frequency cepstral coefficients of the ASVspoof 2021 LFCC-LCNN baseline (NII's ``LFCC``).

    Steps, each as in the reference so that its trained models and published numbers carry over:

    1. pre-emphasis ``y[n] = x[n] - 0.97 x[n-1]``;
    2. ``torch.stft`` with a periodic Hamming window of ``win_length`` (centred in ``n_fft``), centred
       frames, zero (constant) padding; power spectrum ``|X|^2``;
    3. keep bins ``[lo, hi)`` with ``lo = int(f_min / (sr/2) * (n_fft//2 + 1))`` and
       ``hi = int(f_max / (sr/2) * (n_fft//2 + 1))``. E.g. n_fft 1024, f_max 4 kHz at 16 kHz keeps bins
       0..255: the bin exactly at 4 kHz (index 256) is dropped, as in the reference's ``max_freq=0.5``;
    4. ``n_filters`` linear triangular filters over a frequency axis ``linspace(f_min, f_max, hi - lo)``
       assigned to the kept bins. Its spacing ``(f_max - f_min) / (hi - lo - 1)`` is not the true bin
       spacing ``sr / n_fft`` (15.686 vs 15.625 Hz for the 2021 baseline, whose last kept bin is labelled
       4000 Hz but sits at 3984.4 Hz); this is reproduced on purpose, for parity with trained models;
    5. ``log10(filterbank energies + eps)``, eps = float32 machine epsilon; orthonormal DCT-II;
    6. if ``with_energy``: c0 replaced by ``log10(sum of the frame's kept-bin power / n_fft + eps)``;
    7. if ``with_delta``: append deltas and delta-deltas, ``d[t] = x[t+1] - x[t-1]``, edges replicated.

    Shapes: ``(batch, samples) -> (batch, frames, n_features)`` with ``frames = 1 + samples // hop_length``
    and ``n_features = 3 * n_filters`` with deltas, else ``n_filters`` (60 / 20 by default).

    Args:
        sample_rate: input rate in Hz.
        n_fft: FFT size (the 2021 baseline uses 1024 with ``f_max=4000``; 512 gives the full band).
        win_length: analysis window in samples (320 = 20 ms at 16 kHz).
        hop_length: frame shift in samples (160 = 10 ms).
        n_filters: number of triangular filters, also the number of cepstra.
        f_min: lower edge of the analysed band in Hz.
        f_max: upper edge in Hz; ``None`` means Nyquist.
        with_energy: replace c0 by the log frame energy (step 6).
        with_delta: append deltas and delta-deltas (step 7).
        pre_emphasis: pre-emphasis coefficient; ``None`` or 0 disables it.
    """

    window: Tensor
    filterbank: Tensor
    dct: Tensor
    cepstral = True  # the DCT of the log filterbank energies (LFB: off)

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 512,
        win_length: int = 320,
        hop_length: int = 160,
        n_filters: int = 20,
        f_min: float = 0.0,
        f_max: float | None = None,
        with_energy: bool = True,
        with_delta: bool = True,
        pre_emphasis: float | None = 0.97,
    ) -> None:
        super().__init__()
        nyquist = sample_rate / 2
        f_max = nyquist if f_max is None else float(f_max)
        if not 0 <= f_min < f_max <= nyquist:
            raise ValueError(
                f"need 0 <= f_min < f_max <= sample_rate / 2 = {nyquist}, got f_min={f_min}, f_max={f_max}"
            )
        if not 0 < win_length <= n_fft:
            raise ValueError(f"need 0 < win_length <= n_fft, got win_length={win_length}, n_fft={n_fft}")
        if hop_length <= 0 or n_filters <= 0:
            raise ValueError(f"hop_length and n_filters must be positive, got {hop_length}, {n_filters}")

        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.n_filters = n_filters
        self.f_min = float(f_min)
        self.f_max = f_max
        self.with_energy = with_energy
        self.with_delta = with_delta
        self.pre_emphasis = pre_emphasis

        # The reference takes the band as fractions of Nyquist and truncates the bin indices (step 3).
        lo_ratio, hi_ratio = self.f_min / nyquist, f_max / nyquist
        n_bins = n_fft // 2 + 1
        self.bin_lo = int(lo_ratio * n_bins)
        self.bin_hi = int(hi_ratio * n_bins)
        n_kept = self.bin_hi - self.bin_lo
        if n_kept < n_filters + 2:
            raise ValueError(f"the band {f_min}-{f_max} Hz keeps only {n_kept} FFT bins for {n_filters} filters")
        # float32, and scaled from the ratios, exactly as the reference builds its axis (step 4).
        freqs = nyquist * torch.linspace(lo_ratio, hi_ratio, n_kept, dtype=torch.float32)

        self.register_buffer("window", make_window("hamming", win_length), persistent=False)
        self.register_buffer("filterbank", _triangular_filterbank(freqs, n_filters), persistent=False)
        self.register_buffer("dct", _dct_matrix(n_filters), persistent=False)

    @property
    def n_features(self) -> int:
        """Features per frame: ``3 * n_filters`` with deltas, else ``n_filters``."""
        return self.n_filters * (3 if self.with_delta else 1)

    def num_frames(self, num_samples: int | Tensor) -> int | Tensor:
        """Frames produced for ``num_samples`` samples (centred framing): ``1 + num_samples // hop_length``.

        Works on ints and on integer tensors of per-row lengths, to build masks for padded batches.
        """
        return 1 + num_samples // self.hop_length

    def forward(self, waveform: Tensor, lengths: Tensor | Sequence[int] | None = None) -> Tensor:
        """LFCCs of ``waveform`` (``(batch, samples)`` or ``(samples,)``).

        Args:
            waveform: real floating-point samples.
            lengths: optional valid samples per row for zero-padded batches; frames past
                ``num_frames(lengths)`` are returned as 0.

        Returns:
            ``(batch, frames, n_features)`` (or ``(frames, n_features)`` for 1-D input).
        """
        x, squeeze = as_batch(waveform)
        dtype = compute_dtype(x)
        lens = as_lengths(lengths, x.shape[0], x.shape[1], x.device)
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = mask_samples(pre_emphasis(x.to(dtype), self.pre_emphasis), lens)
            window = self.window.to(device=x.device, dtype=dtype)
            power = power_spectrum(x, self.n_fft, self.hop_length, self.win_length, window, center=True,
                                   bins=(self.bin_lo, self.bin_hi))

            fb = self.filterbank.to(device=x.device, dtype=dtype)
            dct = self.dct.to(device=x.device, dtype=dtype)
            ceps = torch.log10(power @ fb + F32_EPS)
            if self.cepstral:
                ceps = ceps @ dct
            if self.with_energy:
                energy = torch.log10(power.sum(dim=-1, keepdim=True) / self.n_fft + F32_EPS)
                ceps = torch.cat([energy, ceps[..., 1:]], dim=-1)

            n_frames = None if lens is None else self.num_frames(lens).clamp(max=ceps.shape[1])
            if self.with_delta:
                d1 = _delta(ceps, n_frames)
                d2 = _delta(d1, n_frames)
                ceps = torch.cat([ceps, d1, d2], dim=-1)
            out = mask_frames(ceps, n_frames)
        return out[0] if squeeze else out

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, win_length={self.win_length}, "
            f"hop_length={self.hop_length}, n_filters={self.n_filters}, f_min={self.f_min}, f_max={self.f_max}, "
            f"bins=[{self.bin_lo}, {self.bin_hi}), with_energy={self.with_energy}, with_delta={self.with_delta}"
        )


class LFB(LFCC):
    """Linear filterbank energies (NII's ``LFB``; Chen et al., Odyssey 2020): LFCC's steps 1-5 without the DCT,
    ``log10(power @ filterbank + eps)``; by default 60 filters over the full band of a 512-point FFT, no energy
    and no deltas (60 features), the front-end of the ``lfb-lcnn-*`` systems of Wang & Yamagishi (2021)."""

    cepstral = False

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 512,
        win_length: int = 320,
        hop_length: int = 160,
        n_filters: int = 60,
        f_min: float = 0.0,
        f_max: float | None = None,
        with_energy: bool = False,
        with_delta: bool = False,
        pre_emphasis: float | None = 0.97,
    ) -> None:
        super().__init__(sample_rate, n_fft, win_length, hop_length, n_filters, f_min, f_max, with_energy, with_delta,
                         pre_emphasis)  # fmt: skip
