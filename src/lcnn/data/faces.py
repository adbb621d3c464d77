"""Face data: identity folders, LightCNN preprocessing, verification pairs (LFW ``pairs.txt`` and plain lists).

- An *identity folder* has one subfolder per person holding that person's images (ORL's ``s1 .. s40``,
  LFW's ``Aaron_Eckhart/Aaron_Eckhart_0001.jpg`` ...). :func:`list_faces` lists it, optionally for a subset
  of people given as ``s1-s30``, ``alice,bob`` or a file of names (:func:`select_people`).
- :class:`FaceTransform` is the official LightCNN preprocessing: grey (or BGR for V4), resized so that a
  144x144 crop is available, a random 128x128 crop and horizontal flip in training, the centre crop in
  evaluation.
- A verification pair is a :class:`Pair` of two image paths, a label (1 genuine, 0 impostor) and a fold.
  :func:`read_pairs` reads LFW's ``pairs.txt`` format or a plain ``path1 path2 label`` list;
  :func:`build_pairs` makes all genuine and as many impostor pairs among a set of faces (ORL protocol).
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from lcnn.data.images import IMAGE_SUFFIXES, open_image
from lcnn.errors import DataError

__all__ = [
    "FaceDataset",
    "FaceTransform",
    "Pair",
    "assign_folds",
    "build_pairs",
    "list_faces",
    "list_identities",
    "read_lfw_pairs",
    "read_pair_list",
    "read_pairs",
    "select_people",
    "split_per_identity",
]

CROP = 128  # the LightCNN input side
RESIZE = 144  # the side of the official aligned training images, randomly cropped to 128


# --------------------------------------------------------------------------------------------------
# Identity folders
# --------------------------------------------------------------------------------------------------


def _natural_key(name: str) -> tuple:
    """Sort key putting ``s2`` before ``s10``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def list_identities(root: str | Path) -> list[str]:
    """The people of an identity folder: its subfolders holding at least one image, in natural order."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such identity folder (expected one subfolder of face images per person)")
    people = [
        p.name
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and any(_is_image(f) for f in p.iterdir())
    ]
    if not people:
        raise DataError(f"{root}: no identity subfolders with images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return sorted(people, key=_natural_key)


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def select_people(spec: str | None, available: list[str]) -> list[str]:
    """The people named by ``spec`` among ``available`` (all of them when ``spec`` is None or empty).

    ``spec`` is a comma-separated list of names and ranges (``s1-s30``: the names ``s1`` .. ``s30``, which
    share a prefix and end in numbers), or the path of a text file with one name per line (``#`` comments).
    A name that is not in ``available`` raises :class:`DataError`.
    """
    if not spec:
        return list(available)
    path = Path(spec)
    if path.is_file():
        lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
        wanted = [line for line in lines if line]
        where = f"{path}: "
    else:
        wanted = []
        for item in (part.strip() for part in spec.split(",")):
            if item:
                wanted.extend(_expand_range(item, available))
        where = ""
    known = set(available)
    missing = [name for name in wanted if name not in known]
    if missing:
        shown = ", ".join(missing[:5]) + (f" ... ({len(missing)} in all)" if len(missing) > 5 else "")
        raise DataError(f"{where}people not in the identity folder: {shown}")
    if not wanted:
        raise DataError(f"{where or repr(spec) + ': '}no people selected")
    return list(dict.fromkeys(wanted))


def _expand_range(item: str, available: list[str]) -> list[str]:
    """``s1-s30`` -> ``[s1, ..., s30]``; any other item (``Jean-Pierre``) is a plain name."""
    if item in available:
        return [item]
    match = re.fullmatch(r"(.*?)(\d+)-(.*?)(\d+)", item)
    if match and match.group(1) == match.group(3):
        prefix, first, last = match.group(1), int(match.group(2)), int(match.group(4))
        if first <= last:
            return [f"{prefix}{i}" for i in range(first, last + 1)]
    return [item]


def list_faces(root: str | Path, people: list[str] | None = None) -> list[tuple[Path, str]]:
    """``(image path, person)`` for every image of ``people`` (default: everyone) in the identity folder."""
    root = Path(root)
    people = list_identities(root) if people is None else people
    items = []
    for person in people:
        folder = root / person
        if not folder.is_dir():
            raise DataError(f"{folder}: no such identity subfolder")
        files = sorted((f for f in folder.iterdir() if _is_image(f)), key=lambda f: _natural_key(f.name))
        items.extend((f, person) for f in files)
    if not items:
        raise DataError(f"{root}: no face images for the selected people")
    return items


def split_per_identity(
    items: list[tuple[Path, str]], val_fraction: float, seed: int = 0
) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    """Hold out ``round(val_fraction * n)`` images of each person with ``n >= 2`` images (at least one, at
    most ``n - 1``) for validation; the same split for every training seed. Returns ``(train, val)``."""
    by_person: dict[str, list[tuple[Path, str]]] = {}
    for item in items:
        by_person.setdefault(item[1], []).append(item)
    rng = random.Random(seed)
    train, val = [], []
    for person_items in by_person.values():
        n = len(person_items)
        k = 0 if n < 2 or val_fraction <= 0 else min(n - 1, max(1, round(val_fraction * n)))
        held = set(rng.sample(range(n), k))
        for i, item in enumerate(person_items):
            (val if i in held else train).append(item)
    return train, val


# --------------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------------


@dataclass
class FaceTransform:
    """The official LightCNN preprocessing of one image.

    Grey (``channels=1``, as ``ToTensor`` of an 8-bit grey image) or BGR (``channels=3``, LightCNN-V4's
    OpenCV order); the shorter side is resized to ``resize`` (bilinear) and the centre ``resize`` square
    kept, then a ``crop`` square is cut: at random with a random horizontal flip when ``train``, in the
    centre otherwise. An image of exactly ``crop x crop`` pixels in evaluation is taken as it is (the
    official test images are the 128x128 centre crops of the 144x144 aligned faces).

    ``__call__``: a Pillow image -> float32 ``(channels, crop, crop)`` in [0, 1].
    """

    crop: int = CROP
    resize: int = RESIZE
    channels: int = 1
    train: bool = False

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (BGR), got {self.channels}")
        if self.resize < self.crop:
            raise ValueError(f"resize ({self.resize}) must be at least the crop ({self.crop})")

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("L" if self.channels == 1 else "RGB")
        if self.train or image.size != (self.crop, self.crop):
            image = self._square(image)
        array = np.asarray(image, dtype=np.uint8)
        x = torch.from_numpy(array[None].copy() if self.channels == 1 else array[:, :, ::-1].transpose(2, 0, 1).copy())
        side = x.shape[-1]
        if self.train:
            top, left = (int(v) for v in torch.randint(0, side - self.crop + 1, (2,)))
        else:
            top = left = (side - self.crop) // 2
        x = x[:, top : top + self.crop, left : left + self.crop]
        if self.train and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x.float().div_(255)

    def _square(self, image: Image.Image) -> Image.Image:
        """Shorter side to ``resize``, then the centre ``resize x resize`` square."""
        w, h = image.size
        scale = self.resize / min(w, h)
        nw, nh = max(self.resize, round(w * scale)), max(self.resize, round(h * scale))
        if (nw, nh) != (w, h):
            image = image.resize((nw, nh), Image.BILINEAR)
        left, top = (nw - self.resize) // 2, (nh - self.resize) // 2
        return image.crop((left, top, left + self.resize, top + self.resize))

    def load(self, path: str | Path) -> torch.Tensor:
        """Read ``path`` (:class:`DataError` naming it when unreadable) and preprocess it."""
        return self(open_image(Path(path)))


class FaceDataset(Dataset):
    """Face images read on demand: item ``i`` is ``(transform(image_i) (C, 128, 128), label_i)``."""

    def __init__(self, paths: list[Path], labels: list[int], transform: FaceTransform) -> None:
        if len(paths) != len(labels):
            raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
        self.paths, self.labels, self.transform = list(paths), list(labels), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform.load(self.paths[index]), self.labels[index]


# --------------------------------------------------------------------------------------------------
# Verification pairs
# --------------------------------------------------------------------------------------------------


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
    if 1 <= len(first) <= 2 and all(field.isdigit() for field in first):
        if root is None:
            raise DataError(f"{path}: an LFW pairs file needs the image folder (--data-dir ROOT)")
        return read_lfw_pairs(path, root)
    return read_pair_list(path, root)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: no such pairs file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read pairs file ({err})") from None


def _index(path: Path, lineno: int, text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise DataError(f"{path}, line {lineno}: image number {text!r} is not a positive integer")
    return int(text)


def lfw_image(root: Path, name: str, number: int) -> Path:
    """``<root>/<name>/<name>_<number:04d>.jpg`` (LFW's naming)."""
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
    if not (1 <= len(header) <= 2 and all(h.isdigit() and int(h) > 0 for h in header)):
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
            pair = Pair(lfw_image(root, name, _index(path, lineno, a)), lfw_image(root, name, _index(path, lineno, b)),
                        1, fold)  # fmt: skip
        else:
            if len(fields) != 4:
                raise DataError(
                    f"{path}, line {lineno}: expected an impostor pair 'name1 n1 name2 n2' (fold {fold + 1} "
                    f"lists {per_class} impostor pairs after its genuine ones), got {len(fields)} fields"
                )
            name1, a, name2, b = fields
            pair = Pair(lfw_image(root, name1, _index(path, lineno, a)),
                        lfw_image(root, name2, _index(path, lineno, b)), 0, fold)  # fmt: skip
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
        pairs.append(Pair(base / fields[0], base / fields[1], label))
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


def check_images_exist(pairs: list[Pair], source: str | Path) -> None:
    """Raise :class:`DataError` listing the first missing images of ``pairs`` (read from ``source``)."""
    missing = sorted({str(p) for pair in pairs for p in (pair.path1, pair.path2) if not p.is_file()})
    if missing:
        shown = ", ".join(missing[:3]) + (f" ... ({len(missing)} in all)" if len(missing) > 3 else "")
        raise DataError(f"{source}: images not found: {shown}")
