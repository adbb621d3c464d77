"""Face verification with the LightCNN models: identity training, embeddings, pair verification.

Training is identity classification on an identity folder (one subfolder per person), with the official
LightCNN recipe by default (SGD lr 0.01, momentum 0.9, weight decay 1e-4, the learning rate times 0.457
every 10 epochs, batch 128, the official learning-rate multipliers) and softmax, AM-softmax or ArcFace.
``--init`` fine-tunes from a released checkpoint (:func:`lcnn.load_lightcnn`) with a fresh classifier.

Validation (our choice): a fixed fifth of each person's images (``val_fraction``) is held out. Each epoch
logs ``val_loss`` (the training loss, margin included; it picks the best checkpoint), ``val_acc`` (identity
accuracy) and ``val_eer`` over all pairs of held-out images; the EER threshold of the cosine similarity is
stored in the checkpoint (buffer ``threshold``) and is what ``lcnn verify`` uses unless given one. It comes
from people seen in training, so it is a starting point: ``lcnn evaluate`` on pairs of unseen people
reports the threshold that fits them.

Testing: the people of the identity folder left out of training (``--people``; ORL: ``s31-s40``) give all
their genuine pairs and as many impostor pairs; the best checkpoint is scored on them (10-fold accuracy,
EER, TAR at FAR 1 % and 0.1 %, ROC). Without left-out people the held-out images are reported.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from lcnn.data.augment import BatchAugment
from lcnn.data.faces import (
    CROP,
    RESIZE,
    FaceDataset,
    FaceTransform,
    Pair,
    assign_folds,
    build_pairs,
    check_images_exist,
    list_faces,
    list_identities,
    read_pairs,
    select_people,
    split_per_identity,
)
from lcnn.data.images import IMAGE_SUFFIXES
from lcnn.errors import DataError, UserError
from lcnn.io import atomic_path, atomic_write, write_json
from lcnn.layers import mfm_init
from lcnn.losses import MARGIN_DEFAULTS, MarginSoftmax
from lcnn.metrics.verification import kfold_accuracy, roc_curve, tar_at_far, verification_eer
from lcnn.models import create_model
from lcnn.tasks.common import eval_sampler, make_optimizer

NAME = "face"
MONITOR = ("val_loss", "min")
FACE_MODELS = ("lightcnn9", "lightcnn29", "lightcnn29v2", "lightcnn_v4")
LOSSES = ("softmax", *MARGIN_DEFAULTS)

# The official LightCNN training (github.com/AlfredXiangWu/LightCNN, train.py): 80 epochs of SGD, lr 0.01
# scaled by 0.457305 every 10 epochs, batch 128, random 128 crops and flips of 144x144 faces.
_OFFICIAL = {
    "epochs": 80, "batch_size": 128, "lr": 0.01, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 1e-4,
    "schedule": "step:10:0.457305", "lr_multipliers": True, "loss": "softmax", "patience": 0,
}  # fmt: skip
# A few hundred images (ORL: 240 training images of 30 people), measured in benchmarks/RESULTS-face.md:
# AM-softmax, AdamW with a one-cycle schedule (SGD at 0.01 did not start learning in 9 epochs), faces resized
# to 160 before the 128 crop (+-16 pixel shifts) and rotation / scale jitter.
_SMALL = {
    "epochs": 40, "batch_size": 32, "lr": 1e-3, "optimizer": "adamw", "weight_decay": 5e-4,
    "schedule": "onecycle", "lr_multipliers": False, "loss": "amsoftmax", "patience": 0, "image_size": 160,
    "augment": {"rotate": 15, "scale": 0.15},
}  # fmt: skip
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "article": {"default": _OFFICIAL},  # the LightCNN paper's official recipe
    "small": {"default": _SMALL},
}

TRAIN_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--loss",), {"choices": LOSSES, "default": None,
                   "help": "face task: identity loss (default softmax; small recipe amsoftmax)"}),
    (("--margin",), {"type": float, "default": None,
                     "help": "face task: margin (AM-softmax 0.35, ArcFace 0.5 radians by default)"}),
    (("--scale",), {"type": float, "default": None,
                    "help": "face task: logit scale of the margin losses (AM-softmax 30, ArcFace 64)"}),
    (("--init",), {"metavar": "PATH", "default": None,
                   "help": "face task: fine-tune from an official LightCNN checkpoint (fresh classifier)"}),
    (("--people",), {"default": None, "metavar": "SPEC",
                     "help": "face task: people to train on, e.g. s1-s30, 'alice,bob' or a file of names "
                             "(the others are the test people; orl default s1-s30)"}),
    (("--image-size",), {"type": int, "default": None, "dest": "image_size",
                         "help": "face task: side the faces are resized to before the 128x128 crop (default 144)"}),
]  # fmt: skip


def defaults(data: str, recipe: str) -> dict[str, Any]:
    """The recipe's settings (``article``: the official LightCNN training; ``small``: a few hundred images)."""
    recipes = RECIPES[recipe]
    return {
        "data": data,
        "model": "lightcnn9",
        "margin": None,
        "scale": None,
        "init": None,
        "people": "s1-s30" if data == "orl" else None,
        "image_size": RESIZE,
        "val_fraction": 0.2,
        **recipes.get(data, recipes["default"]),
    }


