"""Speech input for the spoofing task: ``load_audio`` and the batched LFCC / log-spectrogram front-ends."""

from lcnn.audio.frontends import LFCC, LogPowerSpectrogram
from lcnn.audio.io import AudioError, load_audio

__all__ = ["AudioError", "LFCC", "LogPowerSpectrogram", "load_audio"]
