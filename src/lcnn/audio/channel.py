"""Codec and channel augmentation of single waveforms: ffmpeg codecs, speed, additive noise, reverberation.

These run on one utterance at a time, in DataLoader workers (or in a ``degrade`` command), on 1-D numpy
arrays or torch tensors; each function returns the type it was given, as float32. Randomness comes only
from an explicit ``numpy.random.Generator`` argument, so a given seed always gives the same result.

Codecs go through ffmpeg: the wave is written to ffmpeg's stdin as raw float32, encoded to the codec's
stream format on stdout, and that stream is decoded by a second ffmpeg back to float32 at the input rate.
Everything passes through pipes, so no temporary file is created on any path; each process has a timeout and
is killed (with its process group) when it runs over.

Length alignment: encoders add a delay (priming samples, e.g. 1105 for MP3 and 1024 for AAC at 16 kHz when no
gapless header survives the pipe) and pad the last frame. The input is followed by a quarter second of
silence, so that codecs that drop or pad the end only touch that silence; the codec's delay is measured once
per process and per (codec, bitrate, rate) by encoding a fixed band-limited noise probe and taking the lag
of maximum cross-correlation; the decoded wave is then shifted by that lag and cut (or zero-filled) to the
input's length. A delay measured on a fixed probe, rather than on each wave, cannot be misled by a signal
whose correlation peak is ambiguous (a tone, silence) and gives the same alignment for every input.

Which ffmpeg: ``$LCNN_FFMPEG`` if set, else ``ffmpeg`` on ``PATH``, else the static binary of the
``imageio-ffmpeg`` package (``pip install imageio-ffmpeg``, or ``lcnn[augment]``). Nothing is looked up at
import time. A codec whose encoder the binary lacks raises a :class:`~lcnn.errors.UserError` naming the
encoder, the binary and what to install; it is never skipped silently.
"""

from __future__ import annotations

import functools
import math
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import numpy as np
import soundfile as sf
import torch
from scipy.signal import convolve, resample_poly

from lcnn.audio.io import AudioError
from lcnn.errors import DataError, UserError

__all__ = [
    "CODECS",
    "DEFAULT_CODECS",
    "FFMPEG_ENV",
    "Codec",
    "CodecError",
    "CodecStep",
    "NoiseBank",
    "RirBank",
    "add_noise",
    "check_codecs",
    "codec_delay",
    "codec_roundtrip",
    "ffmpeg_encoders",
    "find_ffmpeg",
    "parse_step",
    "random_codec",
    "reverberate",
    "speed_perturb",
]

FFMPEG_ENV = "LCNN_FFMPEG"
DEFAULT_TIMEOUT = 60.0
AUDIO_SUFFIXES = (".wav", ".flac")

