"""Face data: identity folders, LightCNN preprocessing, verification pairs (LFW ``pairs.txt`` and plain lists).

- An *identity folder* has one subfolder per person holding that person's images (ORL's ``s1 .. s40``,
  LFW's ``Aaron_Eckhart/Aaron_Eckhart_0001.jpg`` ...). :func:`list_faces` lists it, optionally for a subset
  of people given as ``s1-s30``, ``alice,bob`` or a file of names (:func:`select_people`).
- :class:`FaceTransform` is the official LightCNN preprocessing: grey (or BGR for V4), resized so that a
  144x144 crop is available, a random 128x128 crop and horizontal flip in training, the centre crop in
  evaluation. With ``align`` it first finds the face in a photo and aligns it as the official training
  images were (:class:`lcnn.faces.aligner.Aligner`): the rule of every face path given ``--align``.

Verification pairs are in :mod:`lcnn.data.pairs`.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm import tqdm

from lcnn.data.images import IMAGE_SUFFIXES, open_image
from lcnn.errors import DataError
from lcnn.faces.aligner import Aligner
from lcnn.io import read_text

__all__ = ["FaceDataset", "FaceTransform", "list_faces", "list_identities", "locate_subjects", "select_people",
           "split_per_identity"]

CROP = 128  # the LightCNN input side
RESIZE = 144  # the side of the official aligned training images, randomly cropped to 128


# --------------------------------------------------------------------------------------------------
# Identity folders
# --------------------------------------------------------------------------------------------------


def _natural_key(name: str) -> tuple:
    """Sort key putting ``s2`` before ``s10``."""
    return tuple(int(part) if part.isdecimal() else part for part in re.split(r"(\d+)", name))


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
        lines = (line.split("#", 1)[0].strip() for line in read_text(path, "list of people").split("\n"))
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
    official test images are the 128x128 centre crops of the 144x144 aligned faces). With ``align`` the image
    is a photo: its largest face is detected and aligned to the official 144x144 image first (a photo without a
    face is a :class:`DataError` naming it); ``landmarks`` (:func:`locate_subjects`) gives the points of the
    photos it names, which are then only warped, not detected again.

    ``__call__``: a Pillow image -> float32 ``(channels, crop, crop)`` in [0, 1].
    """

    crop: int = CROP
    resize: int = RESIZE
    channels: int = 1
    train: bool = False
    align: bool = False
    landmarks: dict[str, np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (BGR), got {self.channels}")
        if self.resize < self.crop:
            raise ValueError(f"resize ({self.resize}) must be at least the crop ({self.crop})")

    def __call__(self, image: Image.Image, name: str | Path = "image") -> torch.Tensor:
        if self.align:
            image = self._aligner()(image, name)
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
        return self(open_image(Path(path)), path)

    def _aligner(self):
        if getattr(self, "_aligner_instance", None) is None:
            self._aligner_instance = Aligner(colour=self.channels == 3, landmarks=self.landmarks)
        return self._aligner_instance


def locate_subjects(paths: list[Path], batch: int = 16) -> tuple[dict[str, np.ndarray], list[str]]:
    """The subject's five points of every photo of ``paths`` (read as :class:`FaceTransform` reads them),
    detected ``batch`` at a time, once: ``({str(path): (5, 2)}, [str(path) of each photo without a face])``,
    the points for ``FaceTransform(landmarks=...)``."""
    aligner, found, missing = Aligner(), {}, []
    for start in tqdm(range(0, len(paths), batch), desc=f"detecting faces ({len(paths)} photos)", unit="batch",
                      leave=False, disable=len(paths) <= batch):  # fmt: skip
        chunk = paths[start : start + batch]
        for path, faces in zip(chunk, aligner.detect([open_image(Path(p)) for p in chunk])):
            if len(faces):
                found[str(path)] = faces.points[faces.largest()]
            else:
                missing.append(str(path))
    return found, missing


class FaceDataset(Dataset):
    """Face images read on demand: item ``i`` is ``(transform(image_i) (C, 128, 128), label_i, i)`` (the index
    puts the items of several processes back in order)."""

    def __init__(self, paths: list[Path], labels: list[int], transform: FaceTransform) -> None:
        if len(paths) != len(labels):
            raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
        self.paths, self.labels, self.transform = list(paths), list(labels), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        return self.transform.load(self.paths[index]), self.labels[index], index
