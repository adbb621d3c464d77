"""RawBoost: filter design and filtering against scipy (the official code's tools), the statistics the paper
and the official code define (SNR range, share of impulsive samples, notch bands, gains), composition of the
algorithms, padding, and per-sample seeding."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from scipy import signal

from lcnn.audio import RAWBOOST_ALGOS, RawBoost, RawBoostParams
from lcnn.audio.rawboost import _notch_taps, _scale_down
from lcnn.audio.seeded import bits, mix32

FS = 16000


def _speechlike(batch: int, samples: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Harmonic 'voiced' rows with a syllable envelope plus a little noise, peak about 0.3."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(samples, dtype=torch.float64) / FS
    f0 = 100 + 100 * torch.rand(batch, 1, generator=g, dtype=torch.float64)
    x = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 20))
    x = x * (0.6 - 0.4 * torch.cos(2 * math.pi * 3 * t)) + 0.05 * torch.randn(batch, samples, generator=g)
    return (0.3 * x / x.abs().amax(dim=1, keepdim=True)).to(dtype)


def _seeds(*values: int) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64)


# ---------------------------------------------------------------------------------------------------------
# Random numbers


def test_counter_hash_matches_python_reference_and_is_frozen():
    def mix(x: int) -> int:
        x ^= x >> 16
        x = (x * 0x7FEB352D) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 0x846CA68B) & 0xFFFFFFFF
        return x ^ (x >> 16)

    rng = random.Random(0)
    values = [rng.getrandbits(32) for _ in range(500)] + [0, 2**32 - 1]
    assert mix32(torch.tensor(values)).tolist() == [mix(v) for v in values]
    # Frozen values: a change here changes every augmented wave of every seeded experiment.
    assert bits(_seeds(0, 1, -1, 2**62), 5, 3).tolist() == [
        [4047946305, 1807362672, 1905578761],
        [4177485182, 1311321061, 2163821812],
        [3126791612, 1958041144, 3350533658],
        [393920964, 1915629705, 2434249244],
    ]


# ---------------------------------------------------------------------------------------------------------
# Filters against scipy


@pytest.mark.parametrize(
    "taps, f1, f2",
    [(11, 1e-3, 400.0), (57, 1200.0, 2000.0), (99, 7000.0, FS / 2 - 1e-3), (3, 100.0, 200.0), (201, 3500.0, 4500.0)],
)
def test_notch_taps_match_firwin(taps, f1, f2):
    width = 201
    h = _notch_taps(
        torch.tensor([taps]),
        torch.tensor([f1], dtype=torch.float64),
        torch.tensor([f2], dtype=torch.float64),
        FS,
        width,
    )[0].numpy()
    ref = signal.firwin(taps, [f1, f2], window="hamming", fs=FS)
    off = (width - taps) // 2
    np.testing.assert_allclose(h[off : off + taps], ref, atol=1e-12)
    assert np.all(h[:off] == 0) and np.all(h[off + taps :] == 0)


def test_cascades_follow_the_official_design():
    """Band parameters in their ranges, and each cascade equal to convolved firwin filters scaled so that
    freqz's peak is 10 ** (G / 20), the linear term at [minG, maxG] and the others lowered by the bias."""
    prm = RawBoostParams()
    rb = RawBoost(1)
    seeds = torch.arange(6)
    cascades = rb._lnl_cascades(seeds, torch.float64)
    fc, bw, c, f1, f2 = (v.numpy() for v in cascades.bands)
    assert fc.shape == (6, prm.n_f, prm.n_bands)
    assert (fc >= prm.min_f).all() and (fc <= prm.max_f).all()
    assert (bw >= prm.min_bw).all() and (bw <= prm.max_bw).all()
    assert (c % 2 == 1).all() and (c >= 11).all() and (c <= 99).all()
    gains = cascades.gains_db.numpy()
    np.testing.assert_array_equal(gains[:, 0], 0.0)  # minG = maxG = 0
    assert (gains[:, 1:] <= -5).all() and (gains[:, 1:] >= -20).all()

    taps = cascades.taps.numpy()
    for row in range(6):
        for i in range(prm.n_f):
            b = np.array([1.0])
            for j in range(prm.n_bands):
                b = np.convolve(
                    signal.firwin(int(c[row, i, j]), [f1[row, i, j], f2[row, i, j]], window="hamming", fs=FS), b
                )
            _, h = signal.freqz(b, 1, fs=FS)
            b = 10 ** (gains[row, i] / 20) * b / np.abs(h).max()
            off = cascades.delay - (len(b) - 1) // 2
            np.testing.assert_allclose(taps[row, i, off : off + len(b)], b, atol=1e-12)
            assert np.abs(taps[row, i, :off]).max(initial=0) < 1e-12


