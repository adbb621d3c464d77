"""``lcnn faces align``: a folder of photos to a folder of aligned faces, a CSV of what was found and a
contact sheet to check it by eye.

The output keeps the input's layout (an identity folder stays one), every face saved as PNG under the
photo's name. ``faces.csv`` has a row per face found (box, score, the five points, the aligned file; the
subject, the largest face, is the one aligned unless ``all_faces``) and a ``no face`` row per photo without
one, so that nothing is dropped silently. ``landmarks`` (a CSV in the same columns, from another detector)
replaces detection for the photos it lists.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from lcnn.errors import DataError, UserError
from lcnn.faces.align import ALIGNED, EYE_TO_MOUTH, EYE_Y, align_faces
from lcnn.faces.mtcnn import MTCNN, Faces
from lcnn.io import atomic_path, atomic_write

__all__ = ["COLUMNS", "AlignSummary", "align_folder", "list_photos", "read_landmarks"]

SUFFIXES = {".png", ".jpg", ".jpeg", ".pgm", ".ppm", ".bmp", ".tif", ".tiff", ".webp"}
POINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
COLUMNS = ("image", "face", "status", "score", "x1", "y1", "x2", "y2",
           *(f"{p}_{a}" for p in POINTS for a in "xy"), "aligned")  # fmt: skip
SHEET_TILES = 60  # photos shown on the contact sheet (the CSV lists them all)


@dataclass
class AlignSummary:
    photos: int = 0
    faces: int = 0
    aligned: int = 0
    no_face: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def list_photos(root: Path) -> list[Path]:
    """The images under ``root`` (recursively, hidden files left out), in path order."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))  # fmt: skip


def read_landmarks(path: Path) -> dict[str, np.ndarray]:
    """Given points per photo (``image`` relative to the input folder, the ten ``*_x`` / ``*_y`` columns of
    :data:`COLUMNS`): ``{image: (n, 5, 2)}``."""
    try:
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the landmarks ({err})") from None
    names = [f"{p}_{a}" for p in POINTS for a in "xy"]
    out: dict[str, list[np.ndarray]] = {}
    for line, row in enumerate(rows, start=2):
        if row.get("status", "ok") not in ("ok", ""):
            continue
        try:
            out.setdefault(row["image"], []).append(np.array([float(row[n]) for n in names]).reshape(5, 2))
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{path}:{line}: expected the columns image, {', '.join(names)} with numbers") from None
    return {k: np.stack(v) for k, v in out.items()}


def align_folder(in_dir: str | Path, out_dir: str | Path, size: int = 144, colour: bool = False,
                 all_faces: bool = False, landmarks: str | Path | None = None, detector: MTCNN | None = None,
                 batch: int = 16) -> AlignSummary:  # fmt: skip
    """Align every photo of ``in_dir`` into ``out_dir`` (see the module's doc); returns the counts."""
    in_dir, out_dir = Path(in_dir).resolve(), Path(out_dir).resolve()
    if not in_dir.is_dir():
        raise UserError(f"{in_dir}: no such folder of photos")
    if out_dir == in_dir or in_dir in out_dir.parents or out_dir in in_dir.parents:
        raise UserError(f"{out_dir}: the output folder must be outside the input folder {in_dir} (and not hold it)")
    photos = list_photos(in_dir)
    if not photos:
        raise UserError(f"{in_dir}: no images ({', '.join(sorted(SUFFIXES))})")
    given = read_landmarks(Path(landmarks)) if landmarks else {}
    detector = detector or (MTCNN() if len(given) < len(photos) else None)
    summary, rows, tiles = AlignSummary(photos=len(photos)), [], []
    for start in range(0, len(photos), batch):
        chunk = photos[start : start + batch]
        arrays: dict[Path, np.ndarray] = {}
        for path in chunk:
            try:
                with Image.open(path) as im:
                    arrays[path] = np.asarray(im.convert("RGB"))
            except (OSError, UnidentifiedImageError, ValueError) as err:
                summary.unreadable.append(str(path.relative_to(in_dir)))
                rows.append({"image": str(path.relative_to(in_dir)), "status": f"unreadable ({err})"})
        todo = [p for p in arrays if str(p.relative_to(in_dir)) not in given]
        found = dict(zip(todo, detector.detect([arrays[p] for p in todo]))) if todo else {}
        for path, array in arrays.items():
            name = str(path.relative_to(in_dir))
            faces = found[path] if path in found else _given_faces(given[name])
            kept = range(len(faces)) if all_faces else ([faces.largest()] if len(faces) else [])
            outputs, shown = {}, None
            for k in kept:
                suffix = f"_{k}" if all_faces else ""
                target = (out_dir / name).with_name(f"{path.stem}{suffix}.png")
                face = align_faces(array, faces.points[k], colour=colour, size=size)
                shown = face if shown is None or k == faces.largest() else shown
                with atomic_path(target) as tmp:
                    Image.fromarray(face).save(tmp, format="PNG")
                outputs[k] = str(target.relative_to(out_dir))
            summary.faces += len(faces)
            summary.aligned += len(outputs)
            if not len(faces):
                summary.no_face.append(name)
                rows.append({"image": name, "status": "no face"})
            for k in range(len(faces)):
                rows.append(_row(name, k, faces, outputs.get(k, "")))
            if len(tiles) < SHEET_TILES:
                tiles.append((array, faces, shown))
    atomic_write(out_dir / "faces.csv", lambda tmp: _write_csv(tmp, rows))
    atomic_write(out_dir / "contact_sheet.png", lambda tmp: contact_sheet(tiles, size).save(tmp, format="PNG"))
    return summary


