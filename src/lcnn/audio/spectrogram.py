"""Spectrogram front-ends: the log power spectrogram (STC's LCNN) and the power spectrogram that NII's
``spec2`` models turn into features with their own trainable filterbank. Shapes and precision as in
:mod:`lcnn.audio.frontends`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lcnn.audio.stft import (
    WindowName,
    as_batch,
    as_lengths,
    compute_dtype,
    make_window,
    mask_frames,
    mask_samples,
    power_spectrum,
    pre_emphasis,
)

__all__ = ["LogPowerSpectrogram", "PowerSpectrogram"]


class LogPowerSpectrogram(nn.Module):
    """Log power spectrum, the front-end of STC's LCNN anti-spoofing systems (ASVspoof 2017/2019).

    ``log(|STFT(x)|^2 + eps)`` (natural log) of centred frames, zero padded, with a periodic window of
    ``win_length`` centred in ``n_fft``.

    Shapes: ``(batch, samples) -> (batch, frames, n_features)``, ``n_features = n_fft // 2 + 1`` (fewer with
    ``f_max``), ``frames = 1 + samples // hop_length`` when ``center`` (else ``1 + (samples - n_fft) // hop_length``).

    Args:
        n_fft: FFT size; ``n_fft // 2 + 1`` features per frame.
        win_length: window length in samples, ``None`` means ``n_fft``.
        hop_length: frame shift in samples.
        window: ``"hann"``, ``"hamming"`` or ``"blackman"`` (periodic, as ``scipy.signal.get_window``).
        eps: floor added to the power before the log, so silent (all-zero) frames stay finite
            (``log(1e-10) ~ -23``).
        center: centre frames on ``t * hop_length`` (pad ``n_fft // 2`` zeros each side).
        pre_emphasis: optional pre-emphasis coefficient (e.g. 0.97); ``None`` disables it.
        sample_rate: input rate in Hz (only used with ``f_max``).
        f_max: keep the bins ``[0, int(f_max / (sample_rate / 2) * (n_fft // 2 + 1)))`` only (``None``: all).
    """

    window: Tensor
    log = True

    def __init__(
        self,
        n_fft: int = 512,
        win_length: int | None = None,
        hop_length: int = 160,
        window: WindowName = "hann",
        eps: float = 1e-10,
        center: bool = True,
        pre_emphasis: float | None = None,
        sample_rate: int = 16000,
        f_max: float | None = None,
    ) -> None:
        super().__init__()
        win_length = n_fft if win_length is None else win_length
        if not 0 < win_length <= n_fft:
            raise ValueError(f"need 0 < win_length <= n_fft, got win_length={win_length}, n_fft={n_fft}")
        if hop_length <= 0:
            raise ValueError(f"hop_length must be positive, got {hop_length}")
        if eps <= 0:
            raise ValueError(f"eps must be positive (it keeps log finite on silence), got {eps}")
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.window_name = window
        self.eps = float(eps)
        self.center = center
        self.pre_emphasis = pre_emphasis
        self.sample_rate = sample_rate
        self.f_max = f_max
        nyquist, bins = sample_rate / 2, n_fft // 2 + 1
        self.n_features = bins if f_max is None else int(min(f_max, nyquist) / nyquist * bins)
        if self.n_features < 1:
            raise ValueError(f"f_max={f_max} keeps no frequency bin")
        self.register_buffer("window", make_window(window, win_length), persistent=False)

    def num_frames(self, num_samples: int | Tensor) -> int | Tensor:
        """Frames produced for ``num_samples`` samples (ints or integer tensors)."""
        if self.center:
            return 1 + num_samples // self.hop_length
        if isinstance(num_samples, Tensor):
            return ((num_samples - self.n_fft) // self.hop_length + 1).clamp(min=0)
        return max(0, (num_samples - self.n_fft) // self.hop_length + 1)

    def forward(self, waveform: Tensor, lengths: Tensor | Sequence[int] | None = None) -> Tensor:
        """Log power spectrogram of ``waveform`` (``(batch, samples)`` or ``(samples,)``).

        Args:
            waveform: real floating-point samples.
            lengths: optional valid samples per row for zero-padded batches; frames past
                ``num_frames(lengths)`` are returned as 0.

        Returns:
            ``(batch, frames, n_features)`` (or ``(frames, n_features)`` for 1-D input).
        """
        x, squeeze = as_batch(waveform)
        if not self.center and x.shape[1] < self.n_fft:
            raise ValueError(f"center=False needs at least n_fft={self.n_fft} samples, got {x.shape[1]}")
        dtype = compute_dtype(x)
        lens = as_lengths(lengths, x.shape[0], x.shape[1], x.device)
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = mask_samples(pre_emphasis(x.to(dtype), self.pre_emphasis), lens)
            window = self.window.to(device=x.device, dtype=dtype)
            out = power_spectrum(x, self.n_fft, self.hop_length, self.win_length, window, self.center,
                                 bins=(0, self.n_features))
            out = torch.log(out + self.eps) if self.log else out
            if lens is not None:
                out = mask_frames(out, self.num_frames(lens).clamp(max=out.shape[1]))
        return out[0] if squeeze else out

    def extra_repr(self) -> str:
        return (
            f"n_fft={self.n_fft}, win_length={self.win_length}, hop_length={self.hop_length}, "
            f"window={self.window_name!r}, eps={self.eps}, center={self.center}, pre_emphasis={self.pre_emphasis}, "
            f"n_features={self.n_features}"
        )


class PowerSpectrogram(LogPowerSpectrogram):
    """The power spectrum ``|STFT(x)|^2`` itself (no log): the input of NII's ``spec2`` systems (Wang & Yamagishi,
    2021), whose first layer is a trainable filterbank (:class:`lcnn.models.lcnn_lstm.TrainableFilterbank`).
    Defaults as theirs: 20 ms periodic Hamming window in a 512-point FFT, 10 ms hop, pre-emphasis 0.97 (257
    features). ``eps`` is unused."""

    log = False

    def __init__(
        self,
        n_fft: int = 512,
        win_length: int | None = 320,
        hop_length: int = 160,
        window: WindowName = "hamming",
        eps: float = 1e-10,
        center: bool = True,
        pre_emphasis: float | None = 0.97,
        sample_rate: int = 16000,
        f_max: float | None = None,
    ) -> None:
        super().__init__(n_fft, win_length, hop_length, window, eps, center, pre_emphasis, sample_rate, f_max)
