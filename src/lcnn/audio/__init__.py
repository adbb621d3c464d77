"""Speech input for the spoofing task: ``load_audio``, the batched LFCC / log-spectrogram front-ends, their
configurations and the file-to-features pipeline."""

from lcnn.audio.frontends import LFCC, LogPowerSpectrogram
from lcnn.audio.io import AudioError, load_audio
from lcnn.audio.pipeline import FRONTENDS, FeaturePipeline, build_frontend, frontend_config, trim_silence

__all__ = [
    "FRONTENDS",
    "LFCC",
    "AudioError",
    "FeaturePipeline",
    "LogPowerSpectrogram",
    "build_frontend",
    "frontend_config",
    "load_audio",
    "trim_silence",
]