Wave = TypeVar("Wave", np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class Codec:
    """How one codec is run through ffmpeg.

    Attributes:
        name: the name used in augmentation specs and chains.
        encoder: ffmpeg's encoder (``ffmpeg -encoders``).
        muxer: the stream format written to the pipe (one that needs no seeking).
        rate: the rate the codec runs at; the wave is resampled to it by ffmpeg and back after decoding.
        bitrates: bit/s, the values random augmentation picks from, uniformly.
        allowed: bit/s accepted in a fixed chain: ``(low, high)`` as a range if ``allowed_range``, else the
            exact values.
        decode_as: ffmpeg input options naming the stream's format, for headerless streams that ffmpeg cannot
            probe (raw G.711, GSM, G.722).
        install: what to install when the encoder is missing.
    """

    name: str
    encoder: str
    muxer: str
    rate: int
    bitrates: tuple[int, ...]
    allowed: tuple[int, ...]
    allowed_range: bool = False
    decode_as: tuple[str, ...] = ()
    install: str = "an ffmpeg build that has it (e.g. apt-get install ffmpeg)"

    @property
    def fixed_bitrate(self) -> bool:
        """One bitrate only (G.711, GSM, G.722): no ``-b:a`` is passed and a chain needs none."""
        return len(self.bitrates) == 1 and not self.allowed_range

    def check_bitrate(self, bitrate: int) -> None:
        if self.allowed_range:
            low, high = self.allowed
            if not low <= bitrate <= high:
                raise UserError(f"codec {self.name}: bitrate {_kbps(bitrate)} is outside {_kbps(low)}..{_kbps(high)}")
        elif bitrate not in self.allowed:
            raise UserError(
                f"codec {self.name}: bitrate {_kbps(bitrate)} is not one of {', '.join(map(_kbps, self.allowed))}"
            )


def _kbps(bitrate: int) -> str:
    return f"{bitrate / 1000:g}k"


# MPEG-2 layer III (16 kHz is an "LSF" rate) knows only these bitrates; LAME clamps anything above 160k.
_MP3_LSF = (8000, 16000, 24000, 32000, 40000, 48000, 56000, 64000, 80000, 96000, 112000, 128000, 144000, 160000)
# Headerless 8 kHz mono PCM, for the decoder.
_RAW_8K = ("-ar", "8000", "-ac", "1")
_AMR_NB = (4750, 5150, 5900, 6700, 7400, 7950, 10200, 12200)

CODECS: dict[str, Codec] = {
    c.name: c
    for c in (
        Codec("mp3", "libmp3lame", "mp3", 16000, (16000, 24000, 32000, 48000, 64000, 96000, 128000), _MP3_LSF),
        # ffmpeg's native AAC encoder; above ~96k at 16 kHz mono it clamps the frame size.
        Codec("aac", "aac", "adts", 16000, (16000, 24000, 32000, 48000, 64000), (8000, 96000), allowed_range=True),
        Codec(
            "opus",
            "libopus",
            "ogg",
            16000,
            (6000, 8000, 12000, 16000, 24000, 32000, 48000),
            (6000, 256000),
            allowed_range=True,
        ),
        # libvorbis refuses to set up below 16k or above 96k for 16 kHz mono.
        Codec(
            "vorbis",
            "libvorbis",
            "ogg",
            16000,
            (16000, 24000, 32000, 48000, 64000),
            (16000, 96000),
            allowed_range=True,
        ),
        Codec("mulaw", "pcm_mulaw", "mulaw", 8000, (64000,), (64000,), decode_as=("-f", "mulaw", *_RAW_8K)),
        Codec("alaw", "pcm_alaw", "alaw", 8000, (64000,), (64000,), decode_as=("-f", "alaw", *_RAW_8K)),
        Codec(
            "gsm",
            "libgsm",
            "gsm",
            8000,
            (13000,),
            (13000,),
            decode_as=("-f", "gsm"),
            install="an ffmpeg built with libgsm (Debian/Ubuntu: apt-get install ffmpeg; the imageio-ffmpeg "
            "binary has none)",
        ),
        Codec("g722", "g722", "g722", 16000, (64000,), (64000,), decode_as=("-f", "g722")),
        Codec(
            "amr",
            "libopencore_amrnb",
            "amr",
            8000,
            _AMR_NB,
            _AMR_NB,
            install="an ffmpeg built with libopencore-amrnb (the imageio-ffmpeg binary has it)",
        ),
    )
}

# What a bare "codec" augmentation draws from: the telephone and streaming codecs speech is usually heard
# through. G.722 and AMR-NB are there to be named explicitly.
DEFAULT_CODECS = ("mp3", "aac", "opus", "vorbis", "mulaw", "alaw", "gsm")


@dataclass(frozen=True)
class CodecStep:
    """One fixed codec pass: a codec name from :data:`CODECS` and its bitrate (``None`` for fixed-rate ones)."""

    codec: str
    bitrate: int | None = None

    def __str__(self) -> str:
        return self.codec if self.bitrate is None else f"{self.codec}:{_kbps(self.bitrate)}"


class CodecError(RuntimeError):
    """ffmpeg failed or timed out on a wave; the message names the codec, the binary and ffmpeg's complaint."""


# ---------------------------------------------------------------------------------------------------------
# Finding ffmpeg and its encoders


def find_ffmpeg() -> str:
    """The ffmpeg binary to use: ``$LCNN_FFMPEG``, else ``ffmpeg`` on ``PATH``, else imageio-ffmpeg's.

    Raises:
        UserError: ``$LCNN_FFMPEG`` points at nothing executable, or no ffmpeg is found at all.
    """
    return _find_ffmpeg(os.environ.get(FFMPEG_ENV, ""), os.environ.get("PATH", ""))


@functools.lru_cache(maxsize=8)
def _find_ffmpeg(override: str, path_var: str) -> str:
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise UserError(
                f"{FFMPEG_ENV}={override}: no executable ffmpeg there; point it at an ffmpeg binary or unset it "
                "to use ffmpeg on PATH or imageio-ffmpeg's"
            )
        return override
    on_path = shutil.which("ffmpeg", path=path_var or None)
    if on_path:
        return on_path
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):
        pass
    raise UserError(
        "codec augmentation needs ffmpeg and none was found: pip install imageio-ffmpeg (or lcnn[augment]), "
        f"install ffmpeg (apt-get install ffmpeg), or set {FFMPEG_ENV} to a binary"
    )


