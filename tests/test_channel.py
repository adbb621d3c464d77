"""Channel augmentation: ffmpeg codec round trips (length, closeness, band limits, G.711 levels, errors, no
temporary files), speed perturbation, additive noise at an SNR, reverberation, and the noise / RIR folders."""

from __future__ import annotations

import math
import os
import shutil
import stat
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from lcnn.audio import (
    CODECS,
    DEFAULT_CODECS,
    CodecError,
    CodecStep,
    NoiseBank,
    RirBank,
    add_noise,
    codec_roundtrip,
    reverberate,
)
from lcnn.audio import speed_perturb as speed
from lcnn.audio.codecs import _encode_decode, check_codecs, codec_delay
from lcnn.audio.ffmpeg import FFMPEG_ENV, _ffmpeg_candidates, ffmpeg_candidates, find_ffmpeg
from lcnn.errors import DataError, UserError

FS = 16000


def voice(n: int = 8123, seed: int = 0) -> np.ndarray:
    """A voiced, speech-like test signal: harmonics of a gliding f0 under three formants, syllable envelope,
    a little noise; peak about 0.3. (Perceptual codecs do odd things to pure chirps, not to this.)"""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    phase = 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * 2 * t)) / FS
    x = np.zeros(n)
    for k in range(1, 50):
        fk = 140 * k
        formant = sum(np.exp(-0.5 * ((fk - fc) / bw) ** 2) for fc, bw in ((500, 150), (1500, 200), (2500, 300)))
        x += (0.2 + formant) / k * np.sin(k * phase)
    x *= 0.5 * (1 - np.cos(2 * np.pi * 3 * t))
    return (0.3 * x / np.abs(x).max() + 0.003 * rng.standard_normal(n)).astype(np.float32)


@pytest.fixture(autouse=True)
def _fresh_ffmpeg_lookup(monkeypatch):
    """Tests change $LCNN_FFMPEG (restored after each) and PATH; the lookup cache is keyed on both, the encoder
    list per binary."""
    monkeypatch.setenv(FFMPEG_ENV, os.environ.get(FFMPEG_ENV, ""))
    yield
    _ffmpeg_candidates.cache_clear()


def _ffmpegs() -> list[str]:
    """Every ffmpeg here: the one on PATH and imageio-ffmpeg's, whose encoders differ (GSM, AMR)."""
    found = [shutil.which("ffmpeg")]
    try:
        import imageio_ffmpeg

        found.append(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):
        pass
    return [f for f in dict.fromkeys(found) if f]


def need_codec(name: str) -> None:
    """Point $LCNN_FFMPEG at an ffmpeg here that has this codec's encoder; skip, with the library's own
    one-line reasons, when none has it."""
    reasons = []
    for ffmpeg in _ffmpegs():
        os.environ[FFMPEG_ENV] = ffmpeg
        try:
            check_codecs([name])
            return
        except UserError as err:
            reasons.append(str(err))
    pytest.skip(" / ".join(reasons) or "no ffmpeg")


# One mid bitrate per codec, and how well the decoded wave must still correlate with the input.
ROUND_TRIPS = [
    ("mp3:32k", 0.98),
    ("aac:32k", 0.98),
    ("opus:16k", 0.98),
    ("vorbis:32k", 0.98),
    ("mulaw", 0.99),
    ("alaw", 0.99),
    ("gsm", 0.5),  # a loose bound for a waveform coder at 13k
    ("g722", 0.99),
    ("amr:7.4k", 0.7),
]


def test_round_trips_cover_every_codec():
    assert sorted(s.split(":")[0] for s, _ in ROUND_TRIPS) == sorted(CODECS)


@pytest.mark.parametrize("step, min_corr", ROUND_TRIPS)
def test_round_trip_keeps_length_and_stays_close_but_not_equal(step, min_corr):
    need_codec(step.split(":")[0])
    x = voice()
    y = codec_roundtrip(x, step)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == x.shape
    assert np.corrcoef(x, y)[0, 1] > min_corr
    assert np.abs(y - x).max() > 1e-3
    # Aligned: the best lag between input and output is (within a sample) zero.
    corr = [np.dot(x[50:-50], np.roll(y, -lag)[50:-50]) for lag in range(-3, 4)]
    assert abs(int(np.argmax(corr)) - 3) <= 1


