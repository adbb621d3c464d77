"""RawBoost (Tak et al., ICASSP 2022) as batched torch ops on waveform batches, seeded per sample.

RawBoost distorts raw waveforms with three kinds of nuisance that a spoofing detector should be robust to:

1. **LnL**, linear and non-linear convolutive noise: ``y = sum_{i=1..N_f} h_i * x^i``, each ``h_i`` a cascade
   of ``nBands`` random FIR band-stop ("notch") filters; the linear term ``h_1`` has a peak gain drawn from
   ``[minG, maxG]`` dB, the non-linear ones from ``[minG - minBiasLinNonLin, maxG - maxBiasLinNonLin]`` dB.
   Then the mean is removed and the wave is scaled down to ``max |y| = 1`` if it exceeds 1.
2. **ISD**, impulsive signal-dependent additive noise: ``beta ~ U(0, P)`` percent of the samples, drawn
   without replacement, become ``x[t] * (1 + g_sd * u1 * u2)`` with ``u1, u2 ~ U(-1, 1)``; then the same
   "scale down if above 1" step.
3. **SSI**, stationary signal-independent coloured additive noise: white Gaussian noise through one random
   notch cascade (peak gain in ``[minG, maxG]`` dB), scaled to ``max |n| = 1`` and then to an SNR drawn from
   ``U(SNRmin, SNRmax)`` dB relative to the signal's energy, and added (no normalisation after it).

A notch filter has ``c`` taps (``c = int(U(minCoeff, maxCoeff))``, made odd by adding 1), a centre
``fc ~ U(minF, maxF)`` and a width ``bw ~ U(minBW, maxBW)`` Hz; its stop band ``[fc - bw/2, fc + bw/2]`` is
clipped to ``(0, fs/2)``. It is the Hamming-windowed sinc design of ``scipy.signal.firwin(c, [f1, f2],
window="hamming", fs=fs)`` (unit gain at 0 Hz), built in torch for a whole batch at once. A cascade is scaled
so that its peak magnitude on ``freqz``'s 512-point grid ``[0, fs/2)`` equals ``10 ** (G / 20)``.

Algorithms, numbered as ``--algo`` of the official ``main_SSL_LA.py`` (0 there means no augmentation):
``1`` LnL, ``2`` ISD, ``3`` SSI, ``4`` LnL -> ISD -> SSI, ``5`` LnL -> ISD, ``6`` LnL -> SSI,
``7`` ISD -> SSI (series: each applied to the previous one's output), ``8`` LnL || ISD (parallel: both
applied to the input, summed, then scaled down to ``max |y| = 1`` if above 1, as the official code does).

Defaults (:class:`RawBoostParams`) are those of the official ``main_SSL_LA.py`` for 16 kHz speech:
``N_f=5, nBands=5, minF=20, maxF=8000, minBW=100, maxBW=1000, minCoeff=10, maxCoeff=100, minG=0, maxG=0,
minBiasLinNonLin=5, maxBiasLinNonLin=20, P=10, g_sd=2, SNRmin=10, SNRmax=40``.

Filtering is "same"-length and zero-phase: the output sample ``t`` is the linear-phase FIR's output at
``t + (L - 1) / 2``, the filter's group delay. The official ``filterFIR`` takes ``t + (L + 1) / 2``, one
sample later; a one-sample advance of the whole augmented wave does not matter for augmentation, and keeping
the alignment exact lets lengths and masks line up. Filters run by FFT (``torch.fft``), zero-padded so that
there is no circular wrap, exactly like a linear convolution with zeros outside the wave.

Batches and padding: ``(batch, samples)`` with optional ``lengths``. Every statistic (LnL's mean, the peak
of the scale-down steps, SSI's signal energy, ISD's sample count ``int(length * beta / 100)``) is taken over
a row's valid samples only, filters see zeros after them (as the official code pads), and the output is 0
from ``lengths[b]`` on.

Seeding: ``RawBoost(...)(waves, seeds)`` takes one int64 seed per row. Random numbers come from a
counter-based generator: each value is a hash of ``(seed, stream, index)``, where ``stream`` names the quantity
(e.g. "LnL band centres", "SSI noise") and ``index`` its position (the sample index for per-sample arrays).
So a row's augmentation depends only on its seed, its own samples and its length: not on the other rows,
the padded length, the row's position, the device, or what ran before (there is no generator state). The
three components use disjoint streams, so with the same seed algo 5 equals algo 2 applied to algo 1's
output, and algo 8 is ``scale(algo1(x) + algo2(x))``. Outputs for the same seed are identical up to
floating-point rounding (FFT sizes follow the padded length; CPU and GPU round differently).

Where it runs: on the collated batch, e.g. in the training step on the GPU; it is a pure tensor function of
``(waves, seeds, lengths)`` with no gradient. The caller derives the seeds (e.g. from the run seed, the epoch
and the trial index) so that an epoch's augmentation is reproducible whatever the data order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from lcnn.audio.seeded import between, bits, uniform, uniform_open

__all__ = ["RAWBOOST_ALGOS", "RawBoost", "RawBoostParams"]

RAWBOOST_ALGOS: dict[int, str] = {
    1: "LnL convolutive noise",
    2: "ISD impulsive noise",
    3: "SSI coloured additive noise",
    4: "LnL -> ISD -> SSI (series)",
    5: "LnL -> ISD (series)",
    6: "LnL -> SSI (series)",
    7: "ISD -> SSI (series)",
    8: "LnL || ISD (parallel)",
}

# Which components each algo chains (series), or sums (algo 8, parallel).
_SERIES: dict[int, tuple[str, ...]] = {
    1: ("lnl",),
    2: ("isd",),
    3: ("ssi",),
    4: ("lnl", "isd", "ssi"),
    5: ("lnl", "isd"),
    6: ("lnl", "ssi"),
    7: ("isd", "ssi"),
}
_PARALLEL: dict[int, tuple[str, ...]] = {8: ("lnl", "isd")}

# Stream namespaces: a component's streams are fixed whatever algo it sits in (see the module docstring).
_LNL, _ISD, _SSI, _APPLY = 1 << 12, 2 << 12, 3 << 12, 4 << 12
# Per-filter streams inside a component's namespace.
_FC, _BW, _NCOEFF, _GAIN = 1, 2, 3, 4
# ISD and SSI streams.
_BETA, _PICK, _FR1, _FR2, _NOISE1, _NOISE2, _SNR = 16, 17, 18, 19, 20, 21, 22

# freqz's default grid: 512 frequencies k * pi / 512, k = 0..511 (Nyquist excluded).
_FREQZ_POINTS = 512


@dataclass(frozen=True)
class RawBoostParams:
    """RawBoost's parameters, defaults from the official ``main_SSL_LA.py`` (official names in brackets).

    Attributes:
        n_f: order of the (non-)linearity, 1 = linear only [``N_f``].
        n_bands: notch filters per cascade [``nBands``].
        min_f, max_f: range of the notch centre frequencies in Hz [``minF``, ``maxF``]; ``max_f <= fs / 2``.
        min_bw, max_bw: range of the notch widths in Hz [``minBW``, ``maxBW``].
        min_coeff, max_coeff: range of the taps per notch filter, made odd [``minCoeff``, ``maxCoeff``].
        min_g, max_g: peak gain of the linear (and SSI) cascade in dB [``minG``, ``maxG``].
        min_bias_lin_nonlin, max_bias_lin_nonlin: how many dB lower the non-linear terms' gain range is
            [``minBiasLinNonLin``, ``maxBiasLinNonLin``].
        p: ISD touches up to ``p`` percent of the samples [``P``].
        g_sd: ISD gain [``g_sd``].
        snr_min, snr_max: SSI's SNR range in dB [``SNRmin``, ``SNRmax``].
    """

    n_f: int = 5
    n_bands: int = 5
    min_f: float = 20.0
    max_f: float = 8000.0
    min_bw: float = 100.0
    max_bw: float = 1000.0
    min_coeff: int = 10
    max_coeff: int = 100
    min_g: float = 0.0
    max_g: float = 0.0
    min_bias_lin_nonlin: float = 5.0
    max_bias_lin_nonlin: float = 20.0
    p: float = 10.0
    g_sd: float = 2.0
    snr_min: float = 10.0
    snr_max: float = 40.0

    def __post_init__(self) -> None:
        if self.n_f < 1 or self.n_bands < 1:
            raise ValueError(f"n_f and n_bands must be at least 1, got {self.n_f}, {self.n_bands}")
        if not 0 <= self.min_f <= self.max_f:
            raise ValueError(f"need 0 <= min_f <= max_f, got {self.min_f}, {self.max_f}")
        if not 0 < self.min_bw <= self.max_bw:
            raise ValueError(f"need 0 < min_bw <= max_bw, got {self.min_bw}, {self.max_bw}")
        # Fewer than 3 taps cannot make a band-stop filter (firwin needs an odd count >= 3 here).
        if not 2 <= self.min_coeff <= self.max_coeff:
            raise ValueError(f"need 2 <= min_coeff <= max_coeff, got {self.min_coeff}, {self.max_coeff}")
        if not 0 <= self.p <= 100:
            raise ValueError(f"p is a percentage of samples, need 0 <= p <= 100, got {self.p}")
        if self.snr_min > self.snr_max:
            raise ValueError(f"need snr_min <= snr_max, got {self.snr_min}, {self.snr_max}")

    @property
    def max_taps(self) -> int:
        """The most taps a notch filter can get: ``int(U(min, max))`` made odd never exceeds this."""
        return 2 * (self.max_coeff // 2) + 1

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------------------
# Filters


def _notch_taps(ncoeff: Tensor, f1: Tensor, f2: Tensor, fs: float, max_taps: int) -> Tensor:
    """``scipy.signal.firwin(c, [f1, f2], window="hamming", fs=fs)`` for any batch of (c, f1, f2).

    Args:
        ncoeff: (...,) odd tap counts ``c <= max_taps``.
        f1, f2: (...,) stop-band edges in Hz, ``0 < f1 < f2 < fs / 2``.

    Returns:
        (..., max_taps) taps, each filter centred at ``(max_taps - 1) / 2`` and zero outside its ``c`` taps,
        so that all filters share one linear-phase delay.
    """
    dtype = f1.dtype
    m = torch.arange(max_taps, device=f1.device, dtype=dtype) - (max_taps - 1) / 2
    half = ((ncoeff - 1) / 2).to(dtype)[..., None]
    nyq = fs / 2
    lo, hi = (f1 / nyq)[..., None], (f2 / nyq)[..., None]
    # Band-stop = pass [0, f1] plus pass [f2, Nyquist]: sum of the ideal low/high-pass impulse responses.
    h = lo * torch.sinc(lo * m) + torch.sinc(m) - hi * torch.sinc(hi * m)
    # Symmetric Hamming window of c taps, centred; the clamp only keeps the unused c = 1 case finite.
    window = 0.54 + 0.46 * torch.cos(2 * math.pi * m / (2 * half).clamp(min=1))
    h = torch.where(m.abs() <= half, h * window, torch.zeros_like(h))
    # firwin's scale=True: unit gain at 0 Hz, the centre of the first pass band.
    return h / h.sum(dim=-1, keepdim=True)


def _fast_len(n: int) -> int:
    """Smallest power of two >= n: an FFT length for which every backend is fast."""
    return 1 << max(0, (n - 1).bit_length())


class _Cascades:
    """Random notch cascades for ``(batch, n_filters)`` filters, their peak gains set as genNotchCoeffs does."""

    def __init__(
        self,
        params: RawBoostParams,
        fs: float,
        seeds: Tensor,
        namespace: int,
        gains_db: Tensor,
        dtype: torch.dtype,
    ) -> None:
        batch, n_filters = gains_db.shape
        shape = (n_filters, params.n_bands)
        k = params.max_taps
        fc = between(uniform(seeds, namespace + _FC, shape, torch.float64), params.min_f, params.max_f)
        bw = between(uniform(seeds, namespace + _BW, shape, torch.float64), params.min_bw, params.max_bw)
        c = torch.floor(
            between(uniform(seeds, namespace + _NCOEFF, shape, torch.float64), params.min_coeff, params.max_coeff)
        ).long()
        c = c + (c % 2 == 0).long()
        # Official edge handling: clamp the stop band into (0, fs/2) by a millihertz.
        f1 = torch.where(fc - bw / 2 <= 0, torch.full_like(fc, 1e-3), fc - bw / 2)
        f2 = torch.where(fc + bw / 2 >= fs / 2, torch.full_like(fc, fs / 2 - 1e-3), fc + bw / 2)
        self.bands, self.gains_db = (fc, bw, c, f1, f2), gains_db  # kept for tests and inspection
        taps = _notch_taps(c, f1, f2, fs, k)  # (batch, n_filters, n_bands, k), float64

        # Cascade by multiplying spectra on a grid that holds the whole cascade (no wrap) and contains
        # freqz's 512-point grid as every m-th bin.
        self.length = params.n_bands * (k - 1) + 1
        self.delay = (self.length - 1) // 2
        n_grid = 2 * _FREQZ_POINTS * math.ceil(self.length / (2 * _FREQZ_POINTS))
        spectrum = torch.fft.rfft(taps, n=n_grid).prod(dim=2)  # (batch, n_filters, n_grid // 2 + 1)
        step = n_grid // (2 * _FREQZ_POINTS)
        peak = spectrum[..., : _FREQZ_POINTS * step : step].abs().amax(dim=-1)
        scale = 10.0 ** (gains_db.to(torch.float64) / 20) / peak
        self.taps = (torch.fft.irfft(spectrum, n=n_grid)[..., : self.length] * scale[..., None]).to(dtype)

    def response(self, n_fft: int) -> Tensor:
        """(batch, n_filters, n_fft // 2 + 1) frequency responses for FFT filtering at ``n_fft``."""
        return torch.fft.rfft(self.taps, n=n_fft)


def _scale_down(x: Tensor, always: bool = False) -> Tensor:
    """The official ``normWav``: divide each row by its peak ``max |x|``, always or only when above 1."""
    peak = x.abs().amax(dim=1, keepdim=True)
    divide = peak > 0 if always else peak > 1
    return torch.where(divide, x / peak.clamp(min=torch.finfo(x.dtype).tiny), x)


# ---------------------------------------------------------------------------------------------------------


class RawBoost(nn.Module):
    """RawBoost augmentation of ``(batch, samples)`` waveform batches, one int64 seed per row.

    See the module docstring for the algorithms, their defaults, the seeding and the padding rules.

    Args:
        algo: 1..8, numbered as the official ``--algo`` (:data:`RAWBOOST_ALGOS`); 0 is the identity.
        params: the parameters; ``None`` takes the official defaults.
        sample_rate: the waves' rate in Hz (``params.max_f`` must not exceed half of it).
        p: probability that a row is augmented at all (drawn from its seed); rows not drawn pass unchanged.

    Shapes: ``waves (batch, samples)`` or ``(samples,)``, ``seeds (batch,)`` int64 (or a scalar for 1-D
    input), optional ``lengths (batch,)`` -> same shape and dtype as ``waves``. float64 input is processed in
    float64, anything else in float32. In eval mode the module is the identity, so validation sees clean
    data when it sits in a model.
    """

    def __init__(
        self, algo: int, params: RawBoostParams | None = None, sample_rate: int = 16000, p: float = 1.0
    ) -> None:
        super().__init__()
        if algo != 0 and algo not in RAWBOOST_ALGOS:
            raise ValueError(f"RawBoost algo must be 0..8 (as the official --algo), got {algo!r}")
        params = RawBoostParams() if params is None else params
        if params.max_f > sample_rate / 2:
            raise ValueError(f"max_f={params.max_f} Hz is above the Nyquist frequency of {sample_rate} Hz audio")
        if not 0 <= p <= 1:
            raise ValueError(f"p is a probability, need 0 <= p <= 1, got {p}")
        self.algo, self.params, self.sample_rate, self.p = int(algo), params, int(sample_rate), float(p)

    @torch.no_grad()
    def forward(self, waves: Tensor, seeds: Tensor | int, lengths: Tensor | Sequence[int] | None = None) -> Tensor:
        """Augmented copy of ``waves``; see the class docstring for shapes."""
        if not self.training or self.algo == 0:
            return waves
        squeeze = waves.dim() == 1
        x = waves.unsqueeze(0) if squeeze else waves
        if x.dim() != 2 or x.shape[1] == 0:
            raise ValueError(f"expected waves of shape (samples,) or (batch, samples), got {tuple(waves.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"expected a floating-point waveform, got {waves.dtype}")
        batch, samples = x.shape
        seeds = torch.as_tensor(seeds, device=x.device).reshape(-1)
        if seeds.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
            raise TypeError(f"seeds must be integers (one per row), got {seeds.dtype}")
        seeds = seeds.long()
        if seeds.numel() != batch:
            raise ValueError(f"got {seeds.numel()} seeds for a batch of {batch}")
        if lengths is None:
            lens = torch.full((batch,), samples, device=x.device, dtype=torch.int64)
        else:
            lens = torch.as_tensor(lengths, device=x.device).long().reshape(-1)
            if lens.numel() != batch:
                raise ValueError(f"lengths has {lens.numel()} entries for a batch of {batch}")
            if bool((lens < 1).any()) or bool((lens > samples).any()):
                raise ValueError(f"lengths must lie in [1, {samples}] (the padded length), got {lens.tolist()}")

        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        with torch.autocast(device_type=x.device.type, enabled=False):
            valid = torch.arange(samples, device=x.device)[None, :] < lens[:, None]
            clean = torch.where(valid, x.to(dtype), torch.zeros((), device=x.device, dtype=dtype))
            if self.algo in _PARALLEL:
                parts = [self._component(name, clean, seeds, lens, valid) for name in _PARALLEL[self.algo]]
                out = _scale_down(torch.stack(parts).sum(dim=0))
            else:
                out = clean
                for name in _SERIES[self.algo]:
                    out = self._component(name, out, seeds, lens, valid)
            if self.p < 1:
                chosen = uniform(seeds, _APPLY, (1,), torch.float64) < self.p
                out = torch.where(chosen.to(x.device), out, clean)
            out = torch.where(valid, out, torch.zeros((), device=x.device, dtype=dtype)).to(x.dtype)
        return out[0] if squeeze else out

    # Components: (batch, samples) in the compute dtype, zero beyond lens -> same.

    def _component(self, name: str, x: Tensor, seeds: Tensor, lens: Tensor, valid: Tensor) -> Tensor:
        return getattr(self, f"_{name}")(x, seeds, lens, valid)

    def _filter(self, signals: Tensor, cascades: _Cascades) -> Tensor:
        """sum_i cascade_i * signals[:, i] ('same' length, zero-phase) for (batch, n_filters, samples)."""
        samples = signals.shape[-1]
        n_fft = _fast_len(samples + cascades.length - 1)
        spec = torch.fft.rfft(signals, n=n_fft) * cascades.response(n_fft)
        full = torch.fft.irfft(spec.sum(dim=1), n=n_fft)
        return full[:, cascades.delay : cascades.delay + samples]

    def _lnl_cascades(self, seeds: Tensor, dtype: torch.dtype) -> _Cascades:
        """LnL's ``N_f`` cascades per row: index 0 filters x, index i filters x ** (i + 1)."""
        prm = self.params
        u = uniform(seeds, _LNL + _GAIN, (prm.n_f,), torch.float64)
        # The official loop lowers the gain range once, at i == 1, so every non-linear term shares it.
        gains = torch.cat(
            [
                between(u[:, :1], prm.min_g, prm.max_g),
                between(u[:, 1:], prm.min_g - prm.min_bias_lin_nonlin, prm.max_g - prm.max_bias_lin_nonlin),
            ],
            dim=1,
        )
        return _Cascades(prm, self.sample_rate, seeds, _LNL, gains, dtype)

    def _ssi_cascade(self, seeds: Tensor, dtype: torch.dtype) -> _Cascades:
        """SSI's one cascade per row, peak gain in [min_g, max_g] dB."""
        prm = self.params
        gains = between(uniform(seeds, _SSI + _GAIN, (1,), torch.float64), prm.min_g, prm.max_g)
        return _Cascades(prm, self.sample_rate, seeds, _SSI, gains, dtype)

    def _lnl(self, x: Tensor, seeds: Tensor, lens: Tensor, valid: Tensor) -> Tensor:
        prm = self.params
        cascades = self._lnl_cascades(seeds, x.dtype)
        powers = torch.stack([x ** (i + 1) for i in range(prm.n_f)], dim=1)
        y = self._filter(powers, cascades) * valid
        mean = y.sum(dim=1, keepdim=True) / lens[:, None].to(y.dtype)
        return _scale_down((y - mean) * valid)

    def _isd(self, x: Tensor, seeds: Tensor, lens: Tensor, valid: Tensor) -> Tensor:
        prm = self.params
        samples = x.shape[1]
        beta = between(uniform(seeds, _ISD + _BETA, (1,), torch.float64)[:, 0], 0.0, prm.p)
        count = torch.floor(lens.to(torch.float64) * (beta / 100)).long()
        # n distinct positions uniformly among the valid ones: the n smallest of per-position hashes (distinct
        # by construction), padding pushed past every hash.
        keys = torch.where(valid, bits(seeds, _ISD + _PICK, samples), torch.full_like(lens[:, None], 1 << 40))
        k = int(count.max())
        if k == 0:
            return _scale_down(x)
        smallest = keys.topk(k, dim=1, largest=False).values
        threshold = smallest.gather(1, (count - 1).clamp(min=0)[:, None])
        picked = (keys <= threshold) & (count > 0)[:, None]
        f_r = (2 * uniform_open(seeds, _ISD + _FR1, samples, x.dtype) - 1) * (
            2 * uniform_open(seeds, _ISD + _FR2, samples, x.dtype) - 1
        )
        y = torch.where(picked, x + prm.g_sd * x * f_r, x)
        return _scale_down(y)

    def _ssi(self, x: Tensor, seeds: Tensor, lens: Tensor, valid: Tensor) -> Tensor:
        prm = self.params
        samples = x.shape[1]
        # Box-Muller from two (0, 1] streams: white Gaussian noise, one value per sample index.
        radius = torch.sqrt(-2 * torch.log(uniform_open(seeds, _SSI + _NOISE1, samples, x.dtype)))
        noise = radius * torch.cos(2 * math.pi * uniform_open(seeds, _SSI + _NOISE2, samples, x.dtype)) * valid
        cascades = self._ssi_cascade(seeds, x.dtype)
        noise = _scale_down(self._filter(noise[:, None, :], cascades) * valid, always=True)
        snr = between(uniform(seeds, _SSI + _SNR, (1,), torch.float64), prm.snr_min, prm.snr_max).to(x.dtype)
        # The scale to max |n| = 1 above cancels here; it is the official order of steps.
        tiny = torch.finfo(x.dtype).tiny
        gain = x.norm(dim=1, keepdim=True) / noise.norm(dim=1, keepdim=True).clamp(min=tiny) / 10.0 ** (snr / 20)
        return x + noise * gain

    def extra_repr(self) -> str:
        name = RAWBOOST_ALGOS.get(self.algo, "identity")
        return f"algo={self.algo} ({name}), sample_rate={self.sample_rate}, p={self.p}, params={self.params}"
