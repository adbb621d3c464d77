"""Uploaded bytes to model input: audio (sniffed from its first bytes, decoded in memory by libsndfile) and
images (Pillow, its size checked from the header before any pixel is decoded).

Audio: FLAC, WAV, OGG and MP3 (libsndfile 1.1 and later read MPEG layer I-III through libmpg123; the
soundfile wheels ship such a build) are recognised by their magic bytes, never by the file name; anything
else is refused with 415 before libsndfile sees it. The duration is read from the header and refused
(413) before decoding, and at most that many samples are ever decoded, so a header that lies cannot make
the server decode more. Everything happens on an ``io.BytesIO``: no temporary file is written.
"""

from __future__ import annotations

import io
import math

import numpy as np
import soundfile as sf
import torch
from PIL import Image, UnidentifiedImageError

from lcnn.audio.io import MIN_SAMPLE_RATE, resample_wave
from lcnn.serve.errors import too_large, undecodable, unsupported

__all__ = ["AUDIO_TYPES", "IMAGE_FORMATS", "decode_audio", "decode_image", "sniff_audio"]

AUDIO_TYPES = ("FLAC", "WAV", "OGG", "MP3")
#: Pillow's decoders tried on an upload (no EPS, PDF or other formats that run external tools).
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "PPM", "TIFF", "WEBP", "GIF")


def _mpeg_frame(head: bytes) -> bool:
    """An MPEG audio frame header: 11 sync bits, then a version, layer, bitrate and rate that are not reserved."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer, bitrate, rate = (head[1] >> 3) & 3, (head[1] >> 1) & 3, head[2] >> 4, (head[2] >> 2) & 3
    return version != 1 and layer != 0 and bitrate != 15 and rate != 3


def sniff_audio(data: bytes) -> str | None:
    """The container of ``data`` from its magic bytes: ``WAV``, ``FLAC``, ``OGG``, ``MP3`` or ``None``."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "WAV"
    if data[:4] == b"fLaC":
        return "FLAC"
    if data[:4] == b"OggS":
        return "OGG"
    if data[:3] == b"ID3" or _mpeg_frame(data[:4]):
        return "MP3"
    return None


def decode_audio(data: bytes, sample_rate: int, max_seconds: float) -> tuple[torch.Tensor, float]:
    """``(mono float32 waveform at sample_rate, duration in seconds of the file)``.

    Raises :class:`~lcnn.serve.errors.ClientError`: 415 for bytes that are none of :data:`AUDIO_TYPES`,
    413 for more than ``max_seconds`` of audio, 400 for a file that does not decode (cut, corrupt, empty,
    non-finite samples).
    """
    kind = sniff_audio(data)
    if kind is None:
        raise unsupported("expected FLAC, WAV, OGG or MP3 audio (recognised from the bytes, not the file name)")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate, declared = int(f.samplerate), int(f.frames)
            if rate < MIN_SAMPLE_RATE:
                raise undecodable(f"a sample rate of {rate} Hz; expected speech at {MIN_SAMPLE_RATE} Hz or more")
            limit = math.floor(max_seconds * rate)
            if declared > limit:
                raise too_large(f"{declared / rate:.1f} s of audio; the limit is {max_seconds:g} s")
            samples = f.read(frames=limit + 1, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, ValueError, OverflowError) as err:
        reason = str(err).rsplit(": ", 1)[-1].strip()  # libsndfile's reason, without the name of the BytesIO
        raise undecodable(f"cannot decode this {kind} file ({reason})") from None
    if len(samples) > limit:
        raise too_large(f"more than {max_seconds:g} s of audio (the header understates it)")
    if kind != "MP3" and len(samples) < declared:  # libmpg123's frame count is an estimate; the others are exact
        raise undecodable(f"truncated {kind}: the header declares {declared / rate:.2f} s, "
                          f"{len(samples) / rate:.2f} s decode")  # fmt: skip
    if len(samples) == 0:
        raise undecodable(f"this {kind} file holds no samples")
    if not np.isfinite(samples).all():
        raise undecodable(f"this {kind} file holds NaN or infinite samples")
    wave = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    wave = resample_wave(wave, rate, sample_rate)  # as load_audio resamples a file
    return torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), len(samples) / rate


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """A decoded Pillow image; its width x height, read from the header, must be at most ``max_pixels``.

    Raises :class:`~lcnn.serve.errors.ClientError`: 415 for a format other than :data:`IMAGE_FORMATS`,
    413 for too many pixels (before decoding), 400 for a corrupt or cut image.
    """
    try:
        image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except Image.DecompressionBombError:  # Pillow's own bound, far above ours, checked in open()
        raise too_large(f"the image claims more than {max_pixels} pixels") from None
    except UnidentifiedImageError:
        raise unsupported("expected a PNG, JPEG, BMP, PPM/PGM, TIFF, WebP or GIF image") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise undecodable(f"cannot read this image ({err})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise too_large(f"the image is {width}x{height} pixels; the limit is {max_pixels} pixels")
    try:
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise undecodable(f"cannot decode this {image.format} image ({err})") from None
    return image