def data_root(data: str, data_dir: str | Path | None) -> Path:
    """The identity folder of a data name: ``orl`` (``data_dir``), ``folder:PATH`` or ``folder`` (``data_dir``)."""
    if data.startswith("folder:"):
        return Path(data.removeprefix("folder:"))
    if data in ("orl", "folder"):
        if not data_dir:
            raise DataError(f"--data {data} needs --data-dir (the identity folder{', s1 .. s40' * (data == 'orl')})")
        return Path(data_dir)
    raise DataError(f"unknown face data {data!r}; expected orl (with --data-dir) or folder:PATH (an identity folder)")


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


class FaceDataModule(L.LightningDataModule):
    """Training people's images (minus the held-out fifth for validation), and pairs of the other people.

    ``classes`` are the training people in natural order; ``test_pairs`` are all genuine and as many
    impostor pairs among the identity folder's other people (empty when fewer than two are left).
    """

    def __init__(
        self,
        data: str = "orl",
        data_dir: str | None = None,
        people: str | None = None,
        val_fraction: float = 0.2,
        batch_size: int = 128,
        num_workers: int = 0,
        image_size: int = RESIZE,
        channels: int = 1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.root = data_root(data, data_dir)
        available = list_identities(self.root)
        self.classes = select_people(people, available)
        if len(self.classes) < 2:
            raise DataError(f"{self.root}: need at least two people to train on, got {self.classes}")
        items = list_faces(self.root, self.classes)
        self.train_items, self.val_items = split_per_identity(items, val_fraction)
        if not self.val_items:
            raise DataError(f"{self.root}: no images held out for validation (needs people with two or more "
                            f"images and val_fraction > 0, got {val_fraction})")
        others = [p for p in available if p not in set(self.classes)]
        self.test_items = list_faces(self.root, others) if len(others) >= 2 else []
        self.test_pairs = _pairs_or_none(self.test_items)

    def _dataset(self, items: list[tuple[Path, str]], train: bool) -> FaceDataset:
        index = {name: i for i, name in enumerate(self.classes)}
        transform = FaceTransform(CROP, self.hparams.image_size, self.hparams.channels, train=train)
        return FaceDataset([p for p, _ in items], [index[name] for _, name in items], transform)

    def setup(self, stage: str | None = None) -> None:
        self.train_set = self._dataset(self.train_items, train=True)
        self.val_set = self._dataset(self.val_items, train=False)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True,
                          num_workers=self.hparams.num_workers, persistent_workers=self.hparams.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        if not len(self.val_set):
            return []
        return DataLoader(self.val_set, batch_size=self.hparams.batch_size, sampler=eval_sampler(self.trainer,
                          self.val_set), num_workers=self.hparams.num_workers)  # fmt: skip


def _pairs_or_none(items: list[tuple[Path, str]]) -> list[Pair]:
    try:
        return build_pairs(items) if items else []
    except DataError:  # one image per person, or a single person
        return []


# --------------------------------------------------------------------------------------------------
# The task
# --------------------------------------------------------------------------------------------------


class FaceTask(L.LightningModule):
    """Identity classification of ``(N, C, 128, 128)`` faces in [0, 1] with a LightCNN model.

    ``loss``: ``softmax`` (the model's own classifier ``fc2``, after its dropout) or ``amsoftmax`` /
    ``arcface`` (a :class:`lcnn.losses.MarginSoftmax` head on the 256-d embedding, no dropout).
    ``forward``: logits ``(N, num_classes)``; ``embed``: ``(N, 256)``. The buffer ``threshold`` holds the
    cosine-similarity threshold found on the validation pairs (NaN until validated).
    """

    task_name = NAME

    def __init__(
        self,
        model: str = "lightcnn9",
        num_classes: int = 2,
        classes: list[str] | None = None,
        loss: str = "softmax",
        margin: float | None = None,
        scale: float | None = None,
        dropout: float | None = None,
        lr: float = 0.01,
        optimizer: str = "sgd",
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        schedule: str = "none",
        lr_multipliers: bool = True,
        image_size: int = RESIZE,
        augment: dict[str, Any] | None = None,
        init: str | None = None,
        weight_init: str = "default",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if model not in FACE_MODELS:
            raise UserError(f"the face task needs a LightCNN model ({', '.join(FACE_MODELS)}), got {model!r}")
        if loss not in LOSSES:
            raise UserError(f"unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")
        kw = {} if dropout is None else {"dropout": dropout}
        self.model = create_model(model, num_classes=num_classes if loss == "softmax" else 0, **kw)
        if weight_init == "mfm":
            mfm_init(self.model)
        elif weight_init != "default":
            raise UserError(f"unknown weight_init {weight_init!r}; expected default or mfm")
        self.head = None if loss == "softmax" else MarginSoftmax(self.model.embedding_dim, num_classes, loss,
                                                                 margin, scale)  # fmt: skip
        self.augment = BatchAugment(**augment) if augment else None
        self.register_buffer("threshold", torch.tensor(float("nan")))
        self._val_features: list[torch.Tensor] = []
        self._val_labels: list[torch.Tensor] = []

    @property
    def channels(self) -> int:
        """Input channels: 1 (grey) or 3 (BGR, LightCNN-V4)."""
        return self.model.in_chans

    def transform(self, train: bool = False) -> FaceTransform:
        """The preprocessing this model was trained with."""
        return FaceTransform(CROP, self.hparams.image_size, self.channels, train=train)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, 128, 128)`` -> ``(N, 256)`` embeddings."""
        return self.model.embed(x)

    def logits(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Embeddings ``(N, 256)`` -> logits; with labels, the margin losses add their margin."""
        if self.head is None:
            return self.model.classify(features)
        return self.head(features, labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, 128, 128)`` -> logits ``(N, num_classes)``."""
        return self.logits(self.embed(x))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        if self.augment is not None:
            x = self.augment(x)
        features = self.embed(x)
        logits = self.logits(features, y)
        loss = F.cross_entropy(logits, y)
        plain = logits if self.head is None else self.logits(features.detach())  # identity accuracy: no margin
        acc = (plain.argmax(1) == y).float().mean()
        self.log_dict({"train_loss": loss, "train_acc": acc}, on_step=False, on_epoch=True, prog_bar=True,
                      batch_size=len(y))  # fmt: skip
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_features, self._val_labels = [], []

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        features = self.embed(x)
        loss = F.cross_entropy(self.logits(features, y), y)
        acc = (self.logits(features).argmax(1) == y).float().mean()
        self.log_dict({"val_loss": loss, "val_acc": acc}, on_epoch=True, prog_bar=True, batch_size=len(y),
                      sync_dist=True)  # fmt: skip
        self._val_features.append(features.detach().float().cpu())
        self._val_labels.append(y.detach().cpu())

    def on_validation_epoch_end(self) -> None:
        if not self._val_features:
            return
        features, labels = torch.cat(self._val_features), torch.cat(self._val_labels)
        if self.trainer is not None and self.trainer.world_size > 1:
            gathered: list[Any] = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(gathered, (features, labels))
            features, labels = torch.cat([f for f, _ in gathered]), torch.cat([y for _, y in gathered])
        result = held_out_verification(features, labels)
        if result is not None:
            eer, threshold = result
            self.threshold.fill_(threshold)
            self.log("val_eer", eer, prog_bar=True, sync_dist=False, rank_zero_only=True)

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self.embed(x).float()

    def configure_optimizers(self):
        hp = self.hparams
        if not hp.get("lr_multipliers", False):
            return make_optimizer(self, hp)
        # Official LightCNN: the classifier learns 10x faster, biases 2x (the classifier's 20x) without decay.
        groups: dict[tuple[float, bool], list[torch.nn.Parameter]] = {}
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            classifier = name.startswith(("model.fc2.", "head."))
            bias = name.endswith(".bias")
            factor = (20.0 if classifier else 2.0) if bias else (10.0 if classifier else 1.0)
            groups.setdefault((factor, bias), []).append(param)
        params = [{"params": ps, "lr": hp["lr"] * factor, **({"weight_decay": 0.0} if bias else {})}
                  for (factor, bias), ps in groups.items()]  # fmt: skip
        return make_optimizer(self, hp, params)


def held_out_verification(
    features: torch.Tensor, labels: torch.Tensor, limit: int = 3000
) -> tuple[float, float] | None:
    """EER and its threshold over all pairs of ``(N, D)`` embeddings with identity ``labels`` ``(N,)``
    (at most ``limit`` embeddings, a fixed sample beyond); None without genuine or impostor pairs."""
    if len(labels) > limit:
        keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[:limit]
        features, labels = features[keep], labels[keep]
    unit = F.normalize(features.float(), dim=1)
    scores = unit @ unit.T
    i, j = torch.triu_indices(len(labels), len(labels), offset=1)
    same = labels[i] == labels[j]
    if not same.any() or same.all():
        return None
    return verification_eer(scores[i, j].numpy(), same.numpy().astype(int))


def setup(cfg: dict[str, Any]) -> tuple[FaceTask, FaceDataModule]:
    """The task and its data for a resolved training config (``--init`` weights loaded here)."""
    model = cfg.get("model", "lightcnn9")
    if model not in FACE_MODELS:
        raise UserError(f"the face task needs a LightCNN model ({', '.join(FACE_MODELS)}), got {model!r}")
    channels = 3 if model == "lightcnn_v4" else 1
    data = FaceDataModule(cfg["data"], cfg.get("data_dir"), cfg.get("people"), cfg.get("val_fraction", 0.2),
                          cfg["batch_size"], cfg.get("num_workers", 0), cfg.get("image_size") or RESIZE, channels)
    task = FaceTask(
        model=model,
        num_classes=len(data.classes),
        classes=data.classes,
        loss=cfg.get("loss", "softmax"),
        margin=cfg.get("margin"),
        scale=cfg.get("scale"),
        dropout=cfg.get("dropout"),
        lr=cfg["lr"],
        optimizer=cfg.get("optimizer", "sgd"),
        momentum=cfg.get("momentum", 0.9),
        weight_decay=cfg.get("weight_decay", 0.0),
        schedule=cfg.get("schedule", "none"),
        lr_multipliers=cfg.get("lr_multipliers", False),
        image_size=cfg.get("image_size") or RESIZE,
        augment=cfg.get("augment"),
        init=cfg.get("init"),
        weight_init=cfg.get("weight_init", "default"),
    )
    if cfg.get("init"):
        _load_init(task, cfg["init"])
    return task, data


def _read_released(path: str | Path, arch: str, num_classes: int) -> torch.nn.Module:
    """:func:`lcnn.load_lightcnn`, its errors (a missing file, keys that do not fit) as user errors."""
    from lcnn.models import load_lightcnn

    try:
        return load_lightcnn(path, arch, num_classes=num_classes)
    except (OSError, ValueError) as err:  # FileNotFoundError, CheckpointError
        raise UserError(str(err)) from None


def _load_init(task: FaceTask, path: str) -> None:
    """Load a released LightCNN checkpoint into ``task.model``, keeping the task's fresh classifier."""
    released = _read_released(path, task.hparams.model, task.model.num_classes)
    state = released.state_dict()
    state.update({k: v for k, v in task.model.state_dict().items() if k.startswith("fc2.")})
    task.model.load_state_dict(state)


def from_released(path: str | Path, arch: str) -> FaceTask:
    """A released LightCNN checkpoint (``.pth.tar``, :func:`lcnn.load_lightcnn`) as an embedder task for
    ``lcnn evaluate / predict / verify --model ARCH``: no classifier and no stored threshold."""
    if arch not in FACE_MODELS:
        raise UserError(f"--model {arch!r}: a released checkpoint needs a LightCNN model ({', '.join(FACE_MODELS)})")
    released = _read_released(path, arch, num_classes=0)
    task = FaceTask(model=arch, num_classes=0)
    task.model.load_state_dict(released.state_dict())
    return task.eval()


def example_input(module: FaceTask) -> torch.Tensor:
    """A ``(1, C, 128, 128)`` batch for export."""
    return torch.rand(1, module.channels, CROP, CROP)


# --------------------------------------------------------------------------------------------------
# Embeddings and pair scoring
# --------------------------------------------------------------------------------------------------


@torch.inference_mode()
def embed_images(module: FaceTask, paths: list[Path], batch_size: int = 64) -> np.ndarray:
    """Embeddings ``(N, 256)`` float32 of face images, preprocessed as in evaluation, on the module's device."""
    module.eval()
    transform = module.transform(train=False)
    out = []
    for start in range(0, len(paths), batch_size):
        x = torch.stack([transform.load(p) for p in paths[start : start + batch_size]]).to(module.device)
        out.append(module.embed(x).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, module.model.embedding_dim), np.float32)


