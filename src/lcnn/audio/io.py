"""Reading speech files into the 1-D float32 tensors the front-ends take.

ASVspoof ships FLAC at 16 kHz; users bring WAV/FLAC at whatever rate their recorder used. Everything is
decoded by soundfile (libsndfile), mixed down to mono, checked, and resampled to one rate so that a model
never sees a file in a form it was not trained on.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from scipy.signal import resample_poly

from lcnn.errors import DataError

__all__ = ["MIN_SAMPLE_RATE", "AudioError", "load_audio", "resample_wave"]


class AudioError(DataError):
    """A file that cannot be used as speech input: unreadable, truncated, empty, non-finite samples or
    at the wrong sample rate. The message names the file and what was expected of it.

    A ``lcnn.errors.DataError`` (hence a ValueError), so the command line prints it as one line and callers
    that catch ValueError keep working; data pipelines can catch it specifically to skip bad files.
    """


def load_audio(path: str | os.PathLike, sample_rate: int = 16000, resample: bool = True, start: int = 0,
               frames: int = -1) -> torch.Tensor:  # fmt: skip
    """Read a WAV/FLAC (anything libsndfile decodes) as a mono float32 waveform at ``sample_rate``.

    Args:
        path: the audio file.
        sample_rate: the rate, in Hz, the caller's front-end and model expect.
        resample: what to do with a file stored at another rate. ``True`` resamples it with
            ``scipy.signal.resample_poly(x, up, down)``, where ``g = gcd(file_rate, sample_rate)``,
            ``up = sample_rate // g`` and ``down = file_rate // g`` (a polyphase FIR with scipy's default
            Kaiser window, computed in float64); the result has ``ceil(n * up / down)`` samples.
            ``False`` raises an :class:`AudioError` instead, so that a protocol assuming one rate fails
            loudly rather than silently changing the data.
        start, frames: read only ``frames`` samples (``-1``: to the end) from sample ``start`` on, both counted
            at the file's own rate: a block of a long recording, the rest never decoded. A resampled block
            is resampled on its own (its edges see zeros beyond it, over a few samples).

    Returns:
        A 1-D float32 tensor of shape ``(samples,)``. Integer PCM is scaled to [-1, 1); multi-channel
        files are mixed down by taking the mean of the channels. Float files are returned as stored
        (not clipped), and resampling may overshoot [-1, 1] very slightly near full-scale transients.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        AudioError: the file cannot be decoded, is truncated, holds no samples, holds NaN/Inf samples,
            or is at another rate with ``resample=False``.
    """
    path = Path(path)
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate}")
    if start < 0:
        raise ValueError(f"start must be a sample number >= 0, got {start}")
    if not path.exists():
        raise FileNotFoundError(f"audio file not found: {path}")

    try:
        with sf.SoundFile(path) as f:
            file_rate = int(f.samplerate)
            if file_rate < MIN_SAMPLE_RATE:  # before reading: the header alone decides
                raise AudioError(f"{path}: a sample rate of {file_rate} Hz; expected speech sampled at "
                                 f"{MIN_SAMPLE_RATE} Hz or more")  # fmt: skip
            total = max(int(f.frames), _wav_header_frames(path) or 0)  # libsndfile trusts a WAV's size, not its header
            declared = max(0, total - start) if frames < 0 else min(frames, max(0, total - start))
            if start:
                f.seek(start)
            data = f.read(frames, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as err:
        # libsndfile reports both undecodable headers and mid-stream corruption (a cut FLAC "loses sync")
        # as runtime errors; turn them into one error type that names the file.
        raise AudioError(f"{path}: cannot decode audio (expected a readable WAV/FLAC file): {err}") from err

    if data.shape[0] < declared:
        raise AudioError(
            f"{path}: truncated audio, the header declares {declared} frames but only {data.shape[0]} decode"
        )
    if data.size == 0:
        raise AudioError(f"{path}: empty audio, expected at least one sample")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: contains NaN or infinite samples, expected finite values in [-1, 1]")

    # Mean rather than the first channel: a stereo recording may have speech louder on either side.
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]

    if file_rate != sample_rate:
        if not resample:
            raise AudioError(
                f"{path}: sample rate is {file_rate} Hz, expected {sample_rate} Hz (pass resample=True to convert)"
            )
        wave = resample_wave(wave, file_rate, sample_rate)

    return torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))


#: The lowest sample rate taken for speech (telephone speech is 8 kHz): a 244-byte WAV that declares 1 Hz would
#: otherwise be resampled into minutes of audio.
MIN_SAMPLE_RATE = 4000


def resample_wave(wave: np.ndarray, rate: int, sample_rate: int) -> np.ndarray:
    """``(samples,)`` at ``rate`` -> float32 at ``sample_rate``: ``scipy.signal.resample_poly(x, up, down)`` with
    ``g = gcd(rate, sample_rate)``, computed in float64 (the FIR's accumulation error well below float32's
    resolution). The one resampling of a file, an upload and a waveform given to the Python API.

    Raises:
        AudioError: ``rate`` below :data:`MIN_SAMPLE_RATE`.
    """
    if rate < MIN_SAMPLE_RATE:
        raise AudioError(f"a sample rate of {rate} Hz; expected speech sampled at {MIN_SAMPLE_RATE} Hz or more")
    if rate == sample_rate:
        return np.asarray(wave, dtype=np.float32)
    g = math.gcd(rate, sample_rate)
    return resample_poly(np.asarray(wave, dtype=np.float64), sample_rate // g, rate // g).astype(np.float32)


def _wav_header_frames(path: Path) -> int | None:
    """The frames a RIFF/WAVE file's header declares (its data chunk's size over the frame size); ``None`` for
    another format or a header that cannot be walked."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, block = 12, None
    while pos + 8 <= len(head):
        kind, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if kind == b"fmt " and pos + 22 <= len(head):
            block = int.from_bytes(head[pos + 20 : pos + 22], "little")  # nBlockAlign: bytes per frame
        elif kind == b"data":
            return size // block if block else None
        pos += 8 + size + (size & 1)  # chunks are padded to an even size
    return None
