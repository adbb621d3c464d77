"""Does int8 inference keep the accuracy? fp32 against ``lcnn.inference.quantize_int8`` on trained checkpoints.

- MNIST (the article's LCNN): test accuracy on the full 10,000-image test set of ``mnist-5k``, int8
  calibrated on 256 training images.
- ORL faces (``lightcnn9`` trained on s1-s30): 10-fold verification accuracy and EER on the 900 pairs among
  s31-s40, int8 calibrated on 64 faces of the training people.

    python benchmarks/int8_accuracy.py --mnist runs/mnist/seed-*/checkpoints/best.ckpt \\
        --orl runs/face-orl/seed-*/checkpoints/best.ckpt

Prints a Markdown table (one row per checkpoint); figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from lcnn.benchmark import machine_report
from lcnn.data.images import load_images
from lcnn.inference import calibration_subset, quantize_int8
from lcnn.speed import prepare_input
from lcnn.tasks import load_task

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def mnist_rows(checkpoints: list[str], data_dir: str) -> list[str]:
    splits = load_images("mnist", data_dir)
    calibration = splits.train_images[:256].float() / 255  # the uint8 images as the task serves them
    x, y = splits.test_images.float() / 255, splits.test_labels
    rows = []
    for ckpt in checkpoints:
        model = load_task(ckpt)[0].model.eval()
        int8 = quantize_int8(model, prepare_input(calibration), run=lambda m, batch: m(batch))
        with torch.inference_mode():
            predicted = {name: torch.cat([net(prepare_input(part)).argmax(1) for part in x.split(500)])
                         for name, net in (("fp32", model), ("int8", int8))}  # fmt: skip
        accuracy = {name: float((classes == y).float().mean()) for name, classes in predicted.items()}
        agree = float((predicted["int8"] == predicted["fp32"]).float().mean())
        rows.append(f"| MNIST test accuracy | {ckpt} | {100 * accuracy['fp32']:.2f} | {100 * accuracy['int8']:.2f} | "
                    f"{100 * agree:.2f} % same class |")  # fmt: skip
    return rows


def orl_rows(checkpoints: list[str], data_dir: str) -> list[str]:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from face_orl import pair_metrics

    from lcnn.data.faces import list_faces
    from lcnn.tasks.face.data import FaceDataModule

    data = FaceDataModule("orl", data_dir, "s1-s30")
    data.setup()
    pairs = data.test_pairs
    images = sorted({p for pair in pairs for p in (pair.path1, pair.path2)})
    row = {p: i for i, p in enumerate(images)}
    training = [p for p, _ in list_faces(data.root, data.classes)]
    rows = []
    for ckpt in checkpoints:
        module = load_task(ckpt)[0]
        transform = module.transform(train=False)
        calibration = torch.stack([transform.load(p) for p in calibration_subset(training, 64)])
        faces = torch.stack([transform.load(p) for p in images])
        model = module.model.eval()
        int8 = quantize_int8(model, calibration)
        metrics, embeddings = {}, {}
        with torch.inference_mode():
            for name, net in (("fp32", model), ("int8", int8)):
                z = net.embed(faces).numpy().astype(np.float64)
                z /= np.linalg.norm(z, axis=1, keepdims=True)
                embeddings[name] = z
                scores = np.array([z[row[p.path1]] @ z[row[p.path2]] for p in pairs])
                metrics[name] = pair_metrics(scores, pairs)
        cosine = (embeddings["fp32"] * embeddings["int8"]).sum(1).min()
        for key, label in (("test_acc", "ORL 10-fold accuracy"), ("test_eer", "ORL EER")):
            rows.append(f"| {label} | {ckpt} | {100 * metrics['fp32'][key]:.2f} | {100 * metrics['int8'][key]:.2f} | "
                        f"min cosine fp32/int8 {cosine:.5f} |")  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", nargs="*", default=[], help="classification checkpoints trained on MNIST")
    parser.add_argument("--mnist-dir", default=str(SHARED / "mnist-5k"))
    parser.add_argument("--orl", nargs="*", default=[], help="face checkpoints trained on ORL s1-s30")
    parser.add_argument("--orl-dir", default=str(SHARED / "orl-faces"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = [("lcnn", (1, 28, 28))] * bool(args.mnist) + [("lightcnn9", None)] * bool(args.orl)
    print(machine_report(args.threads, models=models) + "\n", flush=True)
    lines = ["| metric (%) | checkpoint | fp32 | int8 | agreement |", "|---|---|---:|---:|---|"]
    lines += mnist_rows(args.mnist, args.mnist_dir) if args.mnist else []
    lines += orl_rows(args.orl, args.orl_dir) if args.orl else []
    print("\n".join(lines))


if __name__ == "__main__":
    main()
