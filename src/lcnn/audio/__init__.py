"""Speech input for the spoofing task: ``load_audio``, the batched LFCC / log-spectrogram front-ends, their
configurations and the file-to-features pipeline, and augmentation: RawBoost on batches, codecs / speed /
noise / reverberation on single utterances.

Importing this package starts no process and looks up no ffmpeg; that happens when a codec is first used.
"""

from lcnn.audio.augment import AugmentSpec, CodecSpec, NoiseSpec, RawBoostSpec, ReverbSpec, SpeedSpec, parse_augment
from lcnn.audio.augmenter import UtteranceAugment, augment_seed, build_augmenters
from lcnn.audio.channel import NoiseBank, RirBank, add_noise, reverberate, speed_perturb
from lcnn.audio.codecs import CODECS, DEFAULT_CODECS, CodecStep, apply_chain, codec_roundtrip, parse_chain
from lcnn.audio.ffmpeg import CodecError, find_ffmpeg
from lcnn.audio.frontends import LFB, LFCC, LogPowerSpectrogram, PowerSpectrogram
from lcnn.audio.io import AudioError, load_audio
from lcnn.audio.pipeline import FRONTENDS, FeaturePipeline, build_frontend, frontend_config, trim_silence
from lcnn.audio.rawboost import RAWBOOST_ALGOS, RawBoost, RawBoostParams

__all__ = [
    "CODECS",
    "DEFAULT_CODECS",
    "FRONTENDS",
    "LFB",
    "LFCC",
    "RAWBOOST_ALGOS",
    "AudioError",
    "AugmentSpec",
    "CodecError",
    "CodecSpec",
    "CodecStep",
    "FeaturePipeline",
    "LogPowerSpectrogram",
    "PowerSpectrogram",
    "NoiseBank",
    "NoiseSpec",
    "RawBoost",
    "RawBoostParams",
    "RawBoostSpec",
    "ReverbSpec",
    "RirBank",
    "SpeedSpec",
    "UtteranceAugment",
    "add_noise",
    "apply_chain",
    "augment_seed",
    "build_augmenters",
    "build_frontend",
    "codec_roundtrip",
    "find_ffmpeg",
    "frontend_config",
    "load_audio",
    "parse_augment",
    "parse_chain",
    "reverberate",
    "speed_perturb",
    "trim_silence",
]
