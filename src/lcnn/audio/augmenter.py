"""Running an augmentation spec (:mod:`lcnn.audio.augment`): the per-utterance part, the codec each utterance
draws, the batched RawBoost, and the per-utterance seeds that make them reproducible (all run in DataLoader
workers, :mod:`lcnn.data.augmented`)."""

from __future__ import annotations

import numpy as np

from lcnn.audio.augment import AugmentSpec
from lcnn.audio.channel import NoiseBank, RirBank, Wave, add_noise, as_wave, like_input, reverberate, speed_perturb
from lcnn.audio.codecs import DEFAULT_TIMEOUT, CodecStep, check_codecs, codec_roundtrip, random_codec
from lcnn.audio.rawboost import RawBoost

__all__ = ["UtteranceAugment", "augment_seed", "build_augmenters"]

_M64 = (1 << 64) - 1
# Fixed per-augmentation stream numbers: adding or dropping one augmentation does not change the others'
# random draws for the same seed.
_STREAMS = {"speed": 1, "reverb": 2, "noise": 3, "codec": 4}


def augment_seed(*keys: int) -> int:
    """One int64 seed from integer keys, e.g. ``augment_seed(run_seed, epoch, trial_index)``.

    A hash (numpy's SeedSequence) rather than a sum, so that nearby keys give unrelated seeds.
    """
    state = np.random.SeedSequence([k & _M64 for k in keys]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1  # 63 bits: a non-negative int64


class UtteranceAugment:
    """The per-utterance (DataLoader worker) part of a spec: speed, reverb, noise, codec, in that order.

    ``augment(wave, seed)`` returns a new 1-D float32 wave of the input's type (numpy or torch). The length
    changes only with speed perturbation (``ceil(n / factor)``). Each augmentation draws from its own numpy
    Generator seeded by ``(seed, augmentation)``, so the result depends only on the wave and the seed.
    Constructing it checks the environment (folders, ffmpeg) so that a bad spec fails before training.
    The object is picklable, for workers started by spawn.

    Args:
        spec: the augmentation spec; its ``rawboost`` part is ignored here (see :func:`build_augmenters`).
        sample_rate: the waves' rate in Hz.
        timeout: seconds each ffmpeg process may take.
    """

    def __init__(self, spec: AugmentSpec, sample_rate: int = 16000, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.spec, self.sample_rate, self.timeout = spec, int(sample_rate), float(timeout)
        self.noise = None if spec.noise is None else NoiseBank(spec.noise.folder, sample_rate)
        self.rirs = None if spec.reverb is None else RirBank(spec.reverb.folder, sample_rate)
        if spec.codec is not None:
            check_codecs(spec.codec.codecs)

    def _rng(self, seed: int, name: str) -> np.random.Generator:
        return np.random.default_rng([int(seed) & _M64, _STREAMS[name]])

    def codec_step(self, seed: int) -> CodecStep | None:
        """The codec the spec gives the utterance with ``seed`` (``None``: none, by its probability)."""
        if self.spec.codec is None:
            return None
        rng = self._rng(seed, "codec")
        return random_codec(self.spec.codec.codecs, rng) if rng.random() < self.spec.codec.p else None

    def __call__(self, wave: Wave, seed: int, codec: bool = True) -> Wave:
        """The augmented wave; ``codec=False`` leaves the codec out (:meth:`codec_step` names it, for a caller
        that codes a batch at once with :func:`~lcnn.audio.codecs.codec_roundtrip_many`)."""
        spec = self.spec
        x = as_wave(wave)
        if spec.speed is not None:
            rng = self._rng(seed, "speed")
            if rng.random() < spec.speed.p:
                x = speed_perturb(x, float(spec.speed.factors[int(rng.integers(len(spec.speed.factors)))]))
        if self.rirs is not None:
            rng = self._rng(seed, "reverb")
            if rng.random() < spec.reverb.p:
                x = reverberate(x, self.rirs.sample(rng))
        if self.noise is not None:
            rng = self._rng(seed, "noise")
            if rng.random() < spec.noise.p:
                snr = float(rng.uniform(*spec.noise.snr_db))
                x = add_noise(x, self.noise.segment(len(x), rng), snr)
        step = self.codec_step(seed) if codec else None
        if step is not None:
            x = codec_roundtrip(x, step, self.sample_rate, self.timeout)
        return like_input(x, wave)

    def __repr__(self) -> str:
        return f"UtteranceAugment({' '.join(self.spec.to_args()) or 'nothing'}, sample_rate={self.sample_rate})"


def build_augmenters(
    spec: AugmentSpec, sample_rate: int = 16000, timeout: float = DEFAULT_TIMEOUT
) -> tuple[UtteranceAugment | None, RawBoost | None]:
    """The two runtime parts of a spec: ``(per-utterance part for the workers, batched RawBoost)``.

    Either is ``None`` when the spec has no such part. RawBoost uses the official default parameters.
    """
    worker = UtteranceAugment(spec, sample_rate, timeout) if spec.per_utterance else None
    batch = None
    if spec.rawboost is not None:
        batch = RawBoost(spec.rawboost.algo, sample_rate=sample_rate, p=spec.rawboost.p)
    return worker, batch