def cosine_scores(module: FaceTask, pairs: list[Pair], batch_size: int = 64) -> np.ndarray:
    """Cosine similarity ``(P,)`` of each pair's embeddings (each distinct image embedded once)."""
    unique = list(dict.fromkeys(p for pair in pairs for p in (pair.path1, pair.path2)))
    emb = embed_images(module, unique, batch_size)
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    row = {p: i for i, p in enumerate(unique)}
    a = np.array([row[pair.path1] for pair in pairs])
    b = np.array([row[pair.path2] for pair in pairs])
    return np.sum(emb[a] * emb[b], axis=1)


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


def write_verification(out_dir: Path, pairs: list[Pair], scores: np.ndarray, title: str, prefix: str = "") -> None:
    """``{prefix}scores.txt`` (``path1 path2 label fold score`` per pair) and ``{prefix}roc.png``, atomically."""
    from lcnn.plots import plot_roc

    lines = [f"{p.path1}\t{p.path2}\t{p.label}\t{p.fold}\t{s:.6f}" for p, s in zip(pairs, scores)]
    atomic_write(out_dir / f"{prefix}scores.txt", lambda tmp: tmp.write_text("\n".join(lines) + "\n"))
    far, tar, _ = roc_curve(scores, [p.label for p in pairs])
    plot_roc(far, tar, out_dir / f"{prefix}roc.png", label=title, title="Face verification ROC")


