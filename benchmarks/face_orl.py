"""ORL face verification on people never seen in training: LightCNN-9 against raw pixels.

Trains ``lightcnn9`` (official 128x128 input) on people s1-s30 of the ORL faces with ``lcnn train --task face``'s
machinery, one run per seed, and scores the best checkpoint on all 450 genuine and 450 impostor pairs among
people s31-s40: 10-fold accuracy (threshold chosen on nine folds, tested on the tenth), EER, TAR at FAR 1 %.
The baselines score the same pairs by the cosine similarity of raw 46x56 pixels, mean-removed.

    python benchmarks/face_orl.py --data-dir ../shared/data/orl-faces --seeds 0 1 2

Prints a Markdown table; writes ``OUT/summary.json`` and one run folder per seed. Seeds can run in parallel
processes (``--seeds 1`` in each), then ``--reuse`` gathers the finished ones into one table. Extra ``--set KEY=VALUE``
pairs (JSON values) override the recipe, e.g. ``--set epochs=40 --set loss='"arcface"'``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lcnn.benchmark import machine_report
from lcnn.data.faces import list_faces
from lcnn.data.pairs import Pair
from lcnn.io import write_json
from lcnn.metrics.verification import kfold_accuracy, tar_at_far, verification_eer
from lcnn.tasks.face.data import FaceDataModule
from lcnn.train import resolve_config, train

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "orl-faces"


def raw_pixel_scores(pairs: list[Pair], mean_face: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarity of raw pixels downsampled to 46x56 (bilinear), each image minus its own mean (or
    minus ``mean_face`` when given). Returns ``(P,)``."""
    cache: dict[Path, np.ndarray] = {}

    def vector(path: Path) -> np.ndarray:
        if path not in cache:
            v = pixels(path)
            v = v - (v.mean() if mean_face is None else mean_face)
            cache[path] = v / np.linalg.norm(v)
        return cache[path]

    return np.array([vector(p.path1) @ vector(p.path2) for p in pairs])


def fisherface_scores(data: FaceDataModule, pairs: list[Pair], components: int = 100) -> np.ndarray:
    """Cosine similarity of Fisherfaces: PCA to ``components`` dimensions then LDA, both fitted on the 300
    images of the training people, applied to the 46x56 pixels. Returns ``(P,)``."""
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    train = list_faces(data.root, data.classes)
    x = np.stack([pixels(p) for p, _ in train])
    pca = PCA(components, random_state=0).fit(x)
    lda = LinearDiscriminantAnalysis().fit(pca.transform(x), [name for _, name in train])
    images = sorted({p for pair in pairs for p in (pair.path1, pair.path2)})
    z = lda.transform(pca.transform(np.stack([pixels(p) for p in images])))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    row = {p: i for i, p in enumerate(images)}
    return np.array([z[row[p.path1]] @ z[row[p.path2]] for p in pairs])


def pixels(path: Path) -> np.ndarray:
    """A face as a flat float64 vector of its 46x56 bilinear downsampling."""
    return np.asarray(Image.open(path).convert("L").resize((46, 56), Image.BILINEAR), np.float64).ravel()


