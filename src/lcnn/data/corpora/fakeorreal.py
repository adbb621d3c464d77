"""Fake-or-Real (FoR, Reimao and Tzerpos 2019): each of its versions (``for-original``, ``for-norm``,
``for-2sec`` / ``for-2seconds``, ``for-rerec`` / ``for-rerecorded``) is ``{training,validation,testing}/{real,fake}/``
of audio files, labelled by their folder; no protocol, no attack or speaker ids. ``--data-dir``: a version's
folder, or a folder holding exactly one (the Kaggle archive nests ``for-norm/for-norm/``)."""

from __future__ import annotations

import os
from pathlib import Path

from lcnn.data.corpora.registry import AUDIO_SUFFIXES, SplitSource, register_corpus
from lcnn.data.protocols import Trial
from lcnn.errors import DataError

FOLDERS = {"train": "training", "dev": "validation", "eval": "testing"}
LABELS = {"real": "bonafide", "fake": "spoof"}


def read_folder(split_dir: Path) -> list[Trial]:
    """The trials of one split folder: ``real/`` bona fide, ``fake/`` spoof, ids ``SPLIT/LABEL/FILE`` (relative
    to the version's folder), sorted."""
    trials = []
    for label, key in LABELS.items():
        folder = split_dir / label
        if not folder.is_dir():
            raise DataError(f"{split_dir}: no {label}/ folder (Fake-or-Real: {split_dir.name}/real/ and fake/)")
        names = sorted(n for n in os.listdir(folder) if os.path.splitext(n)[1].lower() in AUDIO_SUFFIXES)
        trials += [Trial(f"{split_dir.name}/{label}/{name}", key) for name in names]
    if not trials:
        raise DataError(f"{split_dir}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in real/ or fake/")
    return trials


def _version(root: Path) -> Path:
    """``root`` if it holds split folders, else the one folder one or two levels down that does."""

    def holds_splits(d: Path) -> bool:
        return any((d / name).is_dir() for name in FOLDERS.values())

    if holds_splits(root):
        return root
    found = [d for d in sorted(root.glob("*")) + sorted(root.glob("*/*")) if d.is_dir() and holds_splits(d)]
    if not found:
        raise DataError(f"{root}: no training/, validation/ or testing/ folder here or below (Fake-or-Real)")
    if len(found) > 1:
        names = ", ".join(str(d.relative_to(root)) for d in found)
        raise DataError(f"{root}: several Fake-or-Real versions ({names}); give --data-dir one of them")
    return found[0]


@register_corpus("fakeorreal")
def fakeorreal(root: Path) -> dict[str, SplitSource]:
    version = _version(root)
    return {split: SplitSource(version / name, version, reader=read_folder)
            for split, name in FOLDERS.items() if (version / name).is_dir()}  # fmt: skip