def _given_faces(points: np.ndarray) -> Faces:
    lo, hi = points.min(1), points.max(1)
    return Faces(np.concatenate([lo, hi], 1).astype(np.float32), np.full(len(points), np.nan, np.float32),
                 points.astype(np.float32))  # fmt: skip


def _row(name: str, k: int, faces: Faces, aligned: str) -> dict:
    values = [*faces.boxes[k], *faces.points[k].reshape(-1)]
    row = {"image": name, "face": k, "status": "ok", "score": f"{faces.scores[k]:.5f}", "aligned": aligned}
    row.update({c: f"{v:.2f}" for c, v in zip(COLUMNS[4:-1], values)})
    return row


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(rows)


def contact_sheet(tiles: list[tuple[np.ndarray, Faces, np.ndarray | None]], size: int = 144) -> Image.Image:
    """Pairs of tiles: the photo with its boxes and points, then the aligned face with the spec's lines (eye
    centre row in red, mouth row in green, the vertical middle in blue); a photo without a face has none."""
    cols = 4
    rows = max(1, -(-len(tiles) // cols))
    sheet = Image.new("RGB", (cols * 2 * size, rows * size), (40, 40, 40))
    eye = EYE_Y - (ALIGNED - size) // 2  # the 128 crop is the centre of the 144 image
    for i, (array, faces, face) in enumerate(tiles):
        x, y = (i % cols) * 2 * size, (i // cols) * size
        photo = Image.fromarray(array).convert("RGB")
        scale = size / max(photo.size)
        photo = photo.resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))))
        draw = ImageDraw.Draw(photo)
        for box, points in zip(faces.boxes * scale, faces.points * scale):
            draw.rectangle(list(box), outline=(255, 200, 0))
            for px, py in points:
                draw.ellipse([px - 1.5, py - 1.5, px + 1.5, py + 1.5], fill=(0, 255, 0))
        if not len(faces):
            draw.text((4, 4), "no face", fill=(255, 60, 60))
        sheet.paste(photo, (x, y))
        if face is not None:
            aligned = Image.fromarray(face).convert("RGB")
            draw = ImageDraw.Draw(aligned)
            draw.line([(0, eye), (size, eye)], fill=(255, 0, 0))
            draw.line([(0, eye + EYE_TO_MOUTH), (size, eye + EYE_TO_MOUTH)], fill=(0, 200, 0))
            draw.line([((size - 1) / 2, 0), ((size - 1) / 2, size)], fill=(60, 120, 255))
            sheet.paste(aligned, (x + size, y))
    return sheet

