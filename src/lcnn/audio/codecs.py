"""Codec augmentation of waveforms through ffmpeg: MP3, AAC, Opus, Vorbis, G.711 mu-law / A-law, GSM, G.722 and
AMR-NB at chosen or random bitrates.

These run on one utterance (:func:`codec_roundtrip`) or a batch of them through one pair of ffmpeg processes
(:func:`codec_roundtrip_many`), in DataLoader workers or in ``lcnn degrade``, on 1-D numpy arrays or torch
tensors; each function returns the type it was given, as float32. Randomness comes only from an explicit
``numpy.random.Generator`` argument, so a given seed always gives the same result.

The wave is written to ffmpeg's stdin as raw float32, encoded to the codec's stream format on stdout, and that
stream is decoded by a second ffmpeg back to float32 at the input rate. Everything passes through pipes, so no
temporary file is created on any path; each process has a timeout and is killed (with its process group) when
it runs over.

Length alignment: encoders add a delay (priming samples, e.g. 1105 for MP3 and 1024 for AAC at 16 kHz when no
gapless header survives the pipe) and pad the last frame. The input is followed by a quarter second of
silence, so that codecs that drop or pad the end only touch that silence; the codec's delay is measured once
per process and per (codec, bitrate, rate) by encoding a fixed band-limited noise probe and taking the lag
of maximum cross-correlation; the decoded wave is then shifted by that lag and cut (or zero-filled) to the
input's length. A delay measured on a fixed probe, rather than on each wave, cannot be misled by a signal
whose correlation peak is ambiguous (a tone, silence) and gives the same alignment for every input.

Which ffmpeg: see :mod:`lcnn.audio.ffmpeg`. A codec whose encoder the binary lacks raises a
:class:`~lcnn.errors.UserError` naming the encoder, the binary and what to install; it is never skipped silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from lcnn.audio.channel import Wave, as_wave, like_input
from lcnn.audio.ffmpeg import FFMPEG_ENV, ffmpeg_candidates, ffmpeg_encoders, run_ffmpeg
from lcnn.errors import UserError

__all__ = [
    "CODECS",
    "DEFAULT_CODECS",
    "Codec",
    "CodecStep",
    "check_codecs",
    "codec_delay",
    "codec_roundtrip",
    "codec_roundtrip_many",
    "apply_chain",
    "parse_chain",
    "parse_step",
    "random_codec",
]

DEFAULT_TIMEOUT = 60.0


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
# through that every common ffmpeg build encodes. GSM (not in imageio-ffmpeg's binary), AMR-NB (not in
# Debian's) and G.722 are there to be named explicitly.
DEFAULT_CODECS = ("mp3", "aac", "opus", "vorbis", "mulaw", "alaw")


@dataclass(frozen=True)
class CodecStep:
    """One fixed codec pass: a codec name from :data:`CODECS` and its bitrate (``None`` for fixed-rate ones)."""

    codec: str
    bitrate: int | None = None

    def __str__(self) -> str:
        return self.codec if self.bitrate is None else f"{self.codec}:{_kbps(self.bitrate)}"


def check_codecs(names: Iterable[str]) -> dict[str, str]:
    """Check that every codec is known and that an ffmpeg here has its encoder; return the ffmpeg of each
    (the first of :func:`~lcnn.audio.ffmpeg.ffmpeg_candidates` with the encoder).

    Raises:
        UserError: one line naming the first unknown codec, or the first encoder no ffmpeg has, which ffmpeg
            was asked, and what to install.
    """
    names = list(names)
    for name in names:
        if name not in CODECS:
            raise UserError(f"unknown codec {name!r}; expected one of {', '.join(CODECS)}")
    candidates = ffmpeg_candidates()
    chosen = {}
    for name in names:
        codec = CODECS[name]
        found = next((ffmpeg for ffmpeg in candidates if codec.encoder in ffmpeg_encoders(ffmpeg)), None)
        if found is None:
            lacking = (
                f"none of {', '.join(candidates)} has" if len(candidates) > 1 else f"{candidates[0]} does not have"
            )
            raise UserError(
                f"codec {name} needs the ffmpeg encoder {codec.encoder}, which {lacking}: install {codec.install}, "
                f"or set {FFMPEG_ENV} to an ffmpeg that has it"
            )
        chosen[name] = found
    return chosen


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
    stream = run_ffmpeg(encode, x.astype("<f4").tobytes(), timeout, what)
    decode = [*quiet, *codec.decode_as, "-i", "pipe:0", "-f", "f32le", "-ar", str(sample_rate), "-ac", "1", "pipe:1"]
    return np.frombuffer(run_ffmpeg(decode, stream, timeout, what), dtype="<f4")


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
    ffmpeg = check_codecs([step.codec])[step.codec]
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
    x = as_wave(wave)
    ffmpeg = check_codecs([step.codec])[step.codec]
    delay = codec_delay(step, sample_rate, timeout)
    padded = np.concatenate([x, np.zeros(_pad_samples(sample_rate), np.float32)])
    decoded = _encode_decode(padded, step, sample_rate, ffmpeg, timeout)
    if delay < 0:
        decoded = np.concatenate([np.zeros(-delay, np.float32), decoded])
        delay = 0
    out = decoded[delay : delay + len(x)]
    if len(out) < len(x):
        out = np.concatenate([out, np.zeros(len(x) - len(out), np.float32)])
    return like_input(out, wave)


def codec_roundtrip_many(
    waves: Sequence[np.ndarray], step: CodecStep | str, sample_rate: int = 16000, timeout: float = DEFAULT_TIMEOUT
) -> list[np.ndarray]:
    """:func:`codec_roundtrip` of several waves in one pair of ffmpeg processes: they are encoded one after the
    other with a quarter second of silence between them and cut apart again.

    Starting ffmpeg costs more than coding half a second of speech, so a batch coded at once costs a few
    times less than wave by wave. A frame of the codec may straddle a wave's end and the silence after it,
    so the result is close to, not identical with, each wave's own round trip.
    """
    if not waves:
        return []
    gap = np.zeros(_pad_samples(sample_rate), np.float32)
    arrays = [as_wave(w) for w in waves]
    starts = np.cumsum([0] + [len(a) + len(gap) for a in arrays[:-1]])
    joined = codec_roundtrip(np.concatenate([part for a in arrays for part in (a, gap)]), step, sample_rate, timeout)
    return [joined[s : s + len(a)] for s, a in zip(starts, arrays)]


def random_codec(codecs: Iterable[str], rng: np.random.Generator) -> CodecStep:
    """A codec drawn uniformly from ``codecs``, then a bitrate uniformly from its :attr:`Codec.bitrates`."""
    names = list(codecs)
    codec = CODECS[names[int(rng.integers(len(names)))]]
    bitrate = int(codec.bitrates[int(rng.integers(len(codec.bitrates)))])
    return CodecStep(codec.name, None if codec.fixed_bitrate else bitrate)


def parse_chain(text: str | Sequence[str], check: bool = True) -> list[CodecStep]:
    """A fixed codec chain such as ``"mp3:32k,opus:16k,mulaw"`` -> steps applied in order.

    Variable-rate codecs need their bitrate (``32k``, ``4.75k``, ``32000``); fixed-rate ones (mulaw, alaw,
    gsm, g722) need none. With ``check``, ffmpeg and every encoder are checked too.

    Raises:
        UserError: empty chain, unknown codec, missing or unsupported bitrate, no ffmpeg, missing encoder.
    """
    pieces = text.split(",") if isinstance(text, str) else list(text)
    if not pieces or any(not p.strip() for p in pieces):
        raise UserError(f"codec chain {text!r}: expected CODEC[:BITRATE] items separated by commas, e.g. mp3:32k,mulaw")
    steps = [parse_step(p) for p in pieces]
    if check:
        check_codecs(dict.fromkeys(s.codec for s in steps))
    return steps


def apply_chain(
    wave: Wave, steps: str | Sequence[CodecStep], sample_rate: int = 16000, timeout: float = DEFAULT_TIMEOUT
) -> Wave:
    """Pass ``wave`` through every codec of ``steps`` (or a chain string) in order; deterministic.

    Length, rate and type are kept (see :func:`~lcnn.audio.codecs.codec_roundtrip`).
    """
    if isinstance(steps, str):
        steps = parse_chain(steps)
    out = wave
    for step in steps:
        out = codec_roundtrip(out, step, sample_rate, timeout)
    return out
