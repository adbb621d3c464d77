"""Protocol, key and trial-list files of spoofing corpora, read into :class:`Trial` s.

Formats (one trial a line, whitespace-separated unless CSV):

- ASVspoof 2019 LA: ``SPEAKER FILE - SYSTEM KEY`` (``LA_0079 LA_T_1138215 - - bonafide``);
- ASVspoof 2019 PA: ``SPEAKER FILE ENV ATTACK KEY`` (``PA_0079 PA_T_0000001 aaa - bonafide``);
- ASVspoof 2021 keys (``trial_metadata.txt``): ``SPEAKER FILE CODEC TRANSMISSION ATTACK KEY TRIM SUBSET ...``
  (``LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval``);
- ASVspoof 2021 trial lists: one file id a line, no key (unlabelled);
- CSV (``.csv`` suffix): ``path,label[,speaker,attack]``, an optional header line starting with ``path``.

KEY must be ``bonafide`` or ``spoof``; file ids must be unique. Labels: 1 = bona fide, 0 = spoof,
-1 = unknown (the score direction of the whole package: higher = more bona fide).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lcnn.errors import DataError

__all__ = ["KEYS", "Trial", "iter_protocol", "read_protocol"]

KEYS = ("bonafide", "spoof")


@dataclass(frozen=True)
class Trial:
    """One protocol line: the file id, its key (``None`` when unlabelled) and metadata.

    ``attack`` is the system id (``A07``; ``-`` for bona fide in the 2019 protocols), ``env`` the PA
    environment or the 2021 codec and transmission channel, ``subset`` the 2021 phase (``progress`` /
    ``eval`` / ``hidden_track``), ``path`` the audio file once resolved.
    """

    utt: str
    key: str | None = None
    attack: str = "-"
    speaker: str = "-"
    env: str = "-"
    subset: str | None = None
    path: Path | None = field(default=None, compare=False)

    @property
    def label(self) -> int:
        """1 = bona fide, 0 = spoof, -1 = unlabelled."""
        return -1 if self.key is None else int(self.key == "bonafide")


def _check_key(key: str, where: str) -> str:
    if key not in KEYS:
        raise DataError(f"{where}: label {key!r}, expected bonafide or spoof")
    return key


def read_protocol(path: str | os.PathLike) -> list[Trial]:
    """Trials of a protocol, key or trial-list file in any of the formats of the module docstring.

    Raises:
        DataError: unreadable file, a line with an unexpected number of fields, a label other than
            bonafide/spoof (with the 1-based line number), or duplicate file ids (count and the first few).
    """
    path = Path(path)
    trials = list(iter_protocol(path))
    if not trials:
        raise DataError(f"{path}: no trials in this protocol file")
    _refuse_duplicates(trials, str(path))
    return trials


def iter_protocol(path: str | os.PathLike) -> Iterator[Trial]:
    """The trials of :func:`read_protocol` one at a time, for lists too long to hold as :class:`Trial` s; the
    caller checks emptiness and duplicates. Raises DataError on a bad line (file and line number)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such protocol file")
    if path.suffix.lower() == ".csv":
        yield from _read_csv(path)
        return
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            fields = line.split()
            if fields:
                yield _parse_line(fields, f"{path}, line {number}")


def _parse_line(f: list[str], where: str) -> Trial:
    if len(f) == 1:  # 2021 trial list
        return Trial(f[0])
    if len(f) == 5:  # 2019 LA / PA
        return Trial(f[1], _check_key(f[4], where), attack=f[3], speaker=f[0], env=f[2])
    if len(f) >= 8:  # 2021 LA / DF keys (trial_metadata.txt)
        return Trial(f[1], _check_key(f[5], where), attack=f[4], speaker=f[0], env=f"{f[2]} {f[3]}", subset=f[7])
    raise DataError(
        f"{where}: {len(f)} fields, expected SPEAKER FILE - SYSTEM KEY (5), a 2021 trial_metadata line (8 or more) "
        f"or one file id: {' '.join(f)!r}"
    )


def _read_csv(path: Path) -> Iterator[Trial]:
    with open(path, newline="", encoding="utf-8") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            row = [c.strip() for c in row]
            if not any(row) or (number == 1 and row[0].lower() == "path"):
                continue
            where = f"{path}, line {number}"
            if not 2 <= len(row) <= 4:
                raise DataError(f"{where}: {len(row)} columns, expected path,label[,speaker,attack]")
            key = _check_key(row[1], where)
            speaker = row[2] if len(row) > 2 and row[2] else "-"
            attack = row[3] if len(row) > 3 and row[3] else "-"
            yield Trial(row[0], key, attack=attack, speaker=speaker)


def _refuse_duplicates(trials: Sequence[Trial], where: str) -> None:
    seen: set[str] = set()
    dups = []
    for t in trials:
        if t.utt in seen:
            dups.append(t.utt)
        seen.add(t.utt)
    if dups:
        raise DataError(f"{where}: {len(dups)} duplicate file ids, e.g. {', '.join(dups[:5])}")
