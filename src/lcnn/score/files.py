"""Score files: read in the common forms, written atomically in one number format, and checked against a key
before any metric. The one home of these forms: ``lcnn score``, the spoof reports, ``check-scores``,
``calibrate`` and ``fuse`` read and write through it. Imports no torch.

Forms read (told apart by the first non-blank line; every line of a file has the same form):

- ``ID SCORE``: ASVspoof 2021 submissions, lcnn's ``scores-SPLIT-2021.txt``;
- ``ID ATTACK KEY SCORE``: ASVspoof 2019 CM score files, lcnn's ``scores-SPLIT.txt`` (they carry the key);
- ``SPEAKER ID SCORE KEY``: the CM score files of the ASVspoof 5 evaluation package's README;
- ASVspoof 5 submissions: a header naming the columns, ``filename`` and ``cm-score`` among them (``cm-label``
  too, optionally), then one row per trial: ``filename<TAB>cm-score`` / ``E_000001<TAB>0.01``.

Higher scores mean more bona fide. :func:`check_scores` gives the verdicts: errors (the file cannot be scored
against the key: missing, extra or duplicate ids, NaN or infinite scores, fewer than three distinct values,
labels that contradict the key, a key without both classes) and warnings (a pooled EER above 50 %: inverted
scores). Messages name the file, the lines and the ids.

Scores are written ``%.9g`` (:data:`SCORE_FORMAT`): nine significant digits give back every float32 exactly,
the precision a model scores in, so that a score file read back ranks the trials as the model did.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lcnn.data.protocols import KEYS, Trial
from lcnn.errors import DataError
from lcnn.io import atomic_path, printable, read_text
from lcnn.metrics import compute_eer, min_dcf

__all__ = ["SCORE_FORMAT", "ScoreCheck", "ScoreFile", "aligned", "check_scores", "load_scores", "read_scores",
           "write_score_file"]

SHOWN = 3  # ids shown per problem

#: The format of every score written: enough digits to give back any float32 exactly.
SCORE_FORMAT = ".9g"


@dataclass(frozen=True, eq=False)
class ScoreFile:
    """The scores of one file, in file order: ``ids``, ``scores`` (float64), the 1-based ``lines`` they came
    from, and the ``keys`` when the file carries them. ``name`` is the file, as messages show it."""

    name: str
    ids: tuple[str, ...]
    scores: NDArray[np.float64]
    lines: tuple[int, ...]
    keys: tuple[str, ...] | None = None

    @classmethod
    def of(cls, name: str, ids: Sequence[str], scores: ArrayLike) -> ScoreFile:
        """Scores held in memory, as if written one ``ID SCORE`` line each to a file called ``name``."""
        return cls(name, tuple(ids), np.asarray(scores, dtype=np.float64).ravel(), tuple(range(1, len(ids) + 1)))


@dataclass(frozen=True)
class ScoreCheck:
    """What :func:`check_scores` found. ``errors`` and ``warnings`` are messages without the file name
    (:meth:`lines` adds it); the counts and pooled ``eer`` / ``min_dcf`` are ``None`` where unknown."""

    name: str
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    n_bonafide: int | None = None
    n_spoof: int | None = None
    eer: float | None = None
    min_dcf: float | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_errors(self) -> None:
        """One DataError naming the file and every error, if there is any."""
        if self.errors:
            raise DataError(f"{self.name}: " + "; ".join(self.errors))

    def summary(self) -> str:
        """One line: ``ok`` (or the count of errors), the trials and the pooled EER and min DCF."""
        verdict = "ok" if self.ok else f"{len(self.errors)} error{'s' * (len(self.errors) > 1)}"
        counts = "" if self.n_bonafide is None else f": {self.n_bonafide} bona fide, {self.n_spoof} spoof"
        metrics = "" if self.eer is None else f", pooled EER {100 * self.eer:.3f} %, min DCF {self.min_dcf:.4f}"
        return f"{self.name}: {verdict}{counts}{metrics}"


def read_scores(path: str | os.PathLike) -> ScoreFile:
    """A score file in any form of the module docstring.

    Raises:
        DataError: no such file, no scores, a line of another form than the first (with its number), a score
            that is not a number, or a label other than bonafide / spoof. (NaN and inf are read: the check
            reports them.)
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such score file")
    lines = read_text(path, "score file").split("\n")
    rows = [(number, line.split()) for number, line in enumerate(lines, start=1) if line.strip()]
    if not rows:
        raise DataError(f"{path}: no scores in this file")
    first = rows[0][1]
    if "filename" in first and "cm-score" in first:  # ASVspoof 5: a header names the columns
        columns = (first.index("filename"), first.index("cm-score"), first.index("cm-label") if "cm-label" in first
                   else None)  # fmt: skip
        form, rows = f"{len(first)} columns as in the header ({' '.join(first)})", rows[1:]
    elif len(first) == 2:
        columns, form = (0, 1, None), "ID SCORE"
    elif len(first) == 4 and _is_number(first[3]):
        columns, form = (0, 3, 2), "ID ATTACK KEY SCORE"
    elif len(first) == 4 and first[3] in KEYS:
        columns, form = (1, 2, 3), "SPEAKER ID SCORE KEY"
    else:
        raise DataError(f"{path}, line {rows[0][0]}: {len(first)} fields, expected ID SCORE, ID ATTACK KEY SCORE "
                        f"(ASVspoof 2019), SPEAKER ID SCORE KEY, or a header naming filename and cm-score "
                        f"(ASVspoof 5): {' '.join(first)!r}")  # fmt: skip
    width = len(first)
    i_id, i_score, i_key = columns
    ids, scores, lines, keys = [], [], [], []
    for number, fields in rows:
        where = f"{path}, line {number}"
        if len(fields) != width:
            raise DataError(f"{where}: {len(fields)} fields, expected {form}: {' '.join(fields)!r}")
        if not _is_number(fields[i_score]):
            raise DataError(f"{where}: score {fields[i_score]!r} is not a number")
        if i_key is not None and fields[i_key] not in KEYS:
            raise DataError(f"{where}: label {fields[i_key]!r}, expected bonafide or spoof")
        ids.append(fields[i_id])
        scores.append(float(fields[i_score]))
        lines.append(number)
        keys.append(fields[i_key] if i_key is not None else "")
    if not ids:
        raise DataError(f"{path}: no scores in this file, only its header")
    return ScoreFile(str(path), tuple(ids), np.asarray(scores, dtype=np.float64), tuple(lines),
                     tuple(keys) if i_key is not None else None)  # fmt: skip


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def write_score_file(path: str | os.PathLike, ids: Sequence[str], scores: ArrayLike,
                     meta: Callable[[int], str] | None = None) -> Path:  # fmt: skip
    """Write the scores atomically, one line per score that is not NaN (NaN: a trial that failed, left out), in
    :data:`SCORE_FORMAT`; returns ``path``. The forms: ``ID SCORE``; with ``meta`` (``i`` ->
    ``"ATTACK KEY"``) ``ID ATTACK KEY SCORE`` (ASVspoof 2019); for a ``.tsv`` path the ASVspoof 5 submission
    (a ``filename<TAB>cm-score`` header)."""
    path = Path(path)
    values = np.asarray(scores, dtype=np.float64).ravel()
    if len(ids) != values.size:
        raise ValueError(f"{len(ids)} ids but {values.size} scores")
    tsv = path.suffix.lower() == ".tsv"
    if tsv and meta is not None:
        raise ValueError("the ASVspoof 5 form (.tsv) has no attack and key columns")
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        if tsv:
            f.write("filename\tcm-score\n")
        for i, score in enumerate(values.tolist()):
            if score != score:  # NaN
                continue
            utt = ids[i] if meta is None else f"{ids[i]} {meta(i)}"
            f.write(f"{utt}\t{score:{SCORE_FORMAT}}\n" if tsv else f"{utt} {score:{SCORE_FORMAT}}\n")
    return path