def _stored_threshold(module: FaceTask) -> float | None:
    value = float(module.threshold)
    return value if math.isfinite(value) else None


def _held_out_metrics(module: FaceTask, data: FaceDataModule) -> dict[str, Any]:
    """Identity accuracy and pair EER of the held-out images of the training people."""
    if not data.val_items:
        return {}
    index = {name: i for i, name in enumerate(data.classes)}
    features = torch.from_numpy(embed_images(module, [p for p, _ in data.val_items]))
    labels = torch.tensor([index[name] for _, name in data.val_items])
    with torch.inference_mode():
        logits = module.logits(features.to(module.device)).cpu()
        loss = F.cross_entropy(module.logits(features.to(module.device), labels.to(module.device)).cpu(), labels)
    metrics: dict[str, Any] = {"val_acc": float((logits.argmax(1) == labels).float().mean()), "val_loss": float(loss),
                               "val_images": len(labels)}  # fmt: skip
    result = held_out_verification(features, labels)
    if result is not None:
        metrics["val_eer"] = result[0]
    return metrics


# --------------------------------------------------------------------------------------------------
# The task interface: test, evaluate, predict, verify
# --------------------------------------------------------------------------------------------------


def test(trainer: L.Trainer, task: FaceTask, data: FaceDataModule, run_dir) -> dict[str, Any]:
    """Score the best checkpoint: pairs of the left-out people (``test_*``, with ``test_scores.txt`` and
    ``test_roc.png`` in the run folder) and the held-out images of the training people (``val_*``)."""
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if best:
        task.load_state_dict(torch.load(best, map_location=task.device, weights_only=True)["state_dict"])
    if not trainer.is_global_zero:
        return {}
    metrics = _held_out_metrics(task, data)
    threshold = _stored_threshold(task)
    metrics["threshold"] = threshold
    if data.test_pairs:
        scores = cosine_scores(task, data.test_pairs)
        result = verification_metrics(scores, data.test_pairs, threshold)
        result.pop("stored_threshold", None)
        metrics.update({f"test_{k}": v for k, v in result.items()})
        people = len({name for _, name in data.test_items})
        write_verification(Path(run_dir), data.test_pairs, scores, f"{people} unseen people", prefix="test_")
    return metrics


