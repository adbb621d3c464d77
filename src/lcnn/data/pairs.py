"""Face verification pairs: LFW's ``pairs.txt``, plain ``path1 path2 label`` lists, and pairs built from an
identity folder (ORL protocol).

A verification pair is a :class:`Pair` of two image paths, a label (1 genuine, 0 impostor) and a fold.
"""

from __future__ import annotations

import itertools
import os
import random
from dataclasses import dataclass
from pathlib import Path

from lcnn.data.paths import inside
from lcnn.errors import DataError
from lcnn.io import read_text

__all__ = ["Pair", "assign_folds", "build_pairs", "check_images_exist", "read_lfw_pairs", "read_pair_list",
           "read_pairs", "try_build_pairs"]


@dataclass(frozen=True)
class Pair:
    """Two face images, ``label`` 1 (same person) or 0 (different people), and the pair's ``fold``."""

    path1: Path
    path2: Path
    label: int
    fold: int = 0


def read_pairs(path: str | Path, root: str | Path | None = None) -> list[Pair]:
    """Read a pairs file, LFW ``pairs.txt`` format (first line one or two numbers) or a plain list.

    ``root`` is the image folder (LFW: needed, ``<root>/<name>/<name>_<n:04d>.jpg``; plain lists: relative
    paths are taken under it, else under the list's own folder).
    """
    path = Path(path)
    first = next((line.split() for line in _read_lines(path) if line.strip()), None)
    if first is None:
        raise DataError(f"{path}: empty pairs file")
    if 1 <= len(first) <= 2 and all(field.isdecimal() for field in first):
        if root is None:
            raise DataError(f"{path}: an LFW pairs file needs the image folder (--data-dir ROOT)")
        return read_lfw_pairs(path, root)
    return read_pair_list(path, root)


def _read_lines(path: Path) -> list[str]:
    return read_text(path, "pairs file").split("\n")


def _index(path: Path, lineno: int, text: str) -> int:
    if not text.isdecimal() or int(text) < 1:
        raise DataError(f"{path}, line {lineno}: image number {text!r} is not a positive integer")
    return int(text)


def lfw_image(root: Path, name: str, number: int, where: str = "LFW pairs") -> Path:
    """``<root>/<name>/<name>_<number:04d>.jpg`` (LFW's naming); a name must be a plain folder name."""
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise DataError(f"{where}: person {name!r} is not a plain name (the image would leave {root})")
    return root / name / f"{name}_{number:04d}.jpg"


def read_lfw_pairs(path: str | Path, root: str | Path) -> list[Pair]:
    """LFW's ``pairs.txt``: a header ``FOLDS N`` (or ``N`` for one fold), then for each fold ``N`` genuine
    lines ``name n1 n2`` followed by ``N`` impostor lines ``name1 n1 name2 n2``.

    Returns ``FOLDS * 2N`` pairs in file order with their fold (0-based); image paths follow LFW's naming
    under ``root``. A malformed line, a genuine line among impostors (or the reverse) or a wrong count
    raises :class:`DataError` naming the file and line.
    """
    path, root = Path(path), Path(root)
    lines = [(i, line.split()) for i, line in enumerate(_read_lines(path), start=1) if line.strip()]
    if not lines:
        raise DataError(f"{path}: empty pairs file")
    header_line, header = lines[0]
    if not (1 <= len(header) <= 2 and all(h.isdecimal() and int(h) > 0 for h in header)):
        raise DataError(f"{path}, line {header_line}: expected the header 'FOLDS PAIRS' (e.g. '10 300')")
    folds, per_class = (1, int(header[0])) if len(header) == 1 else (int(header[0]), int(header[1]))
    body = lines[1:]
    if len(body) != folds * 2 * per_class:
        raise DataError(
            f"{path}: {len(body)} pair lines, expected {folds * 2 * per_class} "
            f"({folds} folds of {per_class} genuine + {per_class} impostor pairs, as the header says)"
        )
    pairs = []
    for k, (lineno, fields) in enumerate(body):
        fold, genuine = k // (2 * per_class), k % (2 * per_class) < per_class
        if genuine:
            if len(fields) != 3:
                raise DataError(
                    f"{path}, line {lineno}: expected a genuine pair 'name n1 n2' (fold {fold + 1} lists "
                    f"{per_class} genuine pairs first), got {len(fields)} fields"
                )
            name, a, b = fields
            where = f"{path}, line {lineno}"
            pair = Pair(lfw_image(root, name, _index(path, lineno, a), where),
                        lfw_image(root, name, _index(path, lineno, b), where), 1, fold)  # fmt: skip
        else:
            if len(fields) != 4:
                raise DataError(
                    f"{path}, line {lineno}: expected an impostor pair 'name1 n1 name2 n2' (fold {fold + 1} "
                    f"lists {per_class} impostor pairs after its genuine ones), got {len(fields)} fields"
                )
            name1, a, name2, b = fields
            where = f"{path}, line {lineno}"
            pair = Pair(lfw_image(root, name1, _index(path, lineno, a), where),
                        lfw_image(root, name2, _index(path, lineno, b), where), 0, fold)  # fmt: skip
        pairs.append(pair)
    return pairs


