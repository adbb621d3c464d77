"""Face verification with the LightCNN models: identity training, embeddings, pair verification.

Training is identity classification on an identity folder (one subfolder per person), with the official
LightCNN recipe by default (SGD lr 0.01, momentum 0.9, weight decay 1e-4, the learning rate times 0.457
every 10 epochs, batch 128, the official learning-rate multipliers) and softmax, AM-softmax or ArcFace.
``--init`` fine-tunes from a released checkpoint (:func:`lcnn.load_lightcnn`) with a fresh classifier.

Testing: the people of the identity folder left out of training (``--people``; ORL: ``s31-s40``) give all
their genuine pairs and as many impostor pairs; the best checkpoint is scored on them (10-fold accuracy,
EER, TAR at FAR 1 % and 0.1 %, ROC), and on the held-out images of the training people.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lcnn.data.faces import list_faces, list_identities
from lcnn.data.images import IMAGE_SUFFIXES
from lcnn.data.pairs import check_images_exist, read_pairs, try_build_pairs
from lcnn.errors import DataError, UserError
from lcnn.inference import calibration_subset
from lcnn.io import atomic_path, atomic_write, write_json
from lcnn.models import load_lightcnn, model_info
from lcnn.models.pretrained import released_architectures
from lcnn.precision import min_cosine
from lcnn.tasks.common import predict_precision
from lcnn.tasks.face.data import data_root
from lcnn.tasks.face.module import FaceModule
from lcnn.tasks.face.spec import FaceSpec
from lcnn.tasks.face.verification import (
    cosine_scores,
    embed_images,
    held_out_metrics,
    pair_scores,
    unit,
    verification_metrics,
    write_verification,
)


class FaceTask(FaceSpec):
    """Identity training and pair verification with the LightCNN models."""

    def data_settings(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """The model's input channels (1 grey, 3 for LightCNN-V4's BGR)."""
        return {"channels": model_info(cfg["model"], task=self.name).input_channels}

    def build(self, cfg: dict[str, Any]) -> tuple[Any, Any]:
        """The module and data; ``init`` loads a released checkpoint's weights, keeping the fresh classifier."""
        module, datamodule = super().build(cfg)
        if cfg.get("init"):
            released = _read_released(cfg["init"], module.hparams.model, module.model.num_classes)
            state = released.state_dict()
            state.update({k: v for k, v in module.model.state_dict().items() if k.startswith("fc2.")})
            module.model.load_state_dict(state)
        return module, datamodule

    def test(self, trainer: Any, module: Any, datamodule: Any, run_dir: Path) -> dict[str, Any]:
        """Score the best checkpoint: the held-out images of the training people (``val_*``) and pairs of the
        left-out people (``test_*``, with ``test_scores.txt`` and ``test_roc.png`` in the run folder; with
        ``no_face.txt`` naming the photos ``--align`` left out)."""
        trainer.test(module, datamodule, ckpt_path="best", verbose=False)
        if not trainer.is_global_zero:
            return {}
        metrics = held_out_metrics(module, *module.test_embeddings[0])
        threshold = _stored_threshold(module)
        metrics["threshold"] = threshold
        if datamodule.no_face:  # listed in the run folder, as `lcnn faces align` lists them in faces.csv
            listing = "".join(f"{path}\n" for path in datamodule.no_face)
            atomic_write(Path(run_dir) / "no_face.txt", lambda tmp: tmp.write_text(listing))
            metrics["photos_without_face"] = len(datamodule.no_face)
        if datamodule.test_pairs:
            features = module.test_embeddings[1][0].numpy()
            scores = pair_scores(datamodule.test_images, features, datamodule.test_pairs)
            result = verification_metrics(scores, datamodule.test_pairs, threshold)
            result.pop("stored_threshold", None)
            metrics.update({f"test_{k}": v for k, v in result.items()})
            people = len({name for _, name in datamodule.test_items})
            write_verification(Path(run_dir), datamodule.test_pairs, scores, f"{people} unseen people", "test_")
        return metrics

    def load_released(self, path: Path, arch: str) -> Any:
        """A released LightCNN checkpoint (``.pth.tar``, :func:`lcnn.load_lightcnn`) as an embedder for
        ``lcnn evaluate / predict / verify --model ARCH``: no classifier and no stored threshold."""
        if arch not in released_architectures():
            raise UserError(f"--model {arch!r}: a released checkpoint needs a LightCNN model "
                            f"({', '.join(released_architectures())})")  # fmt: skip
        released = _read_released(path, arch, num_classes=0)
        module = FaceModule(model=arch, num_classes=0)
        module.model.load_state_dict(released.state_dict())
        return module.eval()

    def evaluate(self, module: Any, cfg: dict[str, Any], out_dir: Path, pairs: str | None = None,
                 data: str | None = None, data_dir: str | None = None,
                 batch_size: int | None = None, align: bool | None = None) -> dict[str, Any]:  # fmt: skip
        """Verification on pairs; writes ``metrics.json``, ``scores.txt`` and ``roc.png``.

        The pairs are ``pairs`` (LFW ``pairs.txt`` with ``data_dir`` as its image root, or a plain
        ``path1 path2 label`` list), else built from identity folder ``data`` (all its people), else from the
        training data's people left out of training. Returns 10-fold accuracy, EER, TAR at FAR 1 % / 0.1 %,
        and the accuracy at the stored threshold.
        """
        _set_align(module, align)
        out_dir = Path(out_dir)
        if pairs:
            pair_list = read_pairs(pairs, data_dir)
            check_images_exist(pair_list, pairs)
            source = str(pairs)
        elif data:
            pair_list = try_build_pairs(list_faces(data_root(data, data_dir)))
            source = data
        else:
            root = data_root(cfg.get("data", self.default_data), data_dir or cfg.get("data_dir"))
            trained = set(module.hparams.classes or [])
            pair_list = try_build_pairs(list_faces(root, [p for p in list_identities(root) if p not in trained]))
            source = f"{root} (people not trained on)"
        if not pair_list:
            raise UserError(f"{source}: no verification pairs (give --pairs FILE, with --data-dir for LFW's format)")
        scores = cosine_scores(module, pair_list, batch_size or 64)
        metrics = {"pairs_source": source, **verification_metrics(scores, pair_list, _stored_threshold(module))}
        write_verification(out_dir, pair_list, scores, Path(source).name)
        write_json(out_dir / "metrics.json", metrics)
        return metrics

    def predict(self, module: Any, cfg: dict[str, Any], files: list[Path], out_dir: str | None = None,
                int8: bool | None = None, batch_size: int | None = None,
                align: bool | None = None) -> list[str]:  # fmt: skip
        """Embed face images: ``embeddings.npy`` (``(N, 256)`` float32, row i = image i) and ``embeddings.txt``
        (image i's path on line i) in ``out_dir`` (default: the current folder), both written atomically.
        With ``int8`` the model runs in int8 (:func:`lcnn.inference.quantize_int8`), calibrated on up to 64 of
        the images, spread over the list; ``None``: where the precision probe finds int8 the fastest here and
        it agrees with fp32 on the first batch (:func:`lcnn.tasks.common.predict_precision`).

        Returns one line per image: ``path<TAB>row<TAB>nearest training identity<TAB>its probability`` (an
        embedder without classifier: ``path<TAB>row``).
        """
        _set_align(module, align)
        out = Path(out_dir or ".")
        paths = _expand(files)
        batch_size = batch_size or 64
        transform = module.transform(train=False)
        precision = predict_precision(self.name, module, int8,
                                      lambda: torch.stack([transform.load(p) for p in calibration_subset(paths, 64)]),
                                      lambda: torch.stack([transform.load(p) for p in paths[:batch_size]]), min_cosine)
        emb = embed_images(module, paths, batch_size, precision=precision)
        with atomic_path(out / "embeddings.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, emb)
        atomic_write(out / "embeddings.txt", lambda tmp: tmp.write_text("".join(f"{p}\n" for p in paths)))
        if module.head is None and not module.model.num_classes:  # an embedder (a released checkpoint): no classes
            return [f"{p}\t{i}" for i, p in enumerate(paths)]
        with torch.inference_mode():
            probs = module.logits(torch.from_numpy(emb).to(module.device)).float().softmax(1).cpu()
        classes = module.hparams.classes or [str(i) for i in range(probs.shape[1])]
        best, index = probs.max(1)
        rows = enumerate(zip(paths, best.tolist(), index.tolist()))
        return [f"{p}\t{i}\t{classes[k]}\t{v:.4f}" for i, (p, v, k) in rows]

    def verify(self, module: Any, cfg: dict[str, Any], image1: Path, image2: Path,
               threshold: float | None = None, align: bool | None = None) -> str:  # fmt: skip
        """Cosine similarity of two face images and a same / different decision, at ``threshold`` when given,
        else the one stored at training (EER on held-out images)."""
        _set_align(module, align)
        emb = unit(embed_images(module, [Path(image1), Path(image2)]))
        similarity = float(emb[0] @ emb[1])
        source = "given"
        if threshold is None:
            threshold, source = _stored_threshold(module), "stored at training"
            if threshold is None:
                raise UserError("this checkpoint stores no verification threshold; give one with --threshold")
        decision = "same person" if similarity >= threshold else "different people"
        places = _places_apart(similarity, threshold)
        return f"cosine similarity {similarity:.{places}f}: {decision} (threshold {threshold:.{places}f}, {source})"

    def example_input(self, module: Any) -> Any:
        """A ``(1, C, 128, 128)`` batch for export."""
        return torch.rand(1, module.channels, 128, 128)


def _set_align(module: Any, align: bool | None) -> None:
    """``--align`` / ``--no-align`` over what the checkpoint was trained with."""
    if align is not None:
        module.hparams.align = bool(align)


def _places_apart(a: float, b: float) -> int:
    """Decimal places (at least 6, as score files print scores) that print ``a`` and ``b`` as different numbers,
    where they differ."""
    return next((p for p in range(6, 17) if f"{a:.{p}f}" != f"{b:.{p}f}"), 6)


def _stored_threshold(module: Any) -> float | None:
    value = float(module.threshold)
    return value if math.isfinite(value) else None


def _read_released(path: str | Path, arch: str, num_classes: int) -> Any:
    """:func:`lcnn.load_lightcnn`, its errors (a missing file, keys that do not fit) as user errors."""
    try:
        return load_lightcnn(path, arch, num_classes=num_classes)
    except (OSError, ValueError) as err:  # FileNotFoundError, CheckpointError
        raise UserError(str(err)) from None


def _expand(files: list[str | Path]) -> list[Path]:
    """Files as given; a folder stands for its images (recursively, sorted)."""
    paths: list[Path] = []
    for f in map(Path, files):
        if f.is_dir():
            found = sorted(p for p in f.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataError(f"{f}: no images in this folder")
            paths.extend(found)
        else:
            paths.append(f)
    if not paths:
        raise UserError("no face images given")
    return paths
