"""The one face path (decode -> :class:`~lcnn.data.faces.FaceTransform` -> the module's embedding -> cosine) of
``predict``, ``verify``, ``evaluate``, ``/v1/embed`` and ``/v1/verify``; pair scores and the verification
report (metrics, scores, ROC)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from lcnn.data.faces import FaceTransform
from lcnn.data.images import open_image
from lcnn.data.pairs import Pair, assign_folds
from lcnn.io import atomic_write
from lcnn.metrics import kfold_accuracy, pairwise_eer, roc_curve, tar_at_far, verification_eer
from lcnn.plots import plot_roc
from lcnn.tasks.common import inference_trainer

__all__ = ["cosine_similarity", "cosine_scores", "embed_faces", "embed_images", "face_input", "pair_scores", "unit",
           "verification_metrics", "write_verification"]


def face_input(transform: FaceTransform, image: str | Path | Image.Image,
               name: str | Path | None = None) -> torch.Tensor:  # fmt: skip
    """The model's input ``(C, 128, 128)`` of one face: an image file (read, a DataError naming it when it cannot
    be) or a decoded Pillow image, through the model's own preprocessing (``module.transform(train=False)``:
    alignment where the model was trained on aligned photos, then the official crop). The one preprocessing of
    every face path."""
    if isinstance(image, Image.Image):
        return transform(image, name or "image")
    return transform(open_image(Path(image)), image)


def embed_faces(module: Any, inputs: torch.Tensor) -> np.ndarray:
    """Embeddings ``(N, D)`` float32 of a batch of :func:`face_input` tensors, by the module's ``predict_step``
    (as ``embed_images`` runs it), in eval and inference mode, on the module's device."""
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            return module.predict_step(inputs.to(module.device), 0).float().cpu().numpy()
    finally:
        module.train(was_training)


class _Faces(Dataset):
    def __init__(self, images: Sequence[str | Path | Image.Image], transform: FaceTransform) -> None:
        self.images, self.transform = list(images), transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return face_input(self.transform, self.images[i])


def embed_images(module: Any, images: Sequence[str | Path | Image.Image], batch_size: int = 64,
                 precision: str = "fp32", normalize: bool = False) -> np.ndarray:  # fmt: skip
    """Embeddings ``(N, D)`` float32 of face images (files or decoded Pillow images; :func:`face_input`) through
    ``trainer.predict`` (any device; ``precision`` as :func:`lcnn.tasks.common.inference_trainer`'s), each row
    scaled to unit length with ``normalize``. The scores of :func:`embed_faces` on the same images."""
    if not len(images):
        return np.zeros((0, module.model.embedding_dim), np.float32)
    faces = _Faces(images, module.transform(train=False))
    batches = inference_trainer(precision=precision).predict(module, DataLoader(faces, batch_size=batch_size))
    emb = torch.cat(batches).float().numpy()
    return unit(emb) if normalize else emb


def unit(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length."""
    return embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The cosine similarity of two embeddings (any length): the number ``verify`` and ``/v1/verify`` report."""
    a, b = unit(np.asarray(a, dtype=np.float64)[None]), unit(np.asarray(b, dtype=np.float64)[None])
    return float(a[0] @ b[0])


def pair_scores(images: list[Path], embeddings: np.ndarray, pairs: list[Pair]) -> np.ndarray:
    """Cosine similarity ``(P,)`` of each pair, from the embeddings of ``images`` (each pair's images among them)."""
    emb = unit(embeddings)
    row = {p: i for i, p in enumerate(images)}
    a = np.array([row[pair.path1] for pair in pairs])
    b = np.array([row[pair.path2] for pair in pairs])
    return np.sum(emb[a] * emb[b], axis=1)


def cosine_scores(module: Any, pairs: list[Pair], batch_size: int = 64) -> np.ndarray:
    """Cosine similarity ``(P,)`` of each pair's embeddings (each distinct image embedded once)."""
    images = list(dict.fromkeys(p for pair in pairs for p in (pair.path1, pair.path2)))
    return pair_scores(images, embed_images(module, images, batch_size), pairs)


def verification_metrics(scores: np.ndarray, pairs: list[Pair], stored_threshold: float | None = None) -> dict:
    """10-fold accuracy (threshold chosen on the other folds), EER, TAR at FAR 1 % / 0.1 % of pair scores.

    ``pairs`` give the labels and folds (pairs with fewer than two folds are dealt into ten); with a
    ``stored_threshold`` the accuracy at that fixed threshold is reported too.
    """
    if len({p.fold for p in pairs}) < 2:
        pairs = assign_folds(pairs, 10)
    labels = np.array([p.label for p in pairs])
    folds = np.array([p.fold for p in pairs])
    acc, acc_std, thresholds = kfold_accuracy(scores, labels, folds)
    eer, eer_threshold = verification_eer(scores, labels)
    tar = tar_at_far(scores, labels, [0.01, 0.001])
    metrics = {
        "acc": acc,
        "acc_std": acc_std,
        "eer": eer,
        "eer_threshold": eer_threshold,
        "threshold": float(np.median(thresholds)),
        "tar_at_far_1e-2": float(tar[0]),
        "tar_at_far_1e-3": float(tar[1]),
        "pairs": len(pairs),
        "genuine_pairs": int(labels.sum()),
        "folds": int(len(np.unique(folds))),
    }
    if stored_threshold is not None and math.isfinite(stored_threshold):
        metrics["stored_threshold"] = stored_threshold
        metrics["acc_at_stored_threshold"] = float(np.mean((scores >= stored_threshold) == labels))
    return metrics


def held_out_metrics(module: Any, features: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """Identity accuracy, loss and pair EER of the held-out images of the training people."""
    with torch.inference_mode():
        x, y = features.to(module.device), labels.to(module.device)
        logits = module.logits(x).cpu()
        loss = F.cross_entropy(module.logits(x, y).cpu(), labels)
    metrics: dict[str, Any] = {"val_acc": float((logits.argmax(1) == labels).float().mean()), "val_loss": float(loss),
                               "val_images": len(labels)}  # fmt: skip
    result = pairwise_eer(features.numpy(), labels.numpy())
    if result is not None:
        metrics["val_eer"] = result[0]
    return metrics


def write_verification(out_dir: Path, pairs: list[Pair], scores: np.ndarray, title: str, prefix: str = "") -> None:
    """``{prefix}scores.txt`` (``path1 path2 label fold score`` per pair) and ``{prefix}roc.png``, atomically."""
    lines = [f"{p.path1}\t{p.path2}\t{p.label}\t{p.fold}\t{s:.6f}" for p, s in zip(pairs, scores)]
    atomic_write(out_dir / f"{prefix}scores.txt", lambda tmp: tmp.write_text("\n".join(lines) + "\n"))
    far, tar, _ = roc_curve(scores, [p.label for p in pairs])
    plot_roc(far, tar, out_dir / f"{prefix}roc.png", label=title, title="Face verification ROC")