def test_lnl_equals_direct_convolution_of_the_powers():
    """Algo 1 = sum_i conv(x ** i, b_i) read at the filters' group delay, minus the mean, scaled down if above 1
    (the official filterFIR reads one sample later; see the module docstring)."""
    x = _speechlike(3, 3000, dtype=torch.float64)
    seeds = _seeds(3, 4, 5)
    rb = RawBoost(1)
    out = rb(x, seeds).numpy()
    cascades = rb._lnl_cascades(seeds, torch.float64)
    for row in range(3):
        y = np.zeros(3000)
        for i in range(5):
            b = cascades.taps[row, i].numpy()
            y += np.convolve(x[row].numpy() ** (i + 1), b)[cascades.delay : cascades.delay + 3000]
        y -= y.mean()
        if np.abs(y).max() > 1:
            y /= np.abs(y).max()
        np.testing.assert_allclose(out[row], y, atol=1e-10)


def test_lnl_notch_band_and_gain():
    """One narrow-band notch at 3.5-4.5 kHz with a sharp filter, peak gain -6 dB, on white noise."""
    prm = RawBoostParams(n_f=1, n_bands=1, min_f=4000, max_f=4000, min_bw=1000, max_bw=1000,
                         min_coeff=201, max_coeff=201, min_g=-6, max_g=-6)  # fmt: skip
    x = 0.05 * torch.randn(8, 32000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = RawBoost(1, prm)(x, torch.arange(8))
    freqs = np.fft.rfftfreq(32000, 1 / FS)
    px = (np.abs(np.fft.rfft(x.numpy())) ** 2).mean(0)
    py = (np.abs(np.fft.rfft(y.numpy())) ** 2).mean(0)

    def band_db(lo, hi):
        sel = (freqs >= lo) & (freqs < hi)
        return 10 * np.log10(py[sel].sum() / px[sel].sum())

    assert band_db(3700, 4300) < -30
    for lo, hi in [(100, 3000), (5000, 7900)]:
        assert band_db(lo, hi) == pytest.approx(-6.0, abs=0.5)


def test_lnl_linear_with_n_f_1_and_not_with_higher_orders():
    x = 2 * _speechlike(2, 4000, dtype=torch.float64)  # peak 0.6: powers of x matter, no scale-down
    seeds = _seeds(7, 8)
    linear = RawBoost(1, RawBoostParams(n_f=1))
    torch.testing.assert_close(linear(0.5 * x, seeds), 0.5 * linear(x, seeds))
    cubic = RawBoost(1, RawBoostParams(min_bias_lin_nonlin=0, max_bias_lin_nonlin=0))
    assert (cubic(0.5 * x, seeds) - 0.5 * cubic(x, seeds)).abs().max() > 1e-3


# ---------------------------------------------------------------------------------------------------------
# ISD and SSI statistics


def test_isd_touches_up_to_p_percent_with_signal_dependent_gains():
    x = 0.1 + 0.05 * torch.rand(200, 4000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = RawBoost(2)(x, torch.arange(200))
    changed = y != x
    share = changed.double().mean(dim=1)
    assert share.max() <= 0.10
    assert share.max() > 0.09 and share.min() < 0.01
    assert share.mean().item() == pytest.approx(0.05, abs=0.006)  # beta ~ U(0, 10) percent
    ratio = ((y - x) / x)[changed] / 2  # g_sd = 2: the ratio is u1 * u2, u1, u2 ~ U(-1, 1)
    assert ratio.abs().max() <= 1
    assert ratio.abs().mean().item() == pytest.approx(0.25, abs=0.01)  # E|u1 u2| = 1/4
    assert ratio.mean().item() == pytest.approx(0.0, abs=0.01)


def test_isd_count_follows_the_valid_length():
    x = 0.1 + 0.05 * torch.rand(1, 6000, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    prm = RawBoostParams(p=100)
    y_full = RawBoost(2, prm)(x, _seeds(5))
    y_half = RawBoost(2, prm)(x, _seeds(5), lengths=[3000])
    # Same beta for the same seed: the count scales with the valid length, and nothing past it is touched.
    n_full, n_half = int((y_full != x).sum()), int((y_half[:, :3000] != x[:, :3000]).sum())
    assert abs(n_full - 2 * n_half) <= 2
    assert (y_half[:, 3000:] == 0).all()


def test_ssi_snr_within_range():
    x = _speechlike(64, 4000, dtype=torch.float64)
    y = RawBoost(3)(x, torch.arange(64))
    snr = 10 * torch.log10(x.square().sum(1) / (y - x).square().sum(1))
    assert snr.min() >= 10 - 1e-6 and snr.max() <= 40 + 1e-6
    assert snr.min() < 14 and snr.max() > 36


def test_ssi_noise_is_coloured_by_a_notch_cascade():
    prm = RawBoostParams(snr_min=20, snr_max=20, n_bands=1, min_f=2000, max_f=2000, min_bw=1000, max_bw=1000,
                         min_coeff=151, max_coeff=151)  # fmt: skip
    x = _speechlike(8, 16000, dtype=torch.float64)
    noise = (RawBoost(3, prm)(x, torch.arange(8)) - x).numpy()
    snr = 10 * np.log10((x.numpy() ** 2).sum(1) / (noise**2).sum(1))
    np.testing.assert_allclose(snr, 20, atol=1e-6)
    freqs = np.fft.rfftfreq(16000, 1 / FS)
    power = (np.abs(np.fft.rfft(noise)) ** 2).mean(0)
    notch = power[(freqs > 1700) & (freqs < 2300)].mean()
    assert notch < 1e-3 * power[(freqs > 3000) & (freqs < 7000)].mean()


# ---------------------------------------------------------------------------------------------------------
# Composition, shapes, padding, seeding


@pytest.mark.parametrize("algo, chain", [(4, (1, 2, 3)), (5, (1, 2)), (6, (1, 3)), (7, (2, 3))])
def test_series_algos_apply_the_components_in_order(algo, chain):
    x = _speechlike(4, 3000, dtype=torch.float64)
    seeds = _seeds(11, 12, 13, 14)
    expected = x
    for single in chain:
        expected = RawBoost(single)(expected, seeds)
    torch.testing.assert_close(RawBoost(algo)(x, seeds), expected, rtol=0, atol=1e-12)


def test_parallel_algo_8_sums_lnl_and_isd_of_the_input_then_scales_down():
    x = _speechlike(4, 3000, dtype=torch.float64)
    seeds = _seeds(21, 22, 23, 24)
    expected = _scale_down(RawBoost(1)(x, seeds) + RawBoost(2)(x, seeds))
    torch.testing.assert_close(RawBoost(8)(x, seeds), expected, rtol=0, atol=1e-12)


def test_scale_down_is_norm_wav():
    x = torch.tensor([[0.5, -2.0, 1.0], [0.1, -0.2, 0.3]])
    torch.testing.assert_close(_scale_down(x), torch.tensor([[0.25, -1.0, 0.5], [0.1, -0.2, 0.3]]))
    torch.testing.assert_close(_scale_down(x, always=True)[1], torch.tensor([1 / 3, -2 / 3, 1.0]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_shapes_and_dtypes(dtype):
    x = _speechlike(3, 2000).to(dtype)
    for algo in RAWBOOST_ALGOS:
        y = RawBoost(algo)(x, _seeds(1, 2, 3))
        assert y.shape == x.shape and y.dtype == dtype
        assert torch.isfinite(y.float()).all() and not torch.equal(y, x)
    one = RawBoost(4)(x[1], 2)
    assert one.shape == (2000,)
    torch.testing.assert_close(one, RawBoost(4)(x, _seeds(1, 2, 3))[1])


@pytest.mark.parametrize("algo", sorted(RAWBOOST_ALGOS))
def test_padding_stays_zero_and_rows_do_not_depend_on_the_batch(algo):
    lengths = [2500, 1700, 3000, 900]
    rows = [_speechlike(1, n, seed=i)[0] for i, n in enumerate(lengths)]
    # Padding filled with junk: what lies past a row's length must not matter.
    batch = torch.randn(4, 3000, generator=torch.Generator().manual_seed(9))
    for i, row in enumerate(rows):
        batch[i, : len(row)] = row
    seeds = _seeds(101, 102, 103, 104)
    rb = RawBoost(algo)
    out = rb(batch, seeds, lengths=lengths)
    for i, row in enumerate(rows):
        assert (out[i, lengths[i] :] == 0).all()
        alone = rb(row[None], seeds[i : i + 1])[0]
        torch.testing.assert_close(out[i, : lengths[i]], alone, rtol=0, atol=1e-5)
    # Reordered batch, and the same rows inside a longer padded batch with other company.
    perm = [2, 0, 3, 1]
    out_perm = rb(batch[perm], seeds[perm], lengths=[lengths[i] for i in perm])
    torch.testing.assert_close(out_perm, out[perm], rtol=0, atol=1e-5)
    bigger = torch.zeros(5, 4000)
    bigger[:4, :3000] = batch
    bigger[4] = 0.2 * torch.randn(4000, generator=torch.Generator().manual_seed(3))
    out_big = rb(bigger, torch.cat([seeds, _seeds(999)]), lengths=lengths + [4000])
    torch.testing.assert_close(out_big[:4, :3000], out, rtol=0, atol=1e-5)


def test_different_seeds_differ_and_the_same_seed_repeats():
    x = _speechlike(1, 3000).expand(3, -1)
    for algo in RAWBOOST_ALGOS:
        y = RawBoost(algo)(x, _seeds(5, 6, 5))
        torch.testing.assert_close(y[0], y[2], rtol=0, atol=1e-6)  # FFTs may round rows differently
        assert (y[0] - y[1]).abs().max() > 1e-3


def test_probability_eval_mode_and_identity():
    x = _speechlike(200, 500)
    y = RawBoost(3, p=0.3)(x, torch.arange(200))
    changed = (y != x).any(dim=1).double().mean().item()
    assert changed == pytest.approx(0.3, abs=0.1)
    assert torch.equal(RawBoost(3, p=0.0)(x, torch.arange(200)), x)
    assert torch.equal(RawBoost(3).eval()(x, torch.arange(200)), x)
    assert torch.equal(RawBoost(0)(x, torch.arange(200)), x)


def test_bad_arguments():
    with pytest.raises(ValueError, match="algo must be 0..8"):
        RawBoost(9)
    with pytest.raises(ValueError, match="Nyquist"):
        RawBoost(1, sample_rate=8000)
    with pytest.raises(ValueError, match="min_coeff"):
        RawBoostParams(min_coeff=1)
    x = torch.zeros(2, 100)
    with pytest.raises(ValueError, match="2 seeds"):
        RawBoost(1)(torch.zeros(3, 100), _seeds(1, 2))
    with pytest.raises(ValueError, match="lengths must lie"):
        RawBoost(1)(x, _seeds(1, 2), lengths=[0, 100])
    with pytest.raises(TypeError, match="seeds must be integers"):
        RawBoost(1)(x, torch.tensor([1.0, 2.0]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    x = _speechlike(4, 3000)
    seeds = _seeds(1, 2, 3, 4)
    for algo in RAWBOOST_ALGOS:
        cpu = RawBoost(algo)(x, seeds, lengths=[3000, 2000, 1000, 2999])
        gpu = RawBoost(algo)(x.cuda(), seeds.cuda(), lengths=torch.tensor([3000, 2000, 1000, 2999]).cuda())
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-4)


def test_isd_scales_down_even_when_no_sample_is_picked():
    """The official ISD ends with normWav(y, 0) whatever beta drew: a row above 1 comes back at peak 1."""
    x = 4 * _speechlike(2, 1000)
    y = RawBoost(2, RawBoostParams(p=0))(x, _seeds(1, 2))
    torch.testing.assert_close(y, x / x.abs().amax(dim=1, keepdim=True))
