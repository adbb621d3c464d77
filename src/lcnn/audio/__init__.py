"""Speech input for the spoofing task: ``load_audio``, the batched LFCC / log-spectrogram front-ends, and
augmentation: RawBoost on batches, codecs / speed / noise / reverberation on single utterances.

Importing this package starts no process and looks up no ffmpeg; that happens when a codec is first used.
"""

from lcnn.audio.augment import (
    AugmentSpec,
    CodecSpec,
    NoiseSpec,
    RawBoostSpec,
    ReverbSpec,
    SpeedSpec,
    UtteranceAugment,
    apply_chain,
    augment_seed,
    build_augmenters,
    parse_augment,
    parse_chain,
)
from lcnn.audio.channel import (
    CODECS,
    DEFAULT_CODECS,
    CodecError,
    CodecStep,
    NoiseBank,
    RirBank,
    add_noise,
    codec_roundtrip,
    find_ffmpeg,
    reverberate,
    speed_perturb,
)
from lcnn.audio.frontends import LFCC, LogPowerSpectrogram
from lcnn.audio.io import AudioError, load_audio
from lcnn.audio.rawboost import RAWBOOST_ALGOS, RawBoost, RawBoostParams

__all__ = [
    "CODECS",
    "DEFAULT_CODECS",
    "LFCC",
    "RAWBOOST_ALGOS",
    "AudioError",
    "AugmentSpec",
    "CodecError",
    "CodecSpec",
    "CodecStep",
    "LogPowerSpectrogram",
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
    "codec_roundtrip",
    "find_ffmpeg",
    "load_audio",
    "parse_augment",
    "parse_chain",
    "reverberate",
    "speed_perturb",
]
