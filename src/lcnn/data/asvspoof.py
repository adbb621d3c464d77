"""A spoofing corpus's splits: where each split's protocol and audio live (the layout of the corpus in
:mod:`lcnn.data.corpora`, or the user's ``--protocol`` files), and the split's trials with their audio.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from lcnn.data.corpora import AUDIO_SUFFIXES, SPLITS, SplitSource, get_corpus
from lcnn.data.paths import inside
from lcnn.data.protocols import Trial, read_protocol
from lcnn.errors import DataError, UserError

__all__ = ["AUDIO_SUFFIXES", "SPLITS", "SplitSource", "audio_path", "check_audio", "load_split", "resolve_sources"]


def resolve_sources(
    data: str, data_dir: str | os.PathLike | None, protocols: dict[str, str] | None = None
) -> dict[str, SplitSource]:
    """The train / dev / eval sources of corpus ``data`` (:func:`lcnn.data.corpora.get_corpus`) under
    ``data_dir``: its layout's splits, then ``protocols`` (split -> protocol or CSV file), which add splits or
    replace single ones (the audio stays in that split's folder; a new split's audio is under ``data_dir``). A
    relative protocol path that does not exist from the working directory is looked for under ``data_dir``.
    """
    protocols = dict(protocols or {})
    unknown = set(protocols) - set(SPLITS)
    if unknown:
        raise UserError(f"--protocol split must be one of {', '.join(SPLITS)}, got {', '.join(sorted(unknown))}")
    corpus = get_corpus(data)
    if corpus.locate is not None:
        root = corpus.locate(data_dir)
    elif not data_dir:
        raise UserError(f"--data {data} needs --data-dir DIR")
    else:
        root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{root}: no such data folder")
    if corpus.needs_protocols and not protocols:
        raise UserError(f"--data {data} needs --protocol SPLIT=FILE for its splits ({', '.join(SPLITS)})")
    sources = corpus.layout(root)
    for split, file in protocols.items():
        p = Path(file)
        if not p.is_absolute() and not p.exists() and (root / p).exists():
            p = root / p
        sources[split] = SplitSource(p, sources[split].audio_dir if split in sources else root)
    return {split: sources[split] for split in SPLITS if split in sources}  # in one order, whatever the layout's


def load_split(source: SplitSource) -> list[Trial]:
    """The trials of a split with their audio paths resolved (existence is checked by :func:`check_audio`).

    Raises:
        DataError: bad protocol (see the split's reader: :func:`read_protocol` for most), a trial list and
            keys whose ids differ, or a file id that would leave the data folder.
    """
    if source.trial_list is not None and source.trial_list.is_file():
        listed = read_protocol(source.trial_list)
        if source.protocol is not None:
            keyed = {t.utt: t for t in source.reader(source.protocol)}
            _refuse_mismatch([t.utt for t in listed], keyed, source.trial_list, source.protocol)
            listed = [keyed[t.utt] for t in listed]
        trials = listed
    elif source.protocol is not None:
        trials = source.reader(source.protocol)
    else:
        raise DataError(f"{source.trial_list or source.audio_dir}: no protocol or trial list for this split")
    return [replace(t, path=audio_path(source.audio_dir, t.utt)) for t in trials]


def _refuse_mismatch(ids: Sequence[str], keyed: dict[str, Trial], trial_list: Path, keys: Path) -> None:
    listed = set(ids)
    unkeyed = [u for u in ids if u not in keyed]
    unlisted = [u for u in keyed if u not in listed]
    if unkeyed or unlisted:
        raise DataError(
            f"trial ids of {trial_list} and {keys} disagree: {len(unkeyed)} listed trials without a key "
            f"(e.g. {', '.join(unkeyed[:3]) or '-'}), {len(unlisted)} keys for trials not listed "
            f"(e.g. {', '.join(unlisted[:3]) or '-'}); refusing to score"
        )


def audio_path(audio_dir: Path, utt: str) -> Path:
    """``audio_dir/utt`` if ``utt`` names an audio file, else ``audio_dir/utt.flac`` (``.wav`` if that one
    exists instead). Refuses ids that are absolute or climb out of ``audio_dir`` with ``..``."""
    base = inside(audio_dir, utt, f"trial {utt!r}")
    if base.suffix.lower() in AUDIO_SUFFIXES:
        return base
    flac = base.with_name(base.name + ".flac")
    wav = base.with_name(base.name + ".wav")
    return wav if not flac.exists() and wav.exists() else flac


def check_audio(trials: Sequence[Trial], split: str) -> list[int]:
    """File sizes in bytes of every trial's audio; raises DataError with the count and first few missing."""
    sizes, missing = [], []
    for t in trials:
        try:
            sizes.append(os.stat(t.path).st_size)
        except OSError:
            missing.append(str(t.path))
    if missing:
        raise DataError(f"{split}: {len(missing)} of {len(trials)} trials have no audio file, e.g. "
                        + ", ".join(missing[:3]))
    return sizes