@functools.lru_cache(maxsize=8)
def ffmpeg_encoders(ffmpeg: str) -> frozenset[str]:
    """The encoder names ``ffmpeg -encoders`` lists for this binary (cached per binary)."""
    try:
        proc = subprocess.run(
            [ffmpeg, "-hide_banner", "-nostdin", "-encoders"], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UserError(f"{ffmpeg}: cannot run it as ffmpeg ({err})") from None
    names = re.findall(r"^\s*[VAS][A-Z.]{5}\s+(\w+)", proc.stdout.decode(errors="replace"), flags=re.M)
    if proc.returncode != 0 or not names:
        raise UserError(f"{ffmpeg}: does not list encoders like ffmpeg (exit {proc.returncode})")
    return frozenset(names)


def check_codecs(names: Iterable[str]) -> str:
    """Check that every codec is known and that the ffmpeg in use has its encoder; return that ffmpeg.

    Raises:
        UserError: one line naming the first unknown codec, or the first missing encoder, which ffmpeg, and
            what to install.
    """
    names = list(names)
    for name in names:
        if name not in CODECS:
            raise UserError(f"unknown codec {name!r}; expected one of {', '.join(CODECS)}")
    ffmpeg = find_ffmpeg()
    encoders = ffmpeg_encoders(ffmpeg)
    for name in names:
        codec = CODECS[name]
        if codec.encoder not in encoders:
            raise UserError(
                f"codec {name} needs the ffmpeg encoder {codec.encoder}, which {ffmpeg} does not have: install "
                f"{codec.install}, or set {FFMPEG_ENV} to an ffmpeg that has it"
            )
    return ffmpeg


# ---------------------------------------------------------------------------------------------------------
# Waves in and out


def _as_array(wave: np.ndarray | torch.Tensor) -> np.ndarray:
    """1-D float32 numpy copy-or-view of a numpy array or (CPU or not) torch tensor, checked."""
    if isinstance(wave, torch.Tensor):
        wave = wave.detach().to("cpu", torch.float32).numpy()
    arr = np.asarray(wave)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D waveform (samples,), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("expected at least one sample, got an empty waveform")
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"expected a floating-point waveform, got {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError("the waveform holds NaN or infinite samples")
    return arr


def _like(out: np.ndarray, like: Wave) -> Wave:
    out = np.ascontiguousarray(out, dtype=np.float32)
    if not out.flags.writeable:  # a view of ffmpeg's output buffer
        out = out.copy()
    if isinstance(like, torch.Tensor):
        return torch.from_numpy(out).to(like.device)
    return out


# ---------------------------------------------------------------------------------------------------------
# Codecs


def _run(cmd: list[str], data: bytes, timeout: float, what: str) -> bytes:
    """Run one ffmpeg with ``data`` on stdin; its stdout, or a CodecError naming ``what``.

    A new session lets a timeout kill ffmpeg together with anything it started.
    """
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
    except OSError as err:
        raise CodecError(f"{what}: cannot start {cmd[0]}: {err}") from None
    try:
        out, err = proc.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise CodecError(f"{what}: {cmd[0]} did not finish within {timeout:g} s and was killed") from None
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    if proc.returncode != 0:
        lines = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()]
        tail = lines[-1].strip() if lines else "no message"
        raise CodecError(f"{what}: {cmd[0]} exited with status {proc.returncode}: {tail}")
    return out