def test_round_trip_keeps_type_and_is_deterministic():
    need_codec("mp3")
    x = voice(4000)
    a = codec_roundtrip(torch.from_numpy(x), CodecStep("mp3", 24000))
    b = codec_roundtrip(torch.from_numpy(x), "mp3:24k")
    assert isinstance(a, torch.Tensor) and a.dtype == torch.float32 and a.shape == (4000,)
    assert torch.equal(a, b)


def test_known_delays_are_found():
    need_codec("mp3")
    need_codec("aac")
    # Without a gapless header (none survives a pipe) LAME's encoder + decoder delay, and AAC's priming frame.
    assert codec_delay("mp3:32k") == 1105
    assert codec_delay("aac:32k") == 1024


@pytest.mark.parametrize("step", ["mulaw", "alaw", "gsm", "amr:12.2k"])
def test_narrowband_codecs_remove_the_band_above_4khz(step):
    need_codec(step.split(":")[0])
    x = (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)
    y = codec_roundtrip(x, step)
    freqs = np.fft.rfftfreq(len(x), 1 / FS)
    px, py = np.abs(np.fft.rfft(x)) ** 2, np.abs(np.fft.rfft(y)) ** 2
    high = freqs > 4500
    assert py[high].sum() < 1e-3 * px[high].sum()
    if step in ("mulaw", "alaw"):  # waveform codecs keep the telephone band
        low = (freqs > 300) & (freqs < 3000)
        assert py[low].sum() == pytest.approx(px[low].sum(), rel=0.1)


def _mulaw_levels() -> np.ndarray:
    """The 255 distinct G.711 mu-law reconstruction levels (ITU-T G.711 expansion), as floats."""
    code = ~np.arange(256) & 0xFF
    t = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return np.unique(np.where(code & 0x80, 0x84 - t, t - 0x84)) / 32768.0


def test_mulaw_round_trip_is_mu_law_companding():
    """At the codec's own 8 kHz (no resampling), every output sample is a G.711 mu-law level and, but for
    ffmpeg's rounding of the decision thresholds, the level nearest the input."""
    need_codec("mulaw")
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 8000
    x = (0.9 * np.sin(2 * np.pi * 440 * t) * np.linspace(0, 1, 16000) + 0.01 * rng.standard_normal(16000)).astype(
        np.float32
    )
    y = codec_roundtrip(x, "mulaw", sample_rate=8000)
    levels = _mulaw_levels()
    assert np.isin(y, levels).all()
    nearest = np.abs(x[:, None].astype(np.float64) - levels[None, :]).argmin(axis=1)
    got = np.searchsorted(levels, y)
    assert np.abs(got - nearest).max() <= 1
    assert (got != nearest).mean() < 0.05
    rms_codec = np.sqrt(np.mean((y - x) ** 2))
    rms_ideal = np.sqrt(np.mean((levels[nearest] - x) ** 2))
    assert rms_codec == pytest.approx(rms_ideal, rel=0.2)
    # A-law has other levels: the codecs are not swapped.
    need_codec("alaw")
    assert not np.isin(codec_roundtrip(x, "alaw", sample_rate=8000), levels).all()


def test_missing_encoder_is_one_clear_line(monkeypatch):
    ffmpeg = find_ffmpeg() if _has_ffmpeg() else pytest.skip("no ffmpeg")
    monkeypatch.setattr("lcnn.audio.codecs.ffmpeg_encoders", lambda _: frozenset({"aac", "pcm_mulaw"}))
    with pytest.raises(UserError) as info:
        codec_roundtrip(voice(1000), "mp3:32k")
    message = str(info.value)
    assert "\n" not in message
    assert "libmp3lame" in message and ffmpeg in message and "install" in message and FFMPEG_ENV in message


