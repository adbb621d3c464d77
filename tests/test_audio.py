"""lcnn.audio: reference parity of the LFCC front-end, batching, the log spectrogram, and load_audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import get_window

from lcnn.audio import LFCC, AudioError, LogPowerSpectrogram, load_audio

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
LFCC_REF = FIXTURES / "lfcc_ref.npz"

# The two configurations stored in lfcc_ref.npz (see shared/fixtures/README.md).
LFCC_CONFIGS = {
    "baseline2021": dict(n_fft=1024, f_max=4000.0),
    "fullband512": dict(n_fft=512),
}


@pytest.fixture(scope="module")
def lfcc_ref() -> dict[str, np.ndarray]:
    if not LFCC_REF.is_file():
        pytest.skip(f"reference fixture {LFCC_REF} is absent (shared fixtures not checked out)")
    with np.load(LFCC_REF) as data:
        return {k: data[k] for k in data.files}


def _waves(n: int = 2, seed: int = 0) -> list[torch.Tensor]:
    """Speech-like test signals of different lengths: a chirp plus noise, with a silent stretch."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        length = 4000 + 1237 * i
        t = torch.arange(length, dtype=torch.float64) / 16000
        x = 0.3 * torch.sin(2 * torch.pi * (200 + 3000 * t) * t) + 0.05 * torch.randn(
            length, generator=g, dtype=torch.float64
        )
        x[1000:1400] = 0.0
        out.append(x.float())
    return out


# --------------------------------------------------------------------------------------------------- LFCC


@pytest.mark.parametrize("config", sorted(LFCC_CONFIGS))
@pytest.mark.parametrize("index", range(4))
def test_lfcc_matches_reference(lfcc_ref: dict[str, np.ndarray], config: str, index: int) -> None:
    wave = torch.from_numpy(lfcc_ref[f"wave_{index}"])
    ref = lfcc_ref[f"lfcc_{config}_{index}"]
    lfcc = LFCC(**LFCC_CONFIGS[config])
    out = lfcc(wave.unsqueeze(0))
    assert out.shape == (1, *ref.shape)
    assert out.shape[1] == lfcc.num_frames(wave.numel())
    np.testing.assert_allclose(out[0].numpy(), ref, rtol=0, atol=1e-4)


def test_lfcc_reference_in_float64_and_unbatched(lfcc_ref: dict[str, np.ndarray]) -> None:
    wave = torch.from_numpy(lfcc_ref["wave_0"])
    lfcc = LFCC(**LFCC_CONFIGS["baseline2021"])
    out64 = lfcc(wave.double())
    assert out64.dtype == torch.float64 and out64.shape == lfcc_ref["lfcc_baseline2021_0"].shape
    np.testing.assert_allclose(out64.numpy(), lfcc_ref["lfcc_baseline2021_0"], rtol=0, atol=1e-4)


def test_lfcc_kept_bins() -> None:
    # n_fft 1024 up to 4 kHz keeps int(0.5 * 513) = 256 bins: the 4 kHz bin (index 256) is dropped.
    assert (LFCC(n_fft=1024, f_max=4000).bin_lo, LFCC(n_fft=1024, f_max=4000).bin_hi) == (0, 256)
    full = LFCC(n_fft=512)
    assert (full.bin_lo, full.bin_hi) == (0, 257)
    assert full.filterbank.shape == (257, 20) and full.dct.shape == (20, 20)
    # Non-persistent buffers: nothing lands in a model's checkpoint.
    assert full.state_dict() == {}


def test_lfcc_shapes_options_and_input_untouched() -> None:
    x = torch.stack([w[:4000] for w in _waves(2)])
    before = x.clone()
    assert LFCC()(x).shape == (2, 26, 60)
    assert LFCC(with_delta=False)(x).shape == (2, 26, 20)
    assert LFCC(n_filters=30, with_delta=False).n_features == 30
    torch.testing.assert_close(x, before, rtol=0, atol=0)  # the reference pre-emphasises in place; we must not
    # c0 is the log energy with with_energy, the DCT's c0 without: everything else is shared.
    a, b = LFCC(with_energy=True)(x), LFCC(with_energy=False)(x)
    torch.testing.assert_close(a[..., 1:20], b[..., 1:20])
    assert not torch.allclose(a[..., 0], b[..., 0])
    assert LFCC().num_frames(16000) == 101
    assert LFCC().num_frames(torch.tensor([16000, 159])).tolist() == [101, 1]