def _encode_decode(x: np.ndarray, step: CodecStep, sample_rate: int, ffmpeg: str, timeout: float) -> np.ndarray:
    """The raw round trip: float32 at ``sample_rate`` -> codec stream -> float32 at ``sample_rate``."""
    codec = CODECS[step.codec]
    quiet = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error"]
    pcm_in = ["-f", "f32le", "-ar", str(sample_rate), "-ac", "1"]
    encode = [*quiet, *pcm_in, "-i", "pipe:0", "-map_metadata", "-1", "-c:a", codec.encoder]
    if step.bitrate is not None and not codec.fixed_bitrate:
        encode += ["-b:a", str(step.bitrate)]
    encode += ["-ar", str(codec.rate), "-ac", "1", "-f", codec.muxer, "pipe:1"]
    what = f"codec {step}"
    stream = _run(encode, x.astype("<f4").tobytes(), timeout, what)
    decode = [*quiet, *codec.decode_as, "-i", "pipe:0", "-f", "f32le", "-ar", str(sample_rate), "-ac", "1", "pipe:1"]
    return np.frombuffer(_run(decode, stream, timeout, what), dtype="<f4")


def _pad_samples(sample_rate: int) -> int:
    """Silence appended before encoding, and the largest delay looked for: a quarter second."""
    return sample_rate // 4


def _best_lag(reference: np.ndarray, decoded: np.ndarray, max_lag: int) -> int:
    """The lag in [-max_lag, max_lag] maximising sum_t reference[t] * decoded[t + lag] (by FFT)."""
    n = _next_pow2(len(reference) + len(decoded))
    corr = np.fft.irfft(np.fft.rfft(decoded, n) * np.conj(np.fft.rfft(reference, n)), n)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    values = np.concatenate([corr[: max_lag + 1], corr[n - max_lag :]])
    return int(lags[int(np.argmax(values))])


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


_DELAYS: dict[tuple[str, str, int | None, int], int] = {}


def codec_delay(step: CodecStep | str, sample_rate: int = 16000, timeout: float = DEFAULT_TIMEOUT) -> int:
    """The delay in samples that ``step`` adds at ``sample_rate``, measured once per process on a fixed probe.

    The probe is one second of seeded white noise band-limited to 200-3400 Hz (so that 8 kHz codecs keep it);
    the delay is the lag of maximum cross-correlation between it and its round trip.
    """
    step = _as_step(step)
    ffmpeg = check_codecs([step.codec])
    key = (ffmpeg, step.codec, step.bitrate, sample_rate)
    if key not in _DELAYS:
        rng = np.random.default_rng(20220523)
        spectrum = np.fft.rfft(rng.standard_normal(sample_rate))
        freqs = np.fft.rfftfreq(sample_rate, 1 / sample_rate)
        spectrum[(freqs < 200) | (freqs > 3400)] = 0
        probe = np.fft.irfft(spectrum, sample_rate)
        probe = (0.1 * probe / np.sqrt(np.mean(probe**2))).astype(np.float32)
        pad = _pad_samples(sample_rate)
        decoded = _encode_decode(np.concatenate([probe, np.zeros(pad, np.float32)]), step, sample_rate, ffmpeg, timeout)
        _DELAYS[key] = _best_lag(probe.astype(np.float64), decoded.astype(np.float64), pad)
    return _DELAYS[key]


