"""Speech augmentation specs: parsing, validation, and the two places augmentation runs.

A spec is a list of items, as a command line gives them (e.g. ``--augment rawboost:5 --augment codec``)::

    rawboost:ALGO          RawBoost algorithm 1..8 (lcnn.audio.rawboost), official defaults
    codec[:C1,C2,...]      a random codec per utterance, from DEFAULT_CODECS or the list given
    noise:DIR[@snr=LO,HI]  additive noise from the .wav/.flac files under DIR (MUSAN musan/noise), SNR in
                           [LO, HI] dB (default 0,15, Kaldi's MUSAN-noise range)
    reverb:DIR             convolution with an RIR from under DIR (RIRS_NOISES simulated_rirs, real_rirs_...)
    speed[:F1,F2,...]      speed perturbation by one of the factors (default 0.9,1.0,1.1)

Any item takes ``@p=P``: the probability that it is applied to a given utterance (default 1). Options come
after the argument, so a folder may hold ``:`` or ``,``; only a trailing ``@KEY=VALUE`` with a known key is
read as an option.

Where each part runs (:mod:`lcnn.data.augmented`), all of it in the DataLoader workers, off the model's
critical path:

* per utterance, in the dataset: :class:`~lcnn.audio.augmenter.UtteranceAugment`'s speed, reverberation and
  noise (the talker, the room, the room's noise), before batching;
* per batch, in the collate function: the codecs (the transmission channel; each codec drawn for the batch is
  run once for all its utterances, since ffmpeg costs more to start than half a second of speech to code),
  then :class:`~lcnn.audio.rawboost.RawBoost` on the padded ``(batch, samples)`` tensor with ``lengths``, then
  the front-end.

Every part is seeded explicitly and per utterance: :func:`~lcnn.audio.augmenter.augment_seed` turns (run seed,
epoch, trial index) into one int64 seed for all of that utterance's draws. The same trial in the same epoch of
the same run is then augmented the same way whatever the worker count, the data order or the batch it lands in.

:func:`parse_augment` validates everything up front (names, algos, codecs, folders, ffmpeg and its
encoders) and raises :class:`~lcnn.errors.UserError` with one line; :meth:`AugmentSpec.to_dict` /
:meth:`AugmentSpec.from_dict` make it JSON-ready for a checkpoint's config. The fixed, deterministic codec
chains of ``lcnn degrade`` are :func:`lcnn.audio.codecs.parse_chain` (one wave: :func:`~lcnn.audio.codecs.apply_chain`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from lcnn.audio.channel import NoiseBank, RirBank
from lcnn.audio.codecs import (
    CODECS,
    DEFAULT_CODECS,
    check_codecs,
)
from lcnn.audio.rawboost import RAWBOOST_ALGOS
from lcnn.errors import UserError

__all__ = [
    "AUGMENTATIONS",
    "AugmentSpec",
    "CodecSpec",
    "NoiseSpec",
    "RawBoostSpec",
    "ReverbSpec",
    "SpeedSpec",
    "parse_augment",
]


@dataclass(frozen=True)
class RawBoostSpec:
    """RawBoost on the batch: ``algo`` 1..8 (official numbering), applied to a row with probability ``p``."""

    algo: int
    p: float = 1.0


@dataclass(frozen=True)
class CodecSpec:
    """A codec drawn uniformly from ``codecs`` per utterance, its bitrate from its list in
    :data:`lcnn.audio.codecs.CODECS`."""

    codecs: tuple[str, ...] = DEFAULT_CODECS
    p: float = 1.0


@dataclass(frozen=True)
class NoiseSpec:
    """Noise from the files under ``folder`` at an SNR drawn uniformly from ``snr_db`` (dB)."""

    folder: str
    snr_db: tuple[float, float] = (0.0, 15.0)
    p: float = 1.0


@dataclass(frozen=True)
class ReverbSpec:
    """Reverberation by an impulse response drawn from the files under ``folder``."""

    folder: str
    p: float = 1.0


@dataclass(frozen=True)
class SpeedSpec:
    """Speed perturbation by a factor drawn uniformly from ``factors``."""

    factors: tuple[float, ...] = (0.9, 1.0, 1.1)
    p: float = 1.0


_PARTS: dict[str, type] = {
    "rawboost": RawBoostSpec,
    "codec": CodecSpec,
    "noise": NoiseSpec,
    "reverb": ReverbSpec,
    "speed": SpeedSpec,
}
AUGMENTATIONS = tuple(_PARTS)
# Options each item accepts after "@".
_OPTIONS = {"rawboost": ("p",), "codec": ("p",), "noise": ("snr", "p"), "reverb": ("p",), "speed": ("p",)}


@dataclass(frozen=True)
class AugmentSpec:
    """Which augmentations to run, each ``None`` when off. Build it with :func:`parse_augment`."""

    rawboost: RawBoostSpec | None = None
    codec: CodecSpec | None = None
    noise: NoiseSpec | None = None
    reverb: ReverbSpec | None = None
    speed: SpeedSpec | None = None

    def __post_init__(self) -> None:
        _check_structure(self)

    @property
    def per_utterance(self) -> bool:
        """Whether there is worker-side work (speed, reverb, noise, codec)."""
        return any(part is not None for part in (self.speed, self.reverb, self.noise, self.codec))

    @property
    def is_empty(self) -> bool:
        return self.rawboost is None and not self.per_utterance

    def check(self) -> None:
        """Check the environment: folders hold usable files, ffmpeg exists and has every codec's encoder.

        Raises:
            UserError: one line saying what is missing and what was expected.
        """
        if self.noise is not None:
            NoiseBank(self.noise.folder)
        if self.reverb is not None:
            RirBank(self.reverb.folder)
        if self.codec is not None:
            check_codecs(self.codec.codecs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{name: {field: value} or None}`` with tuples as lists."""
        out: dict[str, Any] = {}
        for name in AUGMENTATIONS:
            part = getattr(self, name)
            out[name] = None if part is None else {f.name: _jsonable(getattr(part, f.name)) for f in fields(part)}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AugmentSpec:
        """The inverse of :meth:`to_dict`. Checks the structure, not the environment (see :meth:`check`),
        so that a checkpoint's config can be read on a machine without its noise folders."""
        if not isinstance(data, dict):
            raise UserError(f"augmentation config: expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(AUGMENTATIONS))
        if unknown:
            raise UserError(f"augmentation config: unknown augmentation {unknown[0]!r}; expected {_names()}")
        parts: dict[str, Any] = {}
        for name, kind in _PARTS.items():
            value = data.get(name)
            if value is None:
                continue
            if not isinstance(value, dict):
                raise UserError(f"augmentation config {name}: expected a mapping or null, got {value!r}")
            known = {f.name for f in fields(kind)}
            extra = sorted(set(value) - known)
            if extra:
                raise UserError(f"augmentation config {name}: unknown field {extra[0]!r}; expected {sorted(known)}")
            try:
                parts[name] = kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
            except TypeError as err:
                raise UserError(f"augmentation config {name}: {err}") from None
        return cls(**parts)

    def to_args(self) -> list[str]:
        """The spec as items for :func:`parse_augment` (its inverse), e.g. for logs."""
        items = []
        if self.rawboost is not None:
            items.append(f"rawboost:{self.rawboost.algo}" + _p(self.rawboost.p))
        if self.codec is not None:
            items.append(f"codec:{','.join(self.codec.codecs)}" + _p(self.codec.p))
        if self.noise is not None:
            lo, hi = self.noise.snr_db
            items.append(f"noise:{self.noise.folder}@snr={lo:g},{hi:g}" + _p(self.noise.p))
        if self.reverb is not None:
            items.append(f"reverb:{self.reverb.folder}" + _p(self.reverb.p))
        if self.speed is not None:
            items.append(f"speed:{','.join(f'{f:g}' for f in self.speed.factors)}" + _p(self.speed.p))
        return items


def _p(p: float) -> str:
    return "" if p == 1 else f"@p={p:g}"


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _names() -> str:
    return ", ".join(AUGMENTATIONS)


def _check_p(name: str, p: Any) -> None:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise UserError(f"augmentation {name}: p must be a probability in [0, 1], got {p!r}")


def _check_structure(spec: AugmentSpec) -> None:
    """Types and ranges of every field; raises UserError (one line) on the first problem."""
    for name, kind in _PARTS.items():
        part = getattr(spec, name)
        if part is None:
            continue
        if not isinstance(part, kind):
            raise UserError(f"augmentation {name}: expected a {kind.__name__}, got {type(part).__name__}")
        _check_p(name, part.p)
    if spec.rawboost is not None:
        algo = spec.rawboost.algo
        if isinstance(algo, bool) or not isinstance(algo, int) or algo not in RAWBOOST_ALGOS:
            raise UserError(
                f"augmentation rawboost: unknown algo {algo!r}; expected 1..8 "
                f"({'; '.join(f'{k} {v}' for k, v in RAWBOOST_ALGOS.items())})"
            )
    if spec.codec is not None:
        codecs = spec.codec.codecs
        if not isinstance(codecs, tuple) or not codecs:
            raise UserError("augmentation codec: expected at least one codec")
        for name in codecs:
            if name not in CODECS:
                raise UserError(f"augmentation codec: unknown codec {name!r}; expected some of {', '.join(CODECS)}")
        if len(set(codecs)) != len(codecs):
            raise UserError(f"augmentation codec: codec listed twice in {','.join(codecs)}")
    for name in ("noise", "reverb"):
        part = getattr(spec, name)
        if part is not None and (not isinstance(part.folder, str) or not part.folder):
            raise UserError(f"augmentation {name}: expected a folder, got {part.folder!r}")
    if spec.noise is not None:
        snr = spec.noise.snr_db
        ok = isinstance(snr, tuple) and len(snr) == 2 and all(_is_number(v) for v in snr)
        if not ok or snr[0] > snr[1]:
            raise UserError(f"augmentation noise: snr must be LO,HI in dB with LO <= HI, got {snr!r}")
        if not SNR_RANGE[0] <= snr[0] <= snr[1] <= SNR_RANGE[1]:
            raise UserError(f"augmentation noise: snr {snr[0]:g},{snr[1]:g} dB is outside {SNR_RANGE[0]:g} to "
                            f"{SNR_RANGE[1]:g} dB (noise far louder than speech, or too faint to matter)")
    if spec.speed is not None:
        factors = spec.speed.factors
        if not isinstance(factors, tuple) or not factors or not all(_is_number(f) and 0 < f for f in factors):
            raise UserError(f"augmentation speed: factors must be positive numbers, got {factors!r}")
        lo, hi = SPEED_RANGE
        if not all(lo <= f <= hi for f in factors):
            bad = next(f for f in factors if not lo <= f <= hi)
            raise UserError(f"augmentation speed: factor {bad:g} is outside {lo:g} to {hi:g} (a factor changes "
                            "duration and pitch alike; beyond these it is no longer speech)")


#: Speed factors accepted (Kaldi's recipes use 0.9-1.1); a factor of 1e9 would ask for a billion-fold waveform.
SPEED_RANGE = (0.5, 2.0)
#: Noise SNRs accepted, in dB.
SNR_RANGE = (-20.0, 100.0)


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


# ---------------------------------------------------------------------------------------------------------
# Parsing


def _float(item: str, text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"augmentation {item!r}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise UserError(f"augmentation {item!r}: {what} {text!r} is not a finite number")
    return value


def _split_options(item: str, name: str, arg: str) -> tuple[str, dict[str, str]]:
    """Peel trailing ``@key=value`` options (known keys only) off the argument."""
    options: dict[str, str] = {}
    while True:
        head, sep, tail = arg.rpartition("@")
        match = re.fullmatch(r"([a-z]+)=(.*)", tail) if sep else None
        if not match:
            return arg, options
        key, value = match.groups()
        if key not in _OPTIONS[name]:
            raise UserError(f"augmentation {item!r}: unknown option {key!r}; {name} takes {', '.join(_OPTIONS[name])}")
        if key in options:
            raise UserError(f"augmentation {item!r}: option {key!r} given twice")
        options[key] = value
        arg = head


def _parse_item(item: str) -> tuple[str, Any]:
    text = item.strip()
    name, colon, arg = text.partition(":")
    name = name.strip().lower()
    if not colon:  # "speed@p=0.5": options straight after the name
        name, at, rest = name.partition("@")
        arg = at + rest
    if name not in _PARTS:
        raise UserError(f"augmentation {item!r}: unknown augmentation {name!r}; expected one of {_names()}")
    arg, options = _split_options(item, name, arg)
    kwargs: dict[str, Any] = {}
    if "p" in options:
        kwargs["p"] = _float(item, options["p"], "p")
        _check_p(name, kwargs["p"])
    if name == "rawboost":
        if not re.fullmatch(r"\d+", arg.strip()):
            raise UserError(f"augmentation {item!r}: expected rawboost:ALGO with ALGO 1..8 (official numbering)")
        return name, RawBoostSpec(int(arg), **kwargs)
    if name == "codec":
        codecs = tuple(c.strip().lower() for c in arg.split(",")) if arg.strip() else DEFAULT_CODECS
        for codec in codecs:
            if codec not in CODECS:
                raise UserError(f"augmentation {item!r}: unknown codec {codec!r}; expected some of {', '.join(CODECS)}")
        return name, CodecSpec(codecs, **kwargs)
    if name in ("noise", "reverb"):
        if not arg.strip():
            layout = NoiseBank.LAYOUT if name == "noise" else RirBank.LAYOUT
            raise UserError(f"augmentation {item!r}: expected {name}:DIR, a folder of .wav/.flac files ({layout})")
        if name == "reverb":
            return name, ReverbSpec(arg, **kwargs)
        if "snr" in options:
            parts = options["snr"].split(",")
            if len(parts) != 2:
                raise UserError(f"augmentation {item!r}: expected @snr=LO,HI in dB, got {options['snr']!r}")
            kwargs["snr_db"] = (_float(item, parts[0], "SNR"), _float(item, parts[1], "SNR"))
        return name, NoiseSpec(arg, **kwargs)
    factors = tuple(_float(item, f, "speed factor") for f in arg.split(",")) if arg.strip() else (0.9, 1.0, 1.1)
    return name, SpeedSpec(factors, **kwargs)


def parse_augment(items: Iterable[str], check: bool = True) -> AugmentSpec:
    """Parse and validate augmentation items (see the module docstring for the grammar).

    Args:
        items: e.g. ``["rawboost:5", "codec:mp3,opus@p=0.5", "noise:/data/musan/noise", "speed"]``.
        check: also check the environment (:meth:`AugmentSpec.check`): folders, ffmpeg and its encoders.

    Raises:
        UserError: one line on the first problem: an unknown augmentation, RawBoost algo, codec or option,
            an item given twice, a malformed value, a missing or empty folder, no ffmpeg or a missing encoder.
    """
    if isinstance(items, str):
        items = [items]
    parts: dict[str, Any] = {}
    for item in items:
        name, part = _parse_item(item)
        if name in parts:
            raise UserError(f"augmentation {item!r}: {name} given twice; give each augmentation once")
        parts[name] = part
    spec = AugmentSpec(**parts)
    if check:
        spec.check()
    return spec