def evaluate(
    module: FaceTask,
    cfg: dict[str, Any],
    out_dir,
    pairs: str | Path | None = None,
    data_dir: str | Path | None = None,
    data: str | None = None,
    batch_size: int | None = None,
    **options: Any,
) -> dict[str, Any]:
    """``lcnn evaluate`` on verification pairs; writes ``metrics.json``, ``scores.txt`` and ``roc.png``.

    The pairs are ``pairs`` (LFW ``pairs.txt`` with ``data_dir`` as its image root, or a plain
    ``path1 path2 label`` list), else built from identity folder ``data`` (all its people), else from the
    training data's people left out of training. Returns 10-fold accuracy, EER, TAR at FAR 1 % / 0.1 %, and
    the accuracy at the stored threshold.
    """
    out_dir = Path(out_dir)
    if pairs:
        pair_list = read_pairs(pairs, data_dir)
        check_images_exist(pair_list, pairs)
        source = str(pairs)
    elif data:
        pair_list = _pairs_or_none(list_faces(data_root(data, data_dir)))
        source = data
    else:
        root = data_root(cfg.get("data", "orl"), data_dir or cfg.get("data_dir"))
        trained = set(module.hparams.classes or [])
        pair_list = _pairs_or_none(list_faces(root, [p for p in list_identities(root) if p not in trained]))
        source = f"{root} (people not trained on)"
    if not pair_list:
        raise UserError(f"{source}: no verification pairs (give --pairs FILE, with --data-dir for LFW's format)")
    scores = cosine_scores(module, pair_list, batch_size or 64)
    metrics = {"pairs_source": source, **verification_metrics(scores, pair_list, _stored_threshold(module))}
    write_verification(out_dir, pair_list, scores, Path(source).name)
    write_json(out_dir / "metrics.json", metrics)
    return metrics


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
    return paths