def parse_step(text: str) -> CodecStep:
    """``"codec[:bitrate]"`` -> a checked :class:`CodecStep`; bitrates as ``32k``, ``4.75k`` or ``32000``.

    Codecs with one bitrate (G.711, GSM, G.722) need none; the others must be given one, so that a fixed
    chain says exactly what it does. Only the text is checked here, not ffmpeg (:func:`check_codecs`).

    Raises:
        UserError: unknown codec, missing, malformed or unsupported bitrate.
    """
    name, _, rate = text.strip().partition(":")
    name = name.strip().lower()
    if name not in CODECS:
        raise UserError(f"unknown codec {name!r} in {text!r}; expected one of {', '.join(CODECS)}")
    codec = CODECS[name]
    if not rate.strip():
        if codec.fixed_bitrate:
            return CodecStep(name)
        raise UserError(
            f"codec {name} needs a bitrate in a chain, e.g. {name}:{_kbps(codec.bitrates[len(codec.bitrates) // 2])}"
        )
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(k?)", rate.strip().lower())
    if not match:
        raise UserError(f"codec {name}: bitrate {rate!r} is not a number of bit/s such as 32k or 32000")
    bitrate = round(float(match.group(1)) * (1000 if match.group(2) else 1))
    codec.check_bitrate(bitrate)
    return CodecStep(name, None if codec.fixed_bitrate else bitrate)


def _as_step(step: CodecStep | str) -> CodecStep:
    if isinstance(step, CodecStep):
        if step.codec not in CODECS:
            raise UserError(f"unknown codec {step.codec!r}; expected one of {', '.join(CODECS)}")
        return step
    return parse_step(step)


def codec_roundtrip(
    wave: Wave, step: CodecStep | str, sample_rate: int = 16000, timeout: float = DEFAULT_TIMEOUT
) -> Wave:
    """Encode ``wave`` with one codec and decode it back: same length, rate and type, float32.

    Args:
        wave: 1-D numpy array or torch tensor at ``sample_rate``.
        step: a :class:`CodecStep` or its string form (``"mp3:32k"``, ``"mulaw"``).
        sample_rate: the wave's rate in Hz; codecs at another rate (8 kHz G.711/GSM/AMR) are resampled to
            it and back by ffmpeg.
        timeout: seconds each of the two ffmpeg processes may take.

    Raises:
        UserError: unknown codec, bad bitrate, no ffmpeg, or an ffmpeg without the encoder.
        CodecError: ffmpeg failed or timed out.
    """
    step = _as_step(step)
    codec = CODECS[step.codec]
    if step.bitrate is None and not codec.fixed_bitrate:
        raise UserError(f"codec {step.codec} needs a bitrate, e.g. {step.codec}:{_kbps(codec.bitrates[0])}")
    if step.bitrate is not None:
        codec.check_bitrate(step.bitrate)
    x = _as_array(wave)
    ffmpeg = check_codecs([step.codec])
    delay = codec_delay(step, sample_rate, timeout)
    padded = np.concatenate([x, np.zeros(_pad_samples(sample_rate), np.float32)])
    decoded = _encode_decode(padded, step, sample_rate, ffmpeg, timeout)
    if delay < 0:
        decoded = np.concatenate([np.zeros(-delay, np.float32), decoded])
        delay = 0
    out = decoded[delay : delay + len(x)]
    if len(out) < len(x):
        out = np.concatenate([out, np.zeros(len(x) - len(out), np.float32)])
    return _like(out, wave)


