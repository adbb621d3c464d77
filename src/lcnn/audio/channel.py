"""Channel augmentation of single waveforms: speed perturbation, additive noise from a folder of noise files,
reverberation with impulse responses from a folder (codecs: :mod:`lcnn.audio.codecs`).

These run on one utterance at a time, in DataLoader workers (or in ``lcnn degrade``), on 1-D numpy arrays or
torch tensors; each function returns the type it was given, as float32. Randomness comes only from an explicit
``numpy.random.Generator`` argument, so a given seed always gives the same result.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import numpy as np
import soundfile as sf
import torch
from scipy.signal import convolve, resample_poly

from lcnn.audio.io import AudioError
from lcnn.errors import DataError

__all__ = ["AUDIO_SUFFIXES", "NoiseBank", "RirBank", "add_noise", "as_wave", "like_input", "reverberate",
           "speed_perturb"]

AUDIO_SUFFIXES = (".wav", ".flac")

Wave = TypeVar("Wave", np.ndarray, torch.Tensor)


def as_wave(wave: np.ndarray | torch.Tensor) -> np.ndarray:
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


def like_input(out: np.ndarray, like: Wave) -> Wave:
    out = np.ascontiguousarray(out, dtype=np.float32)
    if not out.flags.writeable:  # a view of ffmpeg's output buffer
        out = out.copy()
    if isinstance(like, torch.Tensor):
        return torch.from_numpy(out).to(like.device)
    return out


def speed_perturb(wave: Wave, factor: float) -> Wave:
    """Play ``wave`` ``factor`` times faster (tempo and pitch together, as Kaldi's speed perturbation).

    Resamples by ``1 / factor`` with ``scipy.signal.resample_poly`` (``factor`` as a fraction with a
    denominator of at most 1000, e.g. 0.9 = 9/10) and keeps the rate label, so the result has
    ``ceil(len(wave) / factor)`` samples. ``factor == 1`` returns a float32 copy.
    """
    if not factor > 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    x = as_wave(wave)
    frac = Fraction(factor).limit_denominator(1000)
    if frac == 1:
        return like_input(x.copy(), wave)
    out = resample_poly(x.astype(np.float64), frac.denominator, frac.numerator)
    return like_input(out, wave)


def add_noise(wave: Wave, noise: np.ndarray | torch.Tensor, snr_db: float) -> Wave:
    """``wave + g * noise`` with ``g`` such that the energy ratio of wave to added noise is ``snr_db`` dB.

    ``noise`` must have the wave's length. A silent wave or a silent noise leaves the wave unchanged (there
    is no level to set the noise against, or nothing to add).
    """
    x = as_wave(wave)
    n = as_wave(noise).astype(np.float64)
    if len(n) != len(x):
        raise ValueError(f"noise has {len(n)} samples for a wave of {len(x)}")
    px, pn = float(np.dot(x.astype(np.float64), x)), float(np.dot(n, n))
    if px == 0 or pn == 0:
        return like_input(x.copy(), wave)
    gain = math.sqrt(px / pn) / 10 ** (snr_db / 20)
    return like_input(x + gain * n, wave)


def reverberate(wave: Wave, rir: np.ndarray | torch.Tensor) -> Wave:
    """Convolve ``wave`` with a room impulse response, the direct path kept at the wave's level and time.

    The RIR is divided by its largest-magnitude tap (taken as the direct path), so that tap is +1, and the
    output is the full convolution read from that tap's index on, cut to the wave's length: the direct sound
    stays where and as loud as it was, the reverberation is added on top and its tail past the end is
    dropped. A unit impulse (at any position) is therefore the identity.
    """
    x = as_wave(wave)
    h = as_wave(rir).astype(np.float64)
    direct = int(np.argmax(np.abs(h)))
    if h[direct] == 0:
        raise ValueError("the impulse response is all zeros")
    h = h / h[direct]
    full = convolve(x.astype(np.float64), h, mode="full", method="auto")
    return like_input(full[direct : direct + len(x)], wave)


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
