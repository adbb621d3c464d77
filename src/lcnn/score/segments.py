"""Long recordings: sliding windows over each file, read as blocks, and their scores aggregated into one.

The rule of every spoof path (``lcnn score``, ``evaluate``, ``predict``, training's test, ``lcnn serve`` and
:func:`lcnn.score.waves.score_waveforms`): a file is scored whole, as the official code scores it, at any
length; windows only where the user asks for them (``--segment SECONDS``, ``--hop``, ``--aggregate``; the
``segment`` fields of ``POST /v1/spoof``), and then these windows and aggregates everywhere.

Windows are ``segment`` seconds long every ``hop`` seconds, counted in each file's own samples (as many as
:func:`lcnn.audio.load_audio` counts: a WAV whose header declares more than the file holds fails at the
window that reads past its end, "truncated audio", as it fails scored whole). The last window ends at the
file's end, so that every window of a file longer than ``segment`` is whole; a file
shorter than ``segment`` is one window, the whole file. Each window is read on its own (a seek and a block:
the file is never in memory, see :func:`lcnn.audio.load_audio`), resampled on its own where the file's rate
is not the model's, and goes through the front-end as a file would (trimmed of digital silence where the
front-end's configuration says so): a window is an utterance to the model.

Aggregates (``--aggregate``); scores are higher for bona fide, so the low end means spoof:

- ``mean`` (the default): the mean over the windows;
- ``min``: the most spoof-like window; a spoofed stretch spliced into bona fide speech drags it down;
- ``quantile:Q``: the Q-quantile of the windows (``quantile:0.1`` is near the min, and less noisy).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf

from lcnn.audio.io import _wav_header_frames
from lcnn.errors import UserError
from lcnn.score.trials import TrialTable

__all__ = ["Windows", "parse_aggregate", "segment_bounds", "wave_windows", "window_count", "window_samples",
           "window_start"]


def window_samples(segment: float, hop: float, rate: int) -> tuple[int, int]:
    """Windows of ``segment`` seconds every ``hop`` seconds in samples at ``rate`` (the hop at least one sample):
    the one rounding of every windowed path (a file's own rate in :class:`Windows`, the model's rate for a
    decoded waveform)."""
    return round(segment * rate), max(1, round(hop * rate))


def window_count(samples: Any, window: Any, hop: Any) -> Any:
    """How many windows a recording of ``samples`` samples has (ints or arrays alike): one when it is at most
    ``window`` samples long, else one every ``hop`` samples, the last ending at the end."""
    return 1 + -(-np.maximum(0, samples - window) // hop)


def window_start(k: int, samples: int, window: int, hop: int) -> int:
    """The first sample of window ``k`` (of :func:`window_count`): ``k * hop``, the last one ending at the end."""
    return min(k * hop, max(0, samples - window))


def segment_bounds(samples: int, window: int, hop: int) -> list[tuple[int, int]]:
    """``(start, end)`` of every window of a recording of ``samples`` samples."""
    starts = (window_start(k, samples, window, hop) for k in range(window_count(samples, window, hop)))
    return [(start, start + min(window, samples)) for start in starts]


def wave_windows(samples: int, rate: int, segment: float, hop: float | None = None) -> list[tuple[int, int]]:
    """``(start, end)`` of the windows of ``segment`` seconds every ``hop`` (default: ``segment``) of a recording
    of ``samples`` samples at ``rate``: those :class:`Windows` gives a file at that rate."""
    return segment_bounds(samples, *window_samples(segment, segment if hop is None else hop, rate))


def parse_aggregate(text: str) -> Callable[[np.ndarray], float]:
    """``mean``, ``min`` or ``quantile:Q`` -> the function of a file's window scores (module docstring)."""
    name, _, value = text.partition(":")
    if text in ("mean", "min"):
        return lambda scores: float(getattr(np, text)(scores))
    try:
        q = float(value) if name == "quantile" else -1.0
    except ValueError:
        q = -1.0
    if not 0 <= q <= 1:
        raise UserError(f"--aggregate {text!r}: expected mean, min or quantile:Q with 0 <= Q <= 1")
    return lambda scores: float(np.quantile(scores, q))


@dataclass(frozen=True)
class Windows:
    """The windows of every file of a table. Window ``w`` belongs to file ``f`` when ``first[f] <= w <
    first[f + 1]``; ``samples`` and ``rates`` are each file's length and rate as its header says (for a WAV, its
    data chunk's, as :func:`lcnn.audio.load_audio` counts, not what libsndfile derives from the file's size);
    ``failed`` the files without windows and why (no such file, unreadable header, no samples)."""

    first: np.ndarray
    samples: np.ndarray
    rates: np.ndarray
    segment: float
    hop: float
    failed: dict[int, str]

    @classmethod
    def of(cls, table: TrialTable, segment: float, hop: float) -> Windows:
        if not (0 < segment < math.inf and 0 < hop < math.inf):  # nan fails both comparisons
            raise UserError(f"--segment and --hop must be finite positive seconds, got {segment} and {hop}")
        samples, rates = np.zeros(len(table), np.int64), np.ones(len(table), np.int64)
        failed = {}
        for i in range(len(table)):
            if table.sizes[i] < 0:
                failed[i] = "no such file"
                continue
            try:
                info = sf.info(table.path(i))
                declared = _wav_header_frames(table.path(i)) or 0  # libsndfile counts a WAV's bytes, not its header
            except (sf.SoundFileError, RuntimeError, OSError) as err:
                failed[i] = f"cannot read the audio header: {' '.join(str(err).split())}"
                continue
            samples[i], rates[i] = max(info.frames, declared), info.samplerate
            if samples[i] <= 0:
                failed[i] = "empty audio, expected at least one sample"
        seg, hop_n = np.round(segment * rates).astype(np.int64), np.maximum(1, np.round(hop * rates)).astype(np.int64)
        counts = np.where(samples > 0, window_count(samples, seg, hop_n), 0)
        first = np.concatenate([[0], np.cumsum(counts)])
        return cls(first, samples, rates, float(segment), float(hop), failed)

    def __len__(self) -> int:
        return int(self.first[-1])

    def locate(self, w: int) -> tuple[int, int, int]:
        """``(file, first sample, samples)`` of window ``w``, in the file's own samples."""
        f = int(np.searchsorted(self.first, w, side="right")) - 1
        n, rate = int(self.samples[f]), int(self.rates[f])
        seg, hop = window_samples(self.segment, self.hop, rate)
        return f, window_start(w - int(self.first[f]), n, seg, hop), min(seg, n)

    def span(self, w: int) -> tuple[float, float]:
        """Start and end of window ``w`` in seconds."""
        f, start, count = self.locate(w)
        return start / self.rates[f], (start + count) / self.rates[f]

    def lengths(self) -> np.ndarray:
        """Each window's duration in seconds, to batch windows of similar length."""
        seconds = np.minimum(np.round(self.segment * self.rates), self.samples) / self.rates
        return np.repeat(seconds, np.diff(self.first))