def random_codec(codecs: Iterable[str], rng: np.random.Generator) -> CodecStep:
    """A codec drawn uniformly from ``codecs``, then a bitrate uniformly from its :attr:`Codec.bitrates`."""
    names = list(codecs)
    codec = CODECS[names[int(rng.integers(len(names)))]]
    bitrate = int(codec.bitrates[int(rng.integers(len(codec.bitrates)))])
    return CodecStep(codec.name, None if codec.fixed_bitrate else bitrate)


# ---------------------------------------------------------------------------------------------------------
# Speed, noise, reverberation


def speed_perturb(wave: Wave, factor: float) -> Wave:
    """Play ``wave`` ``factor`` times faster (tempo and pitch together, as Kaldi's speed perturbation).

    Resamples by ``1 / factor`` with ``scipy.signal.resample_poly`` (``factor`` as a fraction with a
    denominator of at most 1000, e.g. 0.9 = 9/10) and keeps the rate label, so the result has
    ``ceil(len(wave) / factor)`` samples. ``factor == 1`` returns a float32 copy.
    """
    if not factor > 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    x = _as_array(wave)
    frac = Fraction(factor).limit_denominator(1000)
    if frac == 1:
        return _like(x.copy(), wave)
    out = resample_poly(x.astype(np.float64), frac.denominator, frac.numerator)
    return _like(out, wave)


def add_noise(wave: Wave, noise: np.ndarray | torch.Tensor, snr_db: float) -> Wave:
    """``wave + g * noise`` with ``g`` such that the energy ratio of wave to added noise is ``snr_db`` dB.

    ``noise`` must have the wave's length. A silent wave or a silent noise leaves the wave unchanged (there
    is no level to set the noise against, or nothing to add).
    """
    x = _as_array(wave)
    n = _as_array(noise).astype(np.float64)
    if len(n) != len(x):
        raise ValueError(f"noise has {len(n)} samples for a wave of {len(x)}")
    px, pn = float(np.dot(x.astype(np.float64), x)), float(np.dot(n, n))
    if px == 0 or pn == 0:
        return _like(x.copy(), wave)
    gain = math.sqrt(px / pn) / 10 ** (snr_db / 20)
    return _like(x + gain * n, wave)


def reverberate(wave: Wave, rir: np.ndarray | torch.Tensor) -> Wave:
    """Convolve ``wave`` with a room impulse response, the direct path kept at the wave's level and time.

    The RIR is divided by its largest-magnitude tap (taken as the direct path), so that tap is +1, and the
    output is the full convolution read from that tap's index on, cut to the wave's length: the direct sound
    stays where and as loud as it was, the reverberation is added on top and its tail past the end is
    dropped. A unit impulse (at any position) is therefore the identity.
    """
    x = _as_array(wave)
    h = _as_array(rir).astype(np.float64)
    direct = int(np.argmax(np.abs(h)))
    if h[direct] == 0:
        raise ValueError("the impulse response is all zeros")
    h = h / h[direct]
    full = convolve(x.astype(np.float64), h, mode="full", method="auto")
    return _like(full[direct : direct + len(x)], wave)


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


def _check_folder(folder: str | os.PathLike, kind: str, layout: str) -> Path:
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise DataError(f"{kind} folder {path}: not found (expected a folder of .wav/.flac files, {layout})")
    return path