def test_lfcc_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="f_max"):
        LFCC(f_max=9000)
    with pytest.raises(ValueError, match="win_length"):
        LFCC(n_fft=256, win_length=320)
    with pytest.raises(ValueError, match="empty"):
        LFCC()(torch.zeros(1, 0))
    with pytest.raises(ValueError, match="lengths"):
        LFCC()(torch.zeros(2, 100), lengths=[100, 101])


@pytest.mark.parametrize(
    "frontend",
    [LFCC(n_fft=1024, f_max=4000), LFCC(n_fft=512), LogPowerSpectrogram(), LogPowerSpectrogram(pre_emphasis=0.97)],
    ids=["lfcc-baseline2021", "lfcc-fullband512", "logspec", "logspec-preemph"],
)
def test_padded_batch_matches_separate(frontend: torch.nn.Module) -> None:
    short, long = _waves(2)
    batch = torch.zeros(2, long.numel())
    batch[0, : short.numel()] = short
    batch[1] = long
    lengths = torch.tensor([short.numel(), long.numel()])

    out = frontend(batch, lengths=lengths)
    alone_short, alone_long = frontend(short[None])[0], frontend(long[None])[0]
    n_short = frontend.num_frames(short.numel())
    assert out.shape[1] == alone_long.shape[0] == frontend.num_frames(long.numel())
    torch.testing.assert_close(out[0, :n_short], alone_short, rtol=0, atol=1e-5)
    torch.testing.assert_close(out[1], alone_long, rtol=0, atol=1e-5)
    assert torch.all(out[0, n_short:] == 0)
    # Without lengths only the frames whose window or deltas reach the padding may differ.
    plain = frontend(batch)
    torch.testing.assert_close(plain[0, : n_short - 3], alone_short[: n_short - 3], rtol=0, atol=1e-5)


def test_frontends_dtypes() -> None:
    x = _waves(1)[0][None]
    for frontend in (LFCC(), LogPowerSpectrogram()):
        ref = frontend(x)
        assert ref.dtype == torch.float32
        assert frontend(x.double()).dtype == torch.float64
        low = frontend(x.bfloat16())  # computed in float32: the log of a tiny power is meaningless in bf16
        assert low.dtype == torch.float32 and torch.isfinite(low).all()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.testing.assert_close(frontend(x), ref)


# ------------------------------------------------------------------------------------- LogPowerSpectrogram


