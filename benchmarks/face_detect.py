"""Detection rate and time per image of lcnn.faces.MTCNN, and where the alignment puts the landmarks.

Sets: ORL as it is (tight 92x112 crops), ORL padded (40 px of grey around), real photos (the sample photos
that scikit-image ships: two with a face, the others without any), and generated scenes (1 to 4 ORL faces of
s1..s40, scaled 0.8-2.5x and rotated up to 15 degrees, pasted on those face-free photos; a face counts as
found when a detected box's centre falls inside the pasted face's rectangle).
Alignment: every ORL face aligned, then detected again on the 144 image (framed by 60 px of black): where
its eye centre and mouth centre land (the spec: eye centre (71.5, 48), mouth centre 48 px below).

usage: python benchmarks/face_detect.py ORL_DIR SKIMAGE_DATA_DIR [--threads 1] [--batch 16]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lcnn.benchmark import machine_report
from lcnn.faces.align import align_faces
from lcnn.faces.mtcnn import MTCNN

WITH_FACE = ("astronaut.png", "camera.png")
WITHOUT = ("coffee.png", "chelsea.png", "rocket.jpg", "brick.png", "grass.png", "gravel.png", "horse.png",
           "coins.png", "moon.png", "page.png", "hubble_deep_field.jpg", "motorcycle_left.png", "retina.jpg")


def timed(detector: MTCNN, images: list[np.ndarray], batch: int) -> tuple[list, float]:
    out, start = [], time.perf_counter()
    for i in range(0, len(images), batch):
        out.extend(detector.detect(images[i : i + batch]))
    return out, (time.perf_counter() - start) / len(images)


def rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def scenes(orl: Path, backgrounds: list[np.ndarray], n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for k in range(n):
        bg = Image.fromarray(backgrounds[k % len(backgrounds)]).resize((640, 480))
        boxes, taken = [], []
        for _ in range(rng.integers(1, 5)):
            person = rng.integers(1, 41)
            face = Image.open(orl / f"s{person}" / f"{rng.integers(1, 11)}.pgm").convert("RGB")
            s = rng.uniform(0.8, 2.5)
            face = face.resize((round(92 * s), round(112 * s)), Image.BILINEAR).rotate(rng.uniform(-15, 15),
                                                                                     Image.BILINEAR, expand=False)
            for _ in range(50):  # a place that overlaps no other face
                x, y = rng.integers(0, 640 - face.width), rng.integers(0, 480 - face.height)
                box = (x, y, x + face.width, y + face.height)
                if all(box[2] < b[0] or box[0] > b[2] or box[3] < b[1] or box[1] > b[3] for b in taken):
                    break
            else:
                continue
            bg.paste(face, (int(x), int(y)))
            taken.append(box)
        boxes = taken
        yield np.asarray(bg), boxes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("orl", type=Path)
    ap.add_argument("photos", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--scenes", type=int, default=40)
    ap.add_argument("--every", type=int, default=1, help="every n-th ORL image only (a quick run)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_report(threads=args.threads))
    detector = MTCNN()
    orl = [rgb(p) for p in sorted(args.orl.glob("s*/*.pgm"))[:: args.every]]
    print("| set | images | with a face found | faces found | s / image |\n|---|---|---|---|---|")
    for name, images in (("ORL, tight 92x112", orl),
                         ("ORL, padded 172x192", [np.pad(a, ((40, 40), (40, 40), (0, 0)), constant_values=128)
                                                  for a in orl])):  # fmt: skip
        found, t = timed(detector, images, args.batch)
        hit = sum(len(f) > 0 for f in found)
        rate = f"{hit} ({100 * hit / len(images):.2f} %)"
        print(f"| {name} | {len(images)} | {rate} | {sum(map(len, found))} | {t:.4f} |")
        if name.startswith("ORL, tight"):
            tight = found
    photos = [rgb(args.photos / n) for n in WITH_FACE]
    found, t = timed(detector, photos, 1)
    print(f"| sample photos with one face ({', '.join(WITH_FACE)}) | 2 | {sum(len(f) > 0 for f in found)} | "
          f"{sum(map(len, found))} | {t:.4f} |")
    empty = [rgb(args.photos / n) for n in WITHOUT]
    found, t = timed(detector, empty, 1)
    fp = [n for n, f in zip(WITHOUT, found) if len(f)]
    print(f"| sample photos without a face | {len(empty)} | false: {len(fp)} {fp} | {sum(map(len, found))} | {t:.4f} |")
    pasted, hits, extra, times = 0, 0, 0, []
    for image, boxes in scenes(args.orl, empty, args.scenes):
        start = time.perf_counter()
        faces = detector.detect(image)[0]
        times.append(time.perf_counter() - start)
        centres = (faces.boxes[:, :2] + faces.boxes[:, 2:]) / 2
        inside = np.array([[b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for b in boxes] for cx, cy in centres])
        pasted += len(boxes)
        hits += int(inside.any(0).sum()) if len(faces) else 0
        extra += int((~inside.any(1)).sum()) if len(faces) else 0
    print(f"| generated scenes 640x480 ({args.scenes}) | {pasted} faces | {hits} ({100 * hits / pasted:.1f} %) | "
          f"{extra} boxes on no pasted face | {np.mean(times):.4f} |")
    # alignment by data: align each ORL face, detect again on the aligned image
    eyes, mouths = [], []
    for image, faces in zip(orl, tight):
        if not len(faces):
            continue
        aligned = align_faces(image, faces.points[faces.largest()], colour=True)
        # framed by 60 px so that the face does not touch the edges (the detector crops at the image border)
        again = detector.detect(np.pad(aligned, ((60, 60), (60, 60), (0, 0))))[0]
        if len(again):
            p = again.points[again.largest()] - 60
            eyes.append(p[:2].mean(0))
            mouths.append(p[3:].mean(0) - p[:2].mean(0))
    eyes, mouths = np.array(eyes), np.array(mouths)
    print(f"\nORL aligned then detected again ({len(eyes)} faces): eye centre x {eyes[:, 0].mean():.2f} ± "
          f"{eyes[:, 0].std():.2f}, y {eyes[:, 1].mean():.2f} ± {eyes[:, 1].std():.2f} (spec 71.5, 48); "
          f"eye-to-mouth {np.hypot(*mouths.T).mean():.2f} ± {np.hypot(*mouths.T).std():.2f} px (spec 48)")


if __name__ == "__main__":
    main()
