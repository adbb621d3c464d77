"""Protocol, key and trial-list files of spoofing corpora, read into :class:`Trial` s.

Formats (one trial a line, whitespace-separated unless CSV):

- ASVspoof 2019 LA: ``SPEAKER FILE - SYSTEM KEY`` (``LA_0079 LA_T_1138215 - - bonafide``);
- ASVspoof 2019 PA: ``SPEAKER FILE ENV ATTACK KEY`` (``PA_0079 PA_T_0000001 aaa - bonafide``);
- ASVspoof 2021 LA keys (``trial_metadata.txt``): ``SPEAKER FILE CODEC TRANSMISSION ATTACK KEY TRIM SUBSET``
  (``LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval``);
- ASVspoof 2021 DF keys: ``SPEAKER FILE CODEC SOURCE ATTACK KEY TRIM SUBSET VOCODER TASK TEAM GENDER_PAIR
  LANGUAGE`` (13 fields: ``LA_0023 DF_E_2000011 nocodec asvspoof A14 spoof notrim progress traditional_vocoder
  - - - -``);
- ASVspoof 5 (``ASVspoof5.train.tsv``, ``ASVspoof5.{dev,eval}.track_1.tsv``, space-separated despite the name):
  ``SPEAKER FILE GENDER CODEC CODEC_Q CODEC_SEED ATTACK_TAG ATTACK_LABEL KEY TMP``, ``-`` where empty
  (``E_0001 E_0000000001 F C05 3 E_0000012345 AC2 A20 spoof -``; ATTACK_LABEL is ``bonafide`` for bona fide);
- ASVspoof 2021 trial lists: one file id a line, no key (unlabelled);
- CSV (``.csv`` suffix): ``path,label[,speaker,attack]``, an optional header line starting with ``path``;
- In-the-Wild's ``meta.csv``: the header ``file,speaker,label``, labels ``bona-fide`` / ``spoof``.

KEY must be ``bonafide`` or ``spoof``; file ids must be unique. Labels: 1 = bona fide, 0 = spoof,
-1 = unknown (the score direction of the whole package: higher = more bona fide). ``attack`` is ``-`` for
bona fide trials in every format.

Conditions (:attr:`Trial.conditions`, for the per-condition reports): the 2021 LA keys give ``codec``,
``transmission`` and ``subset``; the DF keys ``codec``, ``source`` and ``subset``, and ``vocoder`` for spoofs;
ASVspoof 5 ``gender``, ``codec`` and ``codec_q`` (``-``: not coded), and ``attack_tag`` for spoofs. A condition
that only spoofs carry describes the attack; one that bona fide trials carry too describes the recording.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lcnn.errors import DataError
from lcnn.io import iter_lines

__all__ = ["KEYS", "Trial", "iter_protocol", "read_protocol"]

KEYS = ("bonafide", "spoof")
IN_THE_WILD_HEADER = ["file", "speaker", "label"]
IN_THE_WILD_LABELS = {"bona-fide": "bonafide", "spoof": "spoof"}


@dataclass(frozen=True)
class Trial:
    """One protocol line: the file id, its key (``None`` when unlabelled) and metadata.

    ``attack`` is the system id (``A07``; ``-`` for bona fide), ``env`` the PA environment or the 2021 codec
    and transmission channel, ``subset`` the 2021 phase (``progress`` / ``eval`` / ``hidden_track``), ``path``
    the audio file once resolved. ``conditions`` are the per-trial conditions of the protocol by name (module
    docstring), e.g. ``{"codec": "alaw", "transmission": "ita_tx", "subset": "eval"}``; like ``path``, they
    take no part in comparisons (they restate what the other fields and the line say).
    """

    utt: str
    key: str | None = None
    attack: str = "-"
    speaker: str = "-"
    env: str = "-"
    subset: str | None = None
    path: Path | None = field(default=None, compare=False)
    conditions: dict[str, str] = field(default_factory=dict, compare=False)

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
    asvspoof5 = None  # a file whose first line is ASVspoof 5's holds to its 10 fields
    for number, line in iter_lines(path, "protocol file"):
        fields = line.split()
        if not fields:
            continue
        asvspoof5 = len(fields) == 10 if asvspoof5 is None else asvspoof5
        if asvspoof5 and len(fields) != 10:
            raise DataError(f"{path}, line {number}: {len(fields)} fields, expected the 10 of ASVspoof 5 "
                            f"(SPEAKER FILE GENDER CODEC CODEC_Q CODEC_SEED ATTACK_TAG ATTACK_LABEL KEY TMP, "
                            f"'-' where empty): {line.strip()!r}")  # fmt: skip
        yield _parse_line(fields, f"{path}, line {number}")


def _parse_line(f: list[str], where: str) -> Trial:
    if len(f) == 1:  # 2021 trial list
        return Trial(f[0])
    if len(f) == 5:  # 2019 LA / PA
        return Trial(f[1], _check_key(f[4], where), attack=f[3], speaker=f[0], env=f[2])
    if len(f) == 10:  # ASVspoof 5
        return _asvspoof5(f, where)
    if len(f) >= 8:  # 2021 LA / DF keys (trial_metadata.txt)
        key = _check_key(f[5], where)
        if len(f) == 13:  # DF: the third field is the source corpus; the vocoder kind is the attack's
            conditions = {"codec": f[2], "source": f[3], "subset": f[7]}
            if key == "spoof":
                conditions["vocoder"] = f[8]
        else:
            conditions = {"codec": f[2], "transmission": f[3], "subset": f[7]}
        return Trial(f[1], key, attack=f[4], speaker=f[0], env=f"{f[2]} {f[3]}", subset=f[7], conditions=conditions)
    raise DataError(
        f"{where}: {len(f)} fields, expected SPEAKER FILE - SYSTEM KEY (5), a 2021 trial_metadata line (8 or more), "
        f"an ASVspoof 5 line (10) or one file id: {' '.join(f)!r}"
    )


def _asvspoof5(f: list[str], where: str) -> Trial:
    speaker, utt, gender, codec, codec_q, _seed, attack_tag, attack, key, _tmp = f
    key = _check_key(key, where)
    if (attack == "bonafide") != (key == "bonafide"):
        raise DataError(f"{where}: attack label {attack!r} with key {key}: {' '.join(f)!r}")
    conditions = {"gender": gender, "codec": codec, "codec_q": codec_q}
    if key == "spoof":
        conditions["attack_tag"] = attack_tag
    return Trial(utt, key, attack=attack if key == "spoof" else "-", speaker=speaker, conditions=conditions)


def _read_csv(path: Path) -> Iterator[Trial]:
    in_the_wild = False
    reader = csv.reader(line for _, line in iter_lines(path, "protocol file"))
    while True:
        try:
            row = next(reader, None)
        except csv.Error as err:  # a stray carriage return, an unterminated quote
            raise DataError(f"{path}, line {reader.line_num}: not a CSV row ({err})") from None
        if row is None:
            return
        number = reader.line_num
        row = [c.strip() for c in row]
        if number == 1 and [c.lower() for c in row] == IN_THE_WILD_HEADER:
            in_the_wild = True
            continue
        if not any(row) or (number == 1 and row[0].lower() == "path"):
            continue
        where = f"{path}, line {number}"
        if in_the_wild:
            yield _in_the_wild(row, where)
            continue
        if not 2 <= len(row) <= 4:
            raise DataError(f"{where}: {len(row)} columns, expected path,label[,speaker,attack]")
        key = _check_key(row[1], where)
        speaker = row[2] if len(row) > 2 and row[2] else "-"
        attack = row[3] if len(row) > 3 and row[3] else "-"
        yield Trial(row[0], key, attack=attack, speaker=speaker)


def _in_the_wild(row: list[str], where: str) -> Trial:
    if len(row) != 3 or not row[0]:
        raise DataError(f"{where}: {len(row)} columns, expected file,speaker,label (In-the-Wild meta.csv)")
    if row[2] not in IN_THE_WILD_LABELS:
        raise DataError(f"{where}: label {row[2]!r}, expected bona-fide or spoof")
    return Trial(row[0], IN_THE_WILD_LABELS[row[2]], speaker=row[1] or "-")


def _refuse_duplicates(trials: Sequence[Trial], where: str) -> None:
    seen: set[str] = set()
    dups = []
    for t in trials:
        if t.utt in seen:
            dups.append(t.utt)
        seen.add(t.utt)
    if dups:
        raise DataError(f"{where}: {len(dups)} duplicate file ids, e.g. {', '.join(dups[:5])}")