def _read(path: Path, sample_rate: int, start: int = 0, frames: int = -1) -> np.ndarray:
    """Channel 0 of ``path`` (``frames`` from ``start``, in the file's own rate) resampled to ``sample_rate``."""
    try:
        with sf.SoundFile(path) as f:
            rate = int(f.samplerate)
            f.seek(start)
            data = f.read(frames, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as err:
        raise AudioError(f"{path}: cannot decode audio (expected a readable WAV/FLAC file): {err}") from err
    x = data[:, 0]
    if rate != sample_rate:
        g = math.gcd(rate, sample_rate)
        x = resample_poly(x.astype(np.float64), sample_rate // g, rate // g).astype(np.float32)
    if x.size == 0 or not np.isfinite(x).all():
        raise AudioError(f"{path}: empty or non-finite audio")
    return x


class NoiseBank:
    """The noise files under a folder (searched recursively), and random segments of them.

    Meant for MUSAN's ``musan/noise`` (``free-sound/*.wav``, ``sound-bible/*.wav``) but takes any folder of
    .wav/.flac files; files at another rate are resampled, multi-channel ones read on channel 0. The file
    list is sorted, so a seed picks the same file on every machine with the same folder.

    Raises:
        DataError: the folder does not exist or holds no .wav/.flac file.
    """

    LAYOUT = "e.g. MUSAN's musan/noise/{free-sound,sound-bible}/*.wav, searched recursively"

    def __init__(self, folder: str | os.PathLike, sample_rate: int = 16000) -> None:
        self.folder = _check_folder(folder, "noise", self.LAYOUT)
        self.files = _audio_files(self.folder)
        if not self.files:
            raise DataError(f"noise folder {self.folder}: no .wav/.flac files in it ({self.LAYOUT})")
        self.sample_rate = sample_rate
        self._frames: dict[Path, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self.files)

    def _info(self, path: Path) -> tuple[int, int]:
        if path not in self._frames:
            try:
                info = sf.info(str(path))
            except (sf.SoundFileError, RuntimeError) as err:
                raise AudioError(f"{path}: cannot read the audio header: {err}") from err
            self._frames[path] = (int(info.frames), int(info.samplerate))
        return self._frames[path]

    def segment(self, length: int, rng: np.random.Generator) -> np.ndarray:
        """``length`` samples of a random file from a random offset; short files are looped from a random
        offset instead."""
        path = self.files[int(rng.integers(len(self.files)))]
        frames, rate = self._info(path)
        need = math.ceil(length * rate / self.sample_rate) + 1
        if frames > need:
            start = int(rng.integers(frames - need + 1))
            x = _read(path, self.sample_rate, start, need)
        else:
            x = _read(path, self.sample_rate)
            x = np.roll(np.tile(x, math.ceil(length / len(x)) + 1), -int(rng.integers(len(x))))
        if len(x) < length:  # resampling can come out a sample short
            x = np.concatenate([x, np.zeros(length - len(x), np.float32)])
        return x[:length]


class RirBank:
    """The room impulse responses under a folder (searched recursively), one drawn at random.

    Meant for RIRS_NOISES (``simulated_rirs/{small,medium,large}room/Room*/*.wav`` and
    ``real_rirs_isotropic_noises/*.wav``). That corpus keeps noises next to its RIRs, so files whose name
    contains "noise" and anything under a ``pointsource_noises`` folder are left out. Multi-channel RIRs are
    read on channel 0 (the mean of a microphone array's channels would smear the direct path).

    Raises:
        DataError: the folder does not exist or holds no RIR file.
    """

    LAYOUT = (
        "e.g. RIRS_NOISES' simulated_rirs/*room/Room*/*.wav or real_rirs_isotropic_noises/*rir*.wav, "
        "searched recursively, files named *noise* left out"
    )

    def __init__(self, folder: str | os.PathLike, sample_rate: int = 16000) -> None:
        self.folder = _check_folder(folder, "RIR", self.LAYOUT)
        self.files = [
            p
            for p in _audio_files(self.folder)
            if "noise" not in p.name.lower() and "pointsource_noises" not in p.relative_to(self.folder).parts
        ]
        if not self.files:
            raise DataError(f"RIR folder {self.folder}: no impulse-response .wav/.flac files in it ({self.LAYOUT})")
        self.sample_rate = sample_rate

    def __len__(self) -> int:
        return len(self.files)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """A random RIR as float32 at ``sample_rate``."""
        return _read(self.files[int(rng.integers(len(self.files)))], self.sample_rate)