def test_gsm_says_what_to_install_when_missing():
    for ffmpeg in _ffmpegs():
        os.environ[FFMPEG_ENV] = ffmpeg
        try:
            check_codecs(["gsm"])
        except UserError as err:
            assert "libgsm" in str(err) and "apt-get install ffmpeg" in str(err)
            return
    pytest.skip("every ffmpeg here has libgsm" if _ffmpegs() else "no ffmpeg")


def _has_ffmpeg() -> bool:
    try:
        find_ffmpeg()
    except UserError:
        return False
    return True


def test_env_var_pointing_nowhere(monkeypatch, tmp_path):
    monkeypatch.setenv(FFMPEG_ENV, str(tmp_path / "no-such-ffmpeg"))
    with pytest.raises(UserError, match=f"{FFMPEG_ENV}=.*no-such-ffmpeg: no executable ffmpeg"):
        codec_roundtrip(voice(1000), "mulaw")


def test_no_ffmpeg_anywhere(monkeypatch, tmp_path):
    monkeypatch.delenv(FFMPEG_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails
    with pytest.raises(UserError, match="pip install imageio-ffmpeg") as info:
        find_ffmpeg()
    assert "apt-get install ffmpeg" in str(info.value) and "\n" not in str(info.value)


def test_each_codec_runs_on_the_first_ffmpeg_that_has_its_encoder(monkeypatch, tmp_path):
    """imageio-ffmpeg's static binary first (it starts several times faster than a distribution's), the one on
    PATH for the encoders it lacks; $LCNN_FFMPEG alone when set."""
    monkeypatch.delenv(FFMPEG_ENV, raising=False)
    static = tmp_path / "static" / "ffmpeg-static"
    static.parent.mkdir()
    static.write_text("#!/bin/sh\n")
    static.chmod(0o755)
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", types.SimpleNamespace(get_ffmpeg_exe=lambda: str(static)))
    on_path = _fake_ffmpeg(tmp_path / "bin", "exit 1")
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert ffmpeg_candidates() == (str(static), str(on_path)) and find_ffmpeg() == str(static)
    encoders = {str(static): frozenset({"libmp3lame", "libopus"}), str(on_path): frozenset({"libmp3lame", "libgsm"})}
    monkeypatch.setattr("lcnn.audio.codecs.ffmpeg_encoders", encoders.__getitem__)
    assert check_codecs(["mp3", "opus", "gsm"]) == {"mp3": str(static), "opus": str(static), "gsm": str(on_path)}
    with pytest.raises(UserError, match=f"encoder libvorbis, which none of {static}, {on_path} has: install"):
        check_codecs(["vorbis"])
    monkeypatch.setenv(FFMPEG_ENV, str(on_path))
    assert ffmpeg_candidates() == (str(on_path),) and check_codecs(["gsm"]) == {"gsm": str(on_path)}


def _fake_ffmpeg(folder: Path, body: str) -> Path:
    """An executable that answers -encoders like ffmpeg and runs ``body`` otherwise."""
    folder.mkdir()
    path = folder / "ffmpeg"
    path.write_text(
        "#!/bin/sh\n"
        'case "$*" in *-encoders*) echo " A....D libmp3lame   fake"; echo " A....D pcm_mulaw    fake"; exit 0;; esac\n'
        f"{body}\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_failing_ffmpeg_raises_and_leaves_no_temporary_files(monkeypatch, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    fake = _fake_ffmpeg(tmp_path / "bin", 'cat > /dev/null; printf "partial"; echo "Invalid data found" >&2; exit 1')
    monkeypatch.setenv(FFMPEG_ENV, str(fake))
    for var in ("TMPDIR", "TMP", "TEMP"):
        monkeypatch.setenv(var, str(tmp))
    monkeypatch.setattr("tempfile.tempdir", None)
    with pytest.raises(CodecError, match="exited with status 1: Invalid data found"):
        codec_roundtrip(voice(2000), "mp3:32k")
    assert list(tmp.iterdir()) == []
    # The real ffmpeg, failing (libvorbis cannot set up at 8k; the public API would refuse that bitrate)
    # and succeeding.
    monkeypatch.delenv(FFMPEG_ENV)
    if not _has_ffmpeg():
        pytest.skip("no ffmpeg: the fake ffmpeg's failure above passed; the real ffmpeg's half is not run")
    with pytest.raises(CodecError, match="codec vorbis:8k: .* exited with status"):
        _encode_decode(voice(2000), CodecStep("vorbis", 8000), FS, find_ffmpeg(), 30)
    need_codec("opus")
    codec_roundtrip(voice(2000), "opus:12k")
    assert list(tmp.iterdir()) == []


def test_hanging_ffmpeg_is_killed_at_the_timeout(monkeypatch, tmp_path):
    pids = tmp_path / "pids"
    fake = _fake_ffmpeg(tmp_path / "bin", f"sleep 30 & echo $$ $! > {pids}; wait")
    monkeypatch.setenv(FFMPEG_ENV, str(fake))
    start = time.monotonic()
    with pytest.raises(CodecError, match="did not finish within 0.5 s"):
        codec_roundtrip(voice(2000), "mulaw", timeout=0.5)
    assert time.monotonic() - start < 10
    for pid in pids.read_text().split():  # the shell and its child (the whole process group) are gone
        assert _gone(Path(f"/proc/{pid}/stat"), within=5.0), pid


def _gone(status: Path, within: float) -> bool:
    """Whether the process of ``/proc/PID/stat`` is gone or a zombie within ``within`` seconds: a process that
    was sent SIGKILL can still show as running while the kernel tears it down."""
    deadline = time.monotonic() + within
    while True:
        try:
            if status.read_text().split()[2] in "ZX":
                return True
        except FileNotFoundError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------------------------
# Speed, noise, reverberation


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_changes_length_and_pitch_by_the_factor(factor):
    t = np.arange(16000) / FS
    x = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    y = speed(x, factor)
    assert len(y) == math.ceil(len(x) / factor) and y.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    peak = np.fft.rfftfreq(len(y), 1 / FS)[np.argmax(spectrum)]
    assert peak == pytest.approx(1000 * factor, abs=2)


def test_speed_one_is_identity_and_keeps_type():
    x = torch.from_numpy(voice(1000))
    y = speed(x, 1.0)
    assert isinstance(y, torch.Tensor) and torch.equal(y, x)
    with pytest.raises(ValueError, match="positive"):
        speed(x, 0)


@pytest.mark.parametrize("snr", [-5.0, 0.0, 12.5, 30.0])
def test_noise_at_the_asked_snr(snr):
    x = voice(4000)
    n = np.random.default_rng(1).standard_normal(4000).astype(np.float32)
    y = add_noise(x, n, snr)
    measured = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum((y - x).astype(np.float64) ** 2))
    assert measured == pytest.approx(snr, abs=1e-3)
    assert np.corrcoef(y - x, n)[0, 1] > 0.9999  # the noise itself, scaled


def test_noise_edge_cases():
    x = voice(1000)
    np.testing.assert_array_equal(add_noise(x, np.zeros(1000, np.float32), 10), x)
    np.testing.assert_array_equal(add_noise(np.zeros(1000, np.float32), x, 10), np.zeros(1000))
    with pytest.raises(ValueError, match="999 samples"):
        add_noise(x, x[:999], 10)


@pytest.mark.parametrize("position", [0, 7])
def test_reverb_with_a_unit_impulse_is_the_identity(position):
    x = voice(3000)
    rir = np.zeros(64, np.float32)
    rir[position] = 1.0
    np.testing.assert_allclose(reverberate(x, rir), x, atol=1e-6)


def test_reverb_keeps_the_direct_path_and_adds_the_reflections():
    x = voice(3000)
    rir = np.array([0.1, -2.0, 0.0, 1.0, 0.5], np.float32)  # direct path -2 at index 1
    y = reverberate(torch.from_numpy(x), torch.from_numpy(rir))
    h = rir / -2.0
    expected = np.convolve(x, h)[1 : 1 + 3000]
    assert isinstance(y, torch.Tensor)
    np.testing.assert_allclose(y.numpy(), expected, atol=1e-6)
    assert y.numpy()[100] == pytest.approx(x[100] + 0.1 / -2 * x[101] - 0.5 * x[98] - 0.25 * x[97], abs=1e-6)
    with pytest.raises(ValueError, match="all zeros"):
        reverberate(x, np.zeros(8, np.float32))


def _write(path: Path, samples: int, rate: int = FS, channels: int = 1, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = 0.1 * np.random.default_rng(seed).standard_normal((samples, channels))
    sf.write(path, data.astype(np.float32), rate, subtype="FLOAT" if path.suffix == ".wav" else "PCM_16")


def test_noise_bank_reads_musan_layout_segments(tmp_path):
    root = tmp_path / "musan" / "noise"
    _write(root / "free-sound" / "noise-free-sound-0000.wav", 20000, seed=1)
    _write(root / "free-sound" / "noise-free-sound-0001.wav", 700, seed=2)  # shorter than asked: looped
    _write(root / "sound-bible" / "noise-sound-bible-0000.flac", 12000, rate=8000, seed=3)  # resampled
    (root / "free-sound" / "ANNOTATIONS").write_text("not audio\n")
    bank = NoiseBank(tmp_path / "musan")
    assert len(bank) == 3
    for seed in range(12):
        seg = bank.segment(5000, np.random.default_rng(seed))
        assert seg.shape == (5000,) and seg.dtype == np.float32 and np.abs(seg).max() > 0
    a = bank.segment(5000, np.random.default_rng(5))
    np.testing.assert_array_equal(a, bank.segment(5000, np.random.default_rng(5)))


@pytest.mark.parametrize("kind", [NoiseBank, RirBank])
def test_banks_reject_missing_and_empty_folders(tmp_path, kind):
    with pytest.raises(DataError, match="not found"):
        kind(tmp_path / "absent")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="no .*wav/.flac") as info:
        kind(tmp_path / "empty")
    assert ("musan/noise" if kind is NoiseBank else "simulated_rirs") in str(info.value)


def test_rir_bank_reads_rirs_noises_layout_without_the_noises(tmp_path):
    root = tmp_path / "RIRS_NOISES"
    _write(root / "simulated_rirs" / "smallroom" / "Room001" / "Room001-00001.wav", 800)
    _write(root / "real_rirs_isotropic_noises" / "RVB2014_type1_rir_largeroom1_near_angla.wav", 900, channels=4)
    _write(root / "real_rirs_isotropic_noises" / "RVB2014_type1_noise_largeroom1_1.wav", 900)
    _write(root / "pointsource_noises" / "noise-free-sound-0001.wav", 900)
    _write(root / "pointsource_noises" / "music-0001.wav", 900)  # not named *noise*, but under that folder
    bank = RirBank(root)
    assert [p.name for p in bank.files] == ["RVB2014_type1_rir_largeroom1_near_angla.wav", "Room001-00001.wav"]
    rir = bank.sample(np.random.default_rng(0))
    assert rir.ndim == 1 and rir.dtype == np.float32
    only_noise = tmp_path / "noises"
    _write(only_noise / "RVB2014_type1_noise_x.wav", 100)
    with pytest.raises(DataError, match="no impulse-response"):
        RirBank(only_noise)


def test_no_subprocess_or_ffmpeg_lookup_at_import():
    code = "import sys, lcnn.audio; print('imageio_ffmpeg' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"


def test_a_bare_codec_augmentation_runs_with_every_ffmpeg_here():
    """The default draw needs no encoder that one of the usual builds lacks (pip's imageio-ffmpeg, Debian's)."""
    if not _ffmpegs():
        pytest.skip("no ffmpeg")
    for ffmpeg in _ffmpegs():
        os.environ[FFMPEG_ENV] = ffmpeg
        assert set(check_codecs(DEFAULT_CODECS).values()) == {ffmpeg}
