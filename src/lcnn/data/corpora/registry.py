"""The corpus registry: each spoofing corpus is a layout function registered under its name, with the facts
about it that loaders, the task and the reports need (its splits, the per-trial conditions its reader fills, the
form of its t-DCF), so that none of them tests a corpus name (as :mod:`lcnn.models.registry` for models)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lcnn.data.protocols import Trial, read_protocol
from lcnn.errors import UserError

SPLITS = ("train", "dev", "eval")
#: The audio files a trial id may name with its suffix (else ``ID.flac`` or ``ID.wav``); MP3 through libsndfile.
AUDIO_SUFFIXES = (".flac", ".wav", ".mp3")


@dataclass(frozen=True)
class SplitSource:
    """Where one split lives: the protocol (labels; a folder for corpora labelled by their folders), the audio
    folder that trial ids are relative to, an optional trial list whose ids must match the protocol's exactly
    (the 2021 evaluation sets), and the reader of the protocol (:func:`~lcnn.data.protocols.read_protocol`
    unless the corpus has its own)."""

    protocol: Path | None
    audio_dir: Path
    trial_list: Path | None = None
    reader: Callable[[Path], list[Trial]] = read_protocol


Layout = Callable[[Path], dict[str, SplitSource]]


@dataclass(frozen=True)
class Corpus:
    """A registered corpus.

    Attributes:
        name: the ``--data`` name.
        layout: ``layout(root) -> {split: SplitSource}`` of the splits found under the data folder ``root``; a
            :class:`~lcnn.errors.DataError` naming the folder when it does not hold the corpus.
        splits: the splits the layout can give (some may be absent from a given folder).
        conditions: the :attr:`~lcnn.data.protocols.Trial.conditions` its reader fills (for the reports).
        revised_tdcf: the t-DCF is ASVspoof 2021's revised one (``revised`` of :func:`lcnn.metrics.min_tdcf`),
            else ASVspoof 2019's.
        asv_rates: fixed ASV error rates ``(Pfa, Pmiss, Pfa of spoofs)`` for the t-DCF of a CM without ASV
            scores (ASVspoof 5's organisers'); ``None``: the t-DCF needs ``--asv-scores``.
        note: a few words for ``--data`` help (``evaluation only``).
        locate: where the data is without ``--data-dir`` (``locate(data_dir) -> root``); ``None``: it is needed.
        needs_protocols: the splits come from ``--protocol`` alone (``custom``).
    """

    name: str
    layout: Layout
    splits: tuple[str, ...]
    conditions: tuple[str, ...]
    revised_tdcf: bool
    asv_rates: tuple[float, float, float] | None
    note: str
    locate: Callable[[str | os.PathLike | None], Path] | None
    needs_protocols: bool


_CORPORA: dict[str, Corpus] = {}


def register_corpus(
    name: str,
    *,
    splits: tuple[str, ...] = SPLITS,
    conditions: tuple[str, ...] = (),
    revised_tdcf: bool = False,
    asv_rates: tuple[float, float, float] | None = None,
    note: str = "",
    locate: Callable[[str | os.PathLike | None], Path] | None = None,
    needs_protocols: bool = False,
) -> Callable[[Layout], Layout]:
    """Register the decorated layout function as corpus ``name``, so that ``get_corpus(name)`` describes it."""

    def register(layout: Layout) -> Layout:
        if name in _CORPORA:
            raise ValueError(f"corpus {name!r} is registered twice")
        unknown = set(splits) - set(SPLITS)
        if unknown:
            raise ValueError(f"corpus {name!r}: splits must be among {SPLITS}, got {sorted(unknown)}")
        _CORPORA[name] = Corpus(name, layout, tuple(splits), tuple(conditions), revised_tdcf, asv_rates, note,
                                locate, needs_protocols)  # fmt: skip
        return layout

    return register


def list_corpora() -> list[str]:
    """The registered corpus names, sorted."""
    return sorted(_CORPORA)


def get_corpus(name: str) -> Corpus:
    """The :class:`Corpus` registered as ``name``; a :class:`~lcnn.errors.UserError` naming the choices."""
    corpus = _CORPORA.get(name)
    if corpus is None:
        raise UserError(f"unknown spoofing data {name!r}; expected one of {', '.join(list_corpora())}")
    return corpus


def corpora_help() -> str:
    """The ``--data`` choices in words: each name with its note."""
    return ", ".join(f"{name} ({_CORPORA[name].note})" if _CORPORA[name].note else name for name in list_corpora())