def _some(items: Sequence[str]) -> str:
    """The first ids of a list for a message, non-printing characters escaped (``LA_E_1`` and ``\\ufeffLA_E_1``
    must not look alike)."""
    return ", ".join(map(printable, items[:SHOWN])) + (", ..." if len(items) > SHOWN else "")


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def check_scores(scores: ScoreFile, trials: Sequence[Trial] | None = None, key: str = "the key") -> ScoreCheck:
    """The verdicts on ``scores`` against the ``trials`` of a key (module docstring).

    Without ``trials``, the labels the file carries (if any) serve as its key; ids are then not checked.
    Trials without labels (a trial list) check the ids only. ``key`` names the key in the messages.
    """
    errors, warnings = [], []
    first: dict[str, int] = {}  # id -> index of its first score
    duplicates = []
    for i, utt in enumerate(scores.ids):
        if utt in first:
            duplicates.append(f"{utt} (lines {scores.lines[first[utt]]} and {scores.lines[i]})")
        else:
            first[utt] = i
    if duplicates:
        errors.append(f"{_count(len(duplicates), 'id is', 'ids are')} scored more than once, e.g. {_some(duplicates)}")
    bad = [f"{scores.ids[i]} {scores.scores[i]} (line {scores.lines[i]})"
           for i in np.flatnonzero(~np.isfinite(scores.scores))]  # fmt: skip
    if bad:
        errors.append(f"{_count(len(bad), 'score is', 'scores are')} NaN or infinite, e.g. {_some(bad)}")

    if trials is None:
        used = sorted(first.values())
        labels = [scores.keys[i] for i in used] if scores.keys is not None else None
    else:
        missing = [t.utt for t in trials if t.utt not in first]
        if missing:
            errors.append(f"{len(missing)} of {len(trials)} trials of {key} {'has' if len(missing) == 1 else 'have'} "
                          f"no score, e.g. {_some(missing)}")  # fmt: skip
        known = {t.utt for t in trials}
        extra = [f"{u} (line {scores.lines[i]})" for u, i in first.items() if u not in known]
        if extra:
            errors.append(f"{_count(len(extra), 'scored id is', 'scored ids are')} not in {key}, e.g. {_some(extra)}: "
                          f"the scores of another subset or protocol?")  # fmt: skip
        scored = [t for t in trials if t.utt in first]
        used = [first[t.utt] for t in scored]
        labels = [t.key for t in scored] if scored and all(t.key is not None for t in scored) else None
        if scores.keys is not None and labels is not None:
            contradicted = [f"{t.utt} {scores.keys[i]} here, {t.key} in {key} (line {scores.lines[i]})"
                            for t, i in zip(scored, used) if scores.keys[i] != t.key]  # fmt: skip
            if contradicted:
                errors.append(f"{_count(len(contradicted), 'trial is', 'trials are')} labelled otherwise than in "
                              f"{key}, e.g. {_some(contradicted)}")  # fmt: skip

    values = scores.scores[used]
    finite = np.isfinite(values)
    distinct = np.unique(values[finite])
    if distinct.size == 1:
        errors.append(f"every score is {distinct[0]:g}: a constant ranks no trial above another")
    elif distinct.size == 2:
        errors.append(f"only two distinct scores, {distinct[0]:g} and {distinct[1]:g}: these are decisions, not "
                      f"scores; write the detector's continuous score (higher = more bona fide)")  # fmt: skip
    if labels is None:
        return ScoreCheck(scores.name, tuple(errors), tuple(warnings))
    bona = np.array([k == "bonafide" for k in labels], dtype=bool)
    n_bona, n_spoof = int(bona.sum()), int((~bona).sum())
    if not (n_bona and n_spoof):
        errors.append(f"{n_bona} bona fide and {n_spoof} spoofed trials scored: EER and DCF need both")
    if errors:
        return ScoreCheck(scores.name, tuple(errors), tuple(warnings), n_bona, n_spoof)
    eer = compute_eer(values[bona], values[~bona])[0]
    if eer > 0.5:
        warnings.append(f"pooled EER {100 * eer:.1f} % is above 50 %: the scores look inverted; higher scores must "
                        f"mean bona fide (negate scores where yours mean spoof)")  # fmt: skip
    return ScoreCheck(scores.name, (), tuple(warnings), n_bona, n_spoof, eer, min_dcf(values[bona], values[~bona]))


def aligned(scores: ScoreFile, trials: Sequence[Trial]) -> NDArray[np.float64]:
    """The scores of ``trials``, in their order (each id's first score)."""
    index = {}
    for i, utt in enumerate(scores.ids):
        index.setdefault(utt, i)
    return scores.scores[[index[t.utt] for t in trials]]


def load_scores(
    path: str | os.PathLike, trials: Sequence[Trial], key: str = "the key"
) -> tuple[NDArray[np.float64], ScoreCheck]:
    """Read, check and align: ``(scores in the order of trials, the check)``.

    Raises:
        DataError: what :func:`read_scores` refuses, or one line with every error of :func:`check_scores`.
    """
    scores = read_scores(path)
    check = check_scores(scores, trials, key)
    check.raise_errors()
    return aligned(scores, trials), check