_LABELS = {"1": 1, "0": 0, "same": 1, "different": 0, "genuine": 1, "impostor": 0}


def read_pair_list(path: str | Path, root: str | Path | None = None, folds: int = 10) -> list[Pair]:
    """A plain pairs list: lines ``path1 path2 label`` (label 1 / ``same`` or 0 / ``different``).

    Fields are separated by tabs when the line has any (so paths may hold spaces), else by whitespace;
    blank lines and ``#`` comments are skipped. Relative paths are taken under ``root``, or else under the
    list's folder. Pairs are dealt into ``folds`` folds, each with its share of genuine and impostor pairs
    (the k-th pair of a class in file order goes to fold ``k * folds // count``).
    """
    path = Path(path)
    base = Path(root) if root is not None else path.parent
    pairs = []
    for lineno, line in enumerate(_read_lines(path), start=1):
        text = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
        if not text.strip():
            continue
        fields = [f.strip() for f in text.split("\t") if f.strip()] if "\t" in text else text.split()
        if len(fields) != 3:
            raise DataError(f"{path}, line {lineno}: expected 'path1 path2 label', got {len(fields)} fields")
        label = _LABELS.get(fields[2].lower())
        if label is None:
            raise DataError(f"{path}, line {lineno}: label {fields[2]!r} is not 1/0 (same/different)")
        where = f"{path}, line {lineno}"
        pairs.append(Pair(inside(base, fields[0], where), inside(base, fields[1], where), label))
    if not pairs:
        raise DataError(f"{path}: no pairs")
    return assign_folds(pairs, folds)


def assign_folds(pairs: list[Pair], folds: int = 10) -> list[Pair]:
    """Deal pairs into folds per class: the k-th of ``n`` pairs of a class goes to fold ``k * folds // n``."""
    counts = {label: sum(p.label == label for p in pairs) for label in (0, 1)}
    seen = {0: 0, 1: 0}
    out = []
    for p in pairs:
        k = seen[p.label]
        seen[p.label] += 1
        out.append(Pair(p.path1, p.path2, p.label, k * folds // counts[p.label]))
    return out


def build_pairs(items: list[tuple[Path, str]], seed: int = 0, folds: int = 10, max_genuine: int = 3000) -> list[Pair]:
    """All genuine pairs among ``items`` (``(path, person)``; a seeded sample of ``max_genuine`` when there
    are more) and as many impostor pairs drawn without replacement (seeded) from all the impostor pairs;
    dealt into ``folds`` folds per class (so the pairs of one person mostly share a fold). Genuine pairs
    come first, both classes in a fixed order.

    ORL's ten unseen people with ten images each give 450 genuine and 450 impostor pairs.
    """
    rng = random.Random(seed)
    by_person: dict[str, list[int]] = {}
    for i, (_, person) in enumerate(items):
        by_person.setdefault(person, []).append(i)
    genuine = [(a, b) for members in by_person.values() for a, b in itertools.combinations(members, 2)]
    n = len(items)
    impostor_total = n * (n - 1) // 2 - len(genuine)
    if not genuine or not impostor_total:
        raise DataError("need at least two people and two images of one person to build verification pairs")
    if len(genuine) > max_genuine:
        genuine = sorted(rng.sample(genuine, max_genuine))
    count = min(len(genuine), impostor_total)
    if impostor_total <= 2_000_000:  # enumerate them all, then sample
        every = [(i, j) for i in range(n) for j in range(i + 1, n) if items[i][1] != items[j][1]]
        impostors = sorted(every[k] for k in rng.sample(range(len(every)), count))
    else:  # too many to list: draw at random until enough distinct ones
        chosen: set[tuple[int, int]] = set()
        while len(chosen) < count:
            i, j = sorted(rng.sample(range(n), 2))
            if items[i][1] != items[j][1]:
                chosen.add((i, j))
        impostors = sorted(chosen)
    pairs = [Pair(items[i][0], items[j][0], 1) for i, j in genuine]
    pairs += [Pair(items[i][0], items[j][0], 0) for i, j in impostors]
    return assign_folds(pairs, folds)


def try_build_pairs(items: list[tuple[Path, str]]) -> list[Pair]:
    """:func:`build_pairs` of ``items``, or no pairs where they give none (one person, one image each)."""
    try:
        return build_pairs(items) if items else []
    except DataError:
        return []


def check_images_exist(pairs: list[Pair], source: str | Path) -> None:
    """Raise :class:`DataError` listing the first missing images of ``pairs`` (read from ``source``)."""
    missing = sorted({str(p) for pair in pairs for p in (pair.path1, pair.path2) if not p.is_file()})
    if missing:
        shown = ", ".join(missing[:3]) + (f" ... ({len(missing)} in all)" if len(missing) > 3 else "")
        raise DataError(f"{source}: images not found: {shown}")