def pair_metrics(scores: np.ndarray, pairs: list[Pair]) -> dict[str, float]:
    labels = np.array([p.label for p in pairs])
    folds = np.array([p.fold for p in pairs])
    acc, acc_std, _ = kfold_accuracy(scores, labels, folds)
    return {"test_acc": acc, "test_acc_std": acc_std, "test_eer": verification_eer(scores, labels)[0],
            "test_tar_at_far_1e-2": float(tar_at_far(scores, labels, 0.01))}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA), help="the ORL folder (s1 .. s40)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--recipe", default="small")
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine is shared)")
    parser.add_argument("--out", default="runs/face-orl")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override (JSON)")
    parser.add_argument("--baseline-only", action="store_true")
    parser.add_argument("--reuse", action="store_true",
                        help="take a seed's finished run from OUT/seed-N instead of training it again")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_report(args.threads, models=[("lightcnn9", None)]) + "\n", flush=True)
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}

    val_fraction = resolve_config("face", "orl", recipe=args.recipe, **overrides)["val_fraction"]
    data = FaceDataModule("orl", args.data_dir, "s1-s30", val_fraction)
    data.setup()
    pairs = data.test_pairs
    mean_face = np.mean([pixels(p) for p, _ in list_faces(data.root, data.classes)], axis=0)
    rows = [
        ("raw pixels 46x56, per-image mean removed", None, pair_metrics(raw_pixel_scores(pairs), pairs)),
        ("raw pixels 46x56, minus s1-s30 mean face", None, pair_metrics(raw_pixel_scores(pairs, mean_face), pairs)),
        ("PCA-100 + LDA of 46x56 pixels, fitted on s1-s30", None, pair_metrics(fisherface_scores(data, pairs), pairs)),
    ]
    baselines = len(rows)
    runs = []
    for seed in [] if args.baseline_only else args.seeds:
        run_dir = Path(args.out) / f"seed-{seed}"
        if args.reuse and (run_dir / "bench.json").exists():
            metrics = json.loads((run_dir / "bench.json").read_text())
            cfg = json.loads((run_dir / "config.json").read_text())
        else:
            os.environ.pop("LCNN_RUN_DIR", None)  # lcnn.train keeps the first run folder of a process otherwise
            cfg = resolve_config("face", "orl", recipe=args.recipe, data_dir=args.data_dir, seeds=[seed],
                                 epochs=args.epochs, out=str(run_dir), **overrides)  # fmt: skip
            started = time.perf_counter()
            metrics = train(cfg)
            metrics["wall_seconds"] = round(time.perf_counter() - started, 1)
            write_json(run_dir / "bench.json", metrics)
        runs.append(metrics)
        rows.append((f"lightcnn9, {cfg['loss']}, {cfg['epochs']} epochs", seed, metrics))
        print(f"seed {seed}: acc {metrics['test_acc']:.4f} eer {metrics['test_eer']:.4f} "
              f"({metrics['wall_seconds']:.0f} s)", flush=True)  # fmt: skip

    lines = ["| method | seed | 10-fold acc (%) | EER (%) | TAR@FAR=1% (%) | acc at stored threshold (%) | wall (s) |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, seed, m in rows:
        stored = f"{100 * m['test_acc_at_stored_threshold']:.2f}" if "test_acc_at_stored_threshold" in m else "-"
        wall = f"{m['wall_seconds']:.0f}" if "wall_seconds" in m else "-"
        lines.append(f"| {name} | {'-' if seed is None else seed} | {100 * m['test_acc']:.2f} ± "
                     f"{100 * m['test_acc_std']:.2f} | {100 * m['test_eer']:.2f} | "
                     f"{100 * m['test_tar_at_far_1e-2']:.2f} | {stored} | {wall} |")  # fmt: skip
    if len(runs) > 1:
        def mean_std(key: str) -> str:
            values = [100 * r[key] for r in runs]
            return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"

        lines.append(f"| lightcnn9, mean ± std over {len(runs)} seeds | - | {mean_std('test_acc')} | "
                     f"{mean_std('test_eer')} | {mean_std('test_tar_at_far_1e-2')} | "
                     f"{mean_std('test_acc_at_stored_threshold')} | "
                     f"{statistics.fmean(r['wall_seconds'] for r in runs):.0f} |")  # fmt: skip
    print(f"\nORL: train s1-s30 ({len(data.train_items)} images, {len(data.val_items)} held out), "
          f"test pairs among s31-s40: {len(pairs)} ({sum(p.label for p in pairs)} genuine)\n")  # fmt: skip
    print("\n".join(lines))
    write_json(Path(args.out) / "summary.json", {"baselines": {n: m for n, _, m in rows[:baselines]}, "runs": runs,
                                                 "table": lines, "args": vars(args)})  # fmt: skip


if __name__ == "__main__":
    main()
