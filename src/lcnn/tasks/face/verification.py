"""Face embeddings through ``trainer.predict``, pair scores and the verification report (metrics, scores, ROC)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from lcnn.data.faces import FaceDataset
from lcnn.data.pairs import Pair, assign_folds
from lcnn.io import atomic_write
from lcnn.metrics import kfold_accuracy, pairwise_eer, roc_curve, tar_at_far, verification_eer
from lcnn.plots import plot_roc
from lcnn.tasks.common import inference_trainer


def embed_images(module: Any, paths: list[Path], batch_size: int = 64, precision: str = "fp32") -> np.ndarray:
    """Embeddings ``(N, 256)`` float32 of face images, preprocessed as in evaluation; ``precision`` as
    :func:`lcnn.tasks.common.inference_trainer`'s."""
    if not paths:
        return np.zeros((0, module.model.embedding_dim), np.float32)
    images = FaceDataset(list(paths), [0] * len(paths), module.transform(train=False))
    batches = inference_trainer(precision=precision).predict(module, DataLoader(images, batch_size=batch_size))
    return torch.cat(batches).numpy()


def unit(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length."""
    return embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)


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