def predict(
    module: FaceTask,
    cfg: dict[str, Any],
    files: list[str | Path],
    out_dir: str | Path | None = None,
    batch_size: int | None = None,
    **options: Any,
) -> list[str]:
    """Embed face images: ``embeddings.npy`` (``(N, 256)`` float32, row i = image i) and ``embeddings.txt``
    (image i's path on line i) in ``out_dir`` (default: the current folder), both written atomically.
    With the ``int8`` option the model runs in int8 (:mod:`lcnn.quantize`), calibrated on up to 64 of the
    images, spread over the list.

    Returns one line per image: ``path<TAB>row<TAB>nearest training identity<TAB>its probability`` (an
    embedder without classifier: ``path<TAB>row``).
    """
    out = Path(out_dir or options.get("out") or ".")
    paths = _expand(files)
    if not paths:
        raise UserError("no face images given")
    if options.get("int8"):
        from lcnn.inference import calibration_subset, quantize_int8

        transform = module.transform(train=False)
        calibration = torch.stack([transform.load(p) for p in calibration_subset(paths, 64)])
        module.model = quantize_int8(module.model, calibration)
    emb = embed_images(module, paths, batch_size or 64)
    with atomic_path(out / "embeddings.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, emb)
    atomic_write(out / "embeddings.txt", lambda tmp: tmp.write_text("".join(f"{p}\n" for p in paths)))
    if module.head is None and not module.model.num_classes:  # an embedder (a released checkpoint): no classes
        return [f"{p}\t{i}" for i, p in enumerate(paths)]
    with torch.inference_mode():
        probs = module.logits(torch.from_numpy(emb).to(module.device)).float().softmax(1).cpu()
    classes = module.hparams.classes or [str(i) for i in range(probs.shape[1])]
    best, index = probs.max(1)
    return [f"{p}\t{i}\t{classes[k]}\t{float(v):.4f}" for i, (p, v, k) in enumerate(zip(paths, best, index.tolist()))]


def verify(module: FaceTask, cfg: dict[str, Any], image1: str | Path, image2: str | Path,
           threshold: float | None = None) -> str:  # fmt: skip
    """``lcnn verify CKPT img1 img2``: cosine similarity and a same / different decision.

    The threshold is ``threshold`` when given, else the one stored at training (EER on held-out images).
    """
    emb = embed_images(module, [Path(image1), Path(image2)])
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    similarity = float(emb[0] @ emb[1])
    source = "given"
    if threshold is None:
        threshold, source = _stored_threshold(module), "stored at training"
        if threshold is None:
            raise UserError("this checkpoint stores no verification threshold; give one with --threshold")
    decision = "same person" if similarity >= threshold else "different people"
    return f"cosine similarity {similarity:.4f}: {decision} (threshold {threshold:.4f}, {source})"


TASK_CLASS = FaceTask