def _numpy_log_power(x: np.ndarray, n_fft: int, win_length: int, hop: int, window: str, eps: float, center: bool):
    x = x.astype(np.float64)
    if center:
        x = np.pad(x, n_fft // 2)
    win = np.zeros(n_fft)
    start = (n_fft - win_length) // 2
    win[start : start + win_length] = get_window(window, win_length)
    n_frames = 1 + (len(x) - n_fft) // hop
    frames = np.stack([x[t * hop : t * hop + n_fft] for t in range(n_frames)])
    return np.log(np.abs(np.fft.rfft(frames * win, axis=-1)) ** 2 + eps)


@pytest.mark.parametrize(
    ("window", "n_fft", "win_length", "center"),
    [("hann", 512, None, True), ("hamming", 512, 400, True), ("blackman", 256, 200, True), ("hann", 512, None, False)],
)
def test_log_power_spectrogram_matches_numpy(window: str, n_fft: int, win_length: int | None, center: bool) -> None:
    x = _waves(1)[0]
    spec = LogPowerSpectrogram(n_fft=n_fft, win_length=win_length, hop_length=160, window=window, center=center)
    out = spec(x[None])
    ref = _numpy_log_power(x.numpy(), n_fft, win_length or n_fft, 160, window, 1e-10, center)
    assert out.shape == (1, *ref.shape) and out.shape[-1] == n_fft // 2 + 1 == spec.n_features
    assert out.shape[1] == spec.num_frames(x.numel())
    # Silent frames sit at log(1e-10); compare the power with an error relative to the frame's peak.
    np.testing.assert_allclose(np.exp(out[0].double().numpy()), np.exp(ref), rtol=1e-4, atol=1e-6)
    loud = ref > np.log(1e-4)
    np.testing.assert_allclose(out[0].numpy()[loud], ref[loud], rtol=0, atol=1e-3)


def test_log_power_spectrogram_arguments() -> None:
    with pytest.raises(ValueError, match="window"):
        LogPowerSpectrogram(window="kaiser")  # type: ignore[arg-type]
    assert LogPowerSpectrogram()(torch.zeros(3, 800)).min().item() == pytest.approx(np.log(1e-10), rel=1e-5)
    assert LogPowerSpectrogram().state_dict() == {}


# --------------------------------------------------------------------------------------------- load_audio


def test_load_audio_int16_wav_and_flac(tmp_path: Path) -> None:
    x = (0.5 * np.sin(2 * np.pi * 440 * np.arange(1600) / 16000)).astype(np.float32)
    for name in ("a.wav", "a.flac"):
        sf.write(tmp_path / name, x, 16000, subtype="PCM_16")
        y = load_audio(tmp_path / name)
        assert y.dtype == torch.float32 and y.shape == (1600,)
        np.testing.assert_allclose(y.numpy(), x, atol=1 / 32768)
        assert y.abs().max() <= 1


def test_load_audio_stereo_mixdown(tmp_path: Path) -> None:
    left = np.linspace(-0.5, 0.5, 800, dtype=np.float32)
    right = np.full(800, 0.25, dtype=np.float32)
    sf.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    y = load_audio(tmp_path / "stereo.wav")
    assert y.shape == (800,)
    np.testing.assert_allclose(y.numpy(), (left + right) / 2, atol=1e-7)


def test_load_audio_resamples_8k_sine(tmp_path: Path) -> None:
    freq, n = 440.0, 8000
    sf.write(tmp_path / "8k.wav", 0.5 * np.sin(2 * np.pi * freq * np.arange(n) / 8000), 8000, subtype="FLOAT")
    y = load_audio(tmp_path / "8k.wav", sample_rate=16000).numpy()
    assert y.shape == (16000,)
    # Still a 440 Hz sine: the spectral peak is at 440 Hz and, away from the filter's edge transients,
    # the samples are those of the ideal 16 kHz sine.
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    assert np.fft.rfftfreq(len(y), 1 / 16000)[spectrum.argmax()] == pytest.approx(freq, abs=1.0)
    ideal = 0.5 * np.sin(2 * np.pi * freq * np.arange(16000) / 16000)
    np.testing.assert_allclose(y[200:-200], ideal[200:-200], atol=5e-3)


def test_load_audio_refuses_other_rate_without_resample(tmp_path: Path) -> None:
    path = tmp_path / "rate8k.wav"
    sf.write(path, np.zeros(800, np.float32), 8000)
    with pytest.raises(AudioError, match="rate8k.wav") as info:
        load_audio(path, sample_rate=16000, resample=False)
    assert "8000" in str(info.value) and "16000" in str(info.value)


def test_load_audio_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="empty.wav"):
        load_audio(path)


def test_load_audio_truncated_flac(tmp_path: Path) -> None:
    path = tmp_path / "cut.flac"
    sf.write(path, 0.5 * np.sin(np.arange(16000) / 7), 16000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="cut.flac"):
        load_audio(path)


def test_load_audio_not_audio_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("not a RIFF file")
    with pytest.raises(AudioError, match="notes.wav"):
        load_audio(path)
    with pytest.raises(FileNotFoundError, match="missing.flac"):
        load_audio(tmp_path / "missing.flac")


def test_load_audio_nan(tmp_path: Path) -> None:
    path = tmp_path / "nan.wav"
    x = np.zeros(800, np.float32)
    x[100] = np.nan
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav") as info:
        load_audio(path)
    assert isinstance(info.value, ValueError)
