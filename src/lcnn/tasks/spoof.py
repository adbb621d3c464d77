"""Spoofed-speech detection (ASVspoof 2019 LA / PA, ASVspoof 2021 LA / DF, MiniSpoof, the user's own data).

Pipeline: audio -> front-end features (cached on disk, :mod:`lcnn.data.features`) -> a 1-channel image
``(N, 1, frames, features)`` (time along H, features along W, as the ASVspoof 2021 baseline) -> ``lcnn`` on
a fixed number of frames (crop / repeat-pad) or ``lcnn_lstm`` on the whole utterance -> one score per trial,
higher = more bona fide.

Losses (``--loss``):

- ``sigmoid`` (the baseline's): one logit, binary cross-entropy; score = the logit;
- ``softmax``: two logits (spoof, bona fide), cross-entropy; score = logit(bona fide) - logit(spoof);
- ``ocsoftmax``: one-class softmax (Zhang, Jiang & Li, IEEE SPL 2021): the model emits a 256-d embedding,
  scored by its cosine with a learnt bona fide direction ``w``; loss ``softplus(20 (0.9 - cos))`` for bona
  fide and ``softplus(20 (cos - 0.2))`` for spoofs; score = the cosine.

The decision threshold is the EER threshold on the dev set. It is a buffer of the module, set after every
validation, so each checkpoint carries the threshold of its own epoch; ``test`` re-scores dev with the best
checkpoint and stores the threshold it finds there.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler

from lcnn.data.asvspoof import (
    MIN_FRAMES,
    SPLITS,
    BucketBatchSampler,
    SpoofDataset,
    Trial,
    check_audio,
    collate,
    fit_frames,
    load_split,
    resolve_sources,
)
from lcnn.data.download import cache_dir
from lcnn.data.features import FeatureCache, frontend_config
from lcnn.errors import DataError, UserError
from lcnn.io import atomic_path, write_json
from lcnn.metrics import compute_det_curve, compute_eer, eer_table, format_table, min_tdcf, read_asv_scores
from lcnn.models import create_model
from lcnn.speed import prepare_input, prepare_model
from lcnn.tasks.common import make_optimizer

NAME = "spoof"
MONITOR = ("val_eer", "min")
LOSSES = ("sigmoid", "softmax", "ocsoftmax")
OC_DIM = 256  # embedding size for the one-class softmax
VARIABLE_LENGTH = {"lcnn_lstm"}  # models taking whole utterances; the others get a fixed number of frames

# The ASVspoof 2021 LFCC-LCNN baseline (NII): Adam 3e-4 halved every 10 epochs, batches of 64 grouped by
# length, 100 epochs, stop after 50 without improvement (here on the dev EER; the baseline watches the dev loss).
_BASELINE: dict[str, Any] = {
    "model": "lcnn_lstm", "frontend": "lfcc", "f_max": None, "trim_silence": False, "loss": "sigmoid",
    "frames": 750, "dropout": None,
    "epochs": 100, "batch_size": 64, "lr": 3e-4, "optimizer": "adam", "weight_decay": 0.0,
    "schedule": "step:10:0.5", "patience": 50,
}
# MiniSpoof: ~0.5 s utterances (median 50 frames) with 4 kHz content and 0-150 ms of digital silence at
# each end. The log spectrogram cut at 4 kHz (128 bins) after trimming the silence: lcnn_lstm reaches
# 2-5 % dev EER, where the baseline's LFCCs stay above 20 % (benchmarks/RESULTS-spoof.md). lcnn sees 64
# frames. A 3,000-file train split, best dev EER after ~10-17 epochs: at most 20 epochs.
_MINISPOOF = {**_BASELINE, "frontend": "spec", "f_max": 4000.0, "trim_silence": True, "frames": 64,
              "epochs": 20, "patience": 8}
_RECIPE = {"default": _BASELINE, "minispoof": _MINISPOOF}
#: ``baseline`` is the ASVspoof 2021 recipe; ``article`` (the engine's default recipe name) is the same.
RECIPES: dict[str, dict[str, dict[str, Any]]] = {"baseline": _RECIPE, "article": _RECIPE}

TRAIN_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--frontend",), {"choices": ["lfcc", "spec"], "help": "speech features: lfcc (the 2021 baseline's 60 LFCCs "
                                                           "on 0-4 kHz) or spec (log power spectrogram)"}),
    (("--f-max",), {"dest": "f_max", "type": float, "metavar": "HZ",
                    "help": "upper band edge of the features (lfcc: 4000; spec: Nyquist)"}),
    (("--trim-silence",), {"dest": "trim_silence", "action": argparse.BooleanOptionalAction,
                           "help": "drop digital silence (exact zeros) at both ends of each file before the features"}),
    (("--loss",), {"choices": list(LOSSES), "help": "sigmoid (baseline), softmax or ocsoftmax"}),
    (("--frames",), {"type": int, "metavar": "N",
                     "help": "frames fed to fixed-size models (crop or repeat-pad; 750, 64 on minispoof)"}),
    (("--asv-scores",), {"dest": "asv_scores", "metavar": "FILE",
                         "help": "ASVspoof 2019 ASV score file of the eval split, for the min t-DCF"}),
    (("--protocol",), {"action": "append", "metavar": "SPLIT=FILE",
                       "help": "protocol or CSV (path,label[,speaker,attack]) of a split; with --data custom"}),
    (("--cache-dir",), {"dest": "cache_dir", "metavar": "DIR",
                        "help": "feature cache (default: $LCNN_CACHE/features or ~/.cache/lcnn/features)"}),
]


def defaults(data: str, recipe: str) -> dict[str, Any]:
    """The recipe's settings for ``data`` (the ASVspoof 2021 baseline's by default)."""
    recipes = RECIPES[recipe]
    return {"data": data, **recipes.get(data, recipes["default"])}


def parse_protocols(value: Any) -> dict[str, str]:
    """``["train=a.txt", "dev=b.txt"]`` (``--protocol``, repeatable) or a dict -> ``{split: file}``."""
    if not value:
        return {}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    out = {}
    for item in [value] if isinstance(value, str) else value:
        split, sep, file = str(item).partition("=")
        if not sep or split not in SPLITS or not file:
            raise UserError(f"--protocol {item!r}: expected SPLIT=FILE with SPLIT one of {', '.join(SPLITS)}")
        out[split] = file
    return out


def feature_cache(config: dict[str, Any], root: str | os.PathLike | None) -> FeatureCache:
    """The feature cache under ``root`` (default ``$LCNN_CACHE/features``, else ``~/.cache/lcnn/features``)."""
    return FeatureCache(config, Path(root) if root else cache_dir() / "features")


class SpoofDataModule(L.LightningDataModule):
    """Train / dev (validation) / eval splits of a spoofing corpus, as cached features.

    Protocols are read and every trial's audio is checked in ``__init__``, before any training: missing
    files are reported with their count and the first few paths.
    """

    def __init__(
        self,
        data: str = "minispoof",
        data_dir: str | None = None,
        protocols: dict[str, str] | None = None,
        frontend: dict[str, Any] | None = None,
        frames: int | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        cache_dir: str | None = None,
        asv_scores: str | None = None,
    ) -> None:
        super().__init__()
        self.data, self.frames, self.batch_size, self.num_workers = data, frames, batch_size, num_workers
        self.asv_scores = asv_scores
        if asv_scores:  # check the file now rather than after training
            try:
                min_tdcf([1.0], [0.0], *read_asv_scores(asv_scores), revised=data.startswith("asvspoof2021"))
            except (OSError, ValueError) as err:
                raise DataError(f"--asv-scores {asv_scores}: {err}") from None
        self.cache = feature_cache(frontend or frontend_config("lfcc"), cache_dir)
        sources = resolve_sources(data, data_dir, protocols)
        missing = {"train", "dev"} - set(sources)
        if missing:
            raise UserError(f"{data}: training needs train and dev splits, found no {' or '.join(sorted(missing))} "
                            "(ASVspoof 2021 trains on ASVspoof 2019 LA under the same --data-dir; "
                            "--data custom needs --protocol train=FILE --protocol dev=FILE)")
        self.splits: dict[str, SpoofDataset] = {}
        for split, source in sources.items():
            trials = load_split(source)
            if split != "eval" and any(t.key is None for t in trials):
                raise DataError(f"{split}: {source.protocol or source.trial_list} has unlabelled trials")
            self.splits[split] = SpoofDataset(trials, self.cache, frames, train=split == "train",
                                              sizes=check_audio(trials, split))
        for split in ("train", "dev"):
            keys = {t.key for t in self.splits[split].trials}
            if keys != {"bonafide", "spoof"}:
                raise DataError(f"{split}: needs both bona fide and spoofed trials, found only {keys}")

    @property
    def n_features(self) -> int:
        return self.cache.n_features

    def train_dataloader(self) -> DataLoader:
        ds = self.splits["train"]
        if self.frames:  # fixed size: no length to group by
            return DataLoader(ds, self.batch_size, shuffle=True, collate_fn=collate, num_workers=self.num_workers,
                              persistent_workers=self.num_workers > 0)
        sampler = BucketBatchSampler(RandomSampler(ds), self.batch_size, lengths=ds.sizes, shuffle=True)
        return DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        return scoring_loader(self.splits["dev"], self.batch_size, self.num_workers)


def scoring_loader(ds: SpoofDataset, batch_size: int, num_workers: int = 0) -> DataLoader:
    """Every trial once, in batches of similar length (items carry their dataset index)."""
    sampler = BucketBatchSampler(SequentialSampler(ds), batch_size, lengths=ds.sizes, pool=0, shuffle=False)
    return DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers,
                      persistent_workers=num_workers > 0)


class OCSoftmax(nn.Module):
    """One-class softmax head: cosine with a learnt bona fide direction, margins 0.9 / 0.2, scale 20.

    Shapes: embedding ``(N, dim)`` -> score ``(N,)`` in [-1, 1]; ``loss(embedding, labels)`` -> scalar.
    """

    def __init__(self, dim: int = OC_DIM, m_bonafide: float = 0.9, m_spoof: float = 0.2, alpha: float = 20.0):
        super().__init__()
        self.center = nn.Parameter(torch.empty(1, dim))
        nn.init.kaiming_uniform_(self.center, a=0.25)
        self.m_bonafide, self.m_spoof, self.alpha = m_bonafide, m_spoof, alpha

    def forward(self, embedding: Tensor) -> Tensor:
        return (F.normalize(embedding, dim=1) @ F.normalize(self.center, dim=1).T).squeeze(1)

    def loss(self, embedding: Tensor, labels: Tensor) -> Tensor:
        cos = self(embedding)
        margin = torch.where(labels == 1, self.m_bonafide - cos, cos - self.m_spoof)
        return F.softplus(self.alpha * margin).mean()


class SpoofTask(L.LightningModule):
    """Bona fide vs spoof on ``(N, 1, frames, n_features)`` features; ``score`` is higher for bona fide.

    Args:
        model: ``lcnn_lstm`` (any length) or ``lcnn`` (needs ``frames``).
        n_features: features per frame.
        frames: fixed number of frames for fixed-size models, ``None`` for ``lcnn_lstm``.
        loss: ``sigmoid``, ``softmax`` or ``ocsoftmax`` (see the module docstring).
        dropout: ``None`` keeps the model's (0.7 for lcnn_lstm, 0.75 for lcnn).
        frontend: the front-end configuration, so that ``predict`` computes the same features.
        channels_last: run the convolutions in channels-last memory (faster on CPUs, see :mod:`lcnn.speed`).
    """

    task_name = NAME
    threshold: Tensor

    def __init__(
        self,
        model: str = "lcnn_lstm",
        n_features: int = 60,
        frames: int | None = None,
        loss: str = "sigmoid",
        dropout: float | None = None,
        frontend: dict[str, Any] | None = None,
        lr: float = 3e-4,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        schedule: str = "step:10:0.5",
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise UserError(f"unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")
        if model not in VARIABLE_LENGTH and not frames:
            raise UserError(f"model {model} takes a fixed number of frames: give --frames N")
        self.save_hyperparameters()
        outputs = {"sigmoid": 1, "softmax": 2, "ocsoftmax": OC_DIM}[loss]
        kw = {} if dropout is None else {"dropout": dropout}
        try:
            self.model = create_model(model, num_classes=outputs, input_shape=(1, frames, n_features), **kw)
        except (ValueError, TypeError) as err:
            raise UserError(f"model {model}: {err}") from None
        prepare_model(self.model, channels_last)
        self.oc = OCSoftmax(OC_DIM) if loss == "ocsoftmax" else None
        self.register_buffer("threshold", torch.tensor(float("nan")))
        self._val: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []

    @property
    def variable_length(self) -> bool:
        return self.hparams.model in VARIABLE_LENGTH

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``(N, 1, T, F)`` (+ ``lengths (N,)``) -> the model's output (logits, or the OC embedding)."""
        x = prepare_input(x, self.hparams.channels_last)
        return self.model(x, lengths) if self.variable_length else self.model(x)

    def score(self, output: Tensor) -> Tensor:
        """Model output -> ``(N,)`` scores, higher = more bona fide."""
        if self.oc is not None:
            return self.oc(output)
        if self.hparams.loss == "softmax":
            return output[:, 1] - output[:, 0]
        return output[:, 0]

    def loss(self, output: Tensor, labels: Tensor) -> Tensor:
        """Training loss for labels 1 = bona fide, 0 = spoof."""
        if self.oc is not None:
            return self.oc.loss(output, labels)
        if self.hparams.loss == "softmax":
            return F.cross_entropy(output, labels)
        return F.binary_cross_entropy_with_logits(output[:, 0], labels.to(output.dtype))

    def training_step(self, batch, batch_idx: int) -> Tensor:
        x, lengths, labels, _ = batch
        loss = self.loss(self(x, lengths), labels)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(labels))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x, lengths, labels, index = batch
        output = self(x, lengths)
        losses = self.loss(output, labels).detach().expand(len(labels))
        self._val.append((self.score(output).detach().float(), labels, index, losses.float()))

    def on_validation_epoch_end(self) -> None:
        parts = [torch.cat(p).cpu() for p in zip(*self._val)] if self._val else [torch.empty(0)] * 4
        self._val.clear()
        if self.trainer.world_size > 1:  # every rank gathers all; distributed samplers may repeat trials
            gathered: list[Any] = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(gathered, parts)
            parts = [torch.cat(p) for p in zip(*gathered)]
            _, first = np.unique(parts[2].numpy(), return_index=True)
            parts = [p[first] for p in parts]
        scores, labels, _, losses = parts
        bona, spoof = scores[labels == 1].numpy(), scores[labels == 0].numpy()
        if len(bona) and len(spoof):
            eer, threshold = compute_eer(bona, spoof)
            self.threshold.fill_(threshold)
        else:  # the sanity check's few batches may hold one class only
            eer = 0.5
        self.log("val_eer", eer, prog_bar=True)
        self.log("val_loss", losses.mean().item() if len(losses) else math.nan)

    def configure_optimizers(self):
        return make_optimizer(self, self.hparams)


def setup(cfg: dict[str, Any]) -> tuple[SpoofTask, SpoofDataModule]:
    """The task and its data for a resolved training config."""
    if cfg.get("val_fraction") is not None:
        raise UserError("--val-fraction: the spoof task validates on the dataset's dev split")
    try:
        frontend = frontend_config(cfg.get("frontend") or "lfcc", f_max=cfg.get("f_max"),
                                   trim_silence=cfg.get("trim_silence"))
    except ValueError as err:
        raise UserError(str(err)) from None
    model = cfg.get("model", "lcnn_lstm")
    frames = None if model in VARIABLE_LENGTH else cfg.get("frames")
    if frames is not None and frames < MIN_FRAMES:
        raise UserError(f"--frames must be at least {MIN_FRAMES}, got {frames}")
    data = SpoofDataModule(
        cfg["data"], cfg.get("data_dir"), parse_protocols(cfg.get("protocol")), frontend, frames,
        cfg.get("batch_size", 64), cfg.get("num_workers", 0), cfg.get("cache_dir"), cfg.get("asv_scores"),
    )
    task = SpoofTask(
        model=model, n_features=data.n_features, frames=frames, loss=cfg.get("loss", "sigmoid"),
        dropout=cfg.get("dropout"), frontend=frontend, lr=cfg["lr"], optimizer=cfg.get("optimizer", "adam"),
        weight_decay=cfg.get("weight_decay", 0.0), schedule=cfg.get("schedule", "none"),
        channels_last=cfg.get("channels_last", True),
    )
    return task, data


# --------------------------------------------------------------------------------------------------------------
# Scoring, reports


@torch.no_grad()
def score_dataset(module: SpoofTask, ds: SpoofDataset, batch_size: int = 64, num_workers: int = 0) -> np.ndarray:
    """Scores ``(len(ds),)`` float64 of every trial of ``ds``, in dataset order (module put in eval mode)."""
    module.eval()
    scores = np.empty(len(ds), dtype=np.float64)
    for x, lengths, _, index in scoring_loader(ds, batch_size, num_workers):
        out = module(x.to(module.device), lengths.to(module.device))
        scores[index.numpy()] = module.score(out).float().cpu().numpy()
    return scores


def write_scores(out_dir: Path, split: str, trials: list[Trial], scores: np.ndarray) -> None:
    """``scores-SPLIT.txt`` in the ASVspoof 2019 format (``utt attack key score``, labelled trials only) and
    ``scores-SPLIT-2021.txt`` in the 2021 format (``utt score``)."""
    if all(t.key is not None for t in trials):
        lines = "".join(f"{t.utt} {t.attack} {t.key} {s:.6f}\n" for t, s in zip(trials, scores))
        with atomic_path(out_dir / f"scores-{split}.txt") as tmp:
            tmp.write_text(lines)
    with atomic_path(out_dir / f"scores-{split}-2021.txt") as tmp:
        tmp.write_text("".join(f"{t.utt} {s:.6f}\n" for t, s in zip(trials, scores)))


def split_metrics(
    split: str, trials: list[Trial], scores: np.ndarray, threshold: float, per_attack: bool = True
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Flat metrics of one split and its :func:`eer_table` (``None`` when the split has no keys).

    Metrics: ``{split}_eer``, ``{split}_count``, ``{split}_frr`` / ``{split}_far`` at ``threshold`` (bona fide
    rejected, spoofs accepted), the EER of each 2021 subset (``{split}_eer_eval``...) when there are several,
    and with ``per_attack`` the EER of each attack against all bona fide trials (``eer_A07``...).
    """
    if any(t.key is None for t in trials):
        return {f"{split}_count": len(trials), f"{split}_labelled": False}, None
    keys = np.array([t.key for t in trials])
    table = eer_table(scores, keys, [t.attack for t in trials])
    bona = keys == "bonafide"
    known = math.isfinite(threshold)
    metrics: dict[str, Any] = {
        f"{split}_eer": table["pooled"]["eer"],
        f"{split}_count": len(trials),
        f"{split}_frr": float(np.mean(scores[bona] < threshold)) if known else None,
        f"{split}_far": float(np.mean(scores[~bona] >= threshold)) if known else None,
    }
    subsets = np.array([t.subset or "" for t in trials])
    if len(set(subsets)) > 1:
        for subset in sorted(set(subsets)):
            b, s = scores[(subsets == subset) & bona], scores[(subsets == subset) & ~bona]
            if len(b) and len(s):
                metrics[f"{split}_eer_{subset}"] = compute_eer(b, s)[0]
    if per_attack:
        metrics.update({f"eer_{attack}": row["eer"] for attack, row in table["per_attack"].items()})
    return metrics, table


def _report(out_dir: Path, results: dict[str, tuple[list[Trial], np.ndarray]], threshold: float,
            asv_scores: str | None, data: str, main: str = "eval") -> dict[str, Any]:
    """Score files, EER tables (``eer-SPLIT.txt``, ``eer_tables.json``) and ``det.png`` for each split of
    ``results``; the flat metrics, with the per-attack EERs and the min t-DCF of the ``main`` split."""
    from lcnn.plots import plot_det

    out_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, Any] = {}
    curves, tables = {}, {}
    for split, (trials, scores) in results.items():
        write_scores(out_dir, split, trials, scores)
        m, table = split_metrics(split, trials, scores, threshold, per_attack=split == main)
        metrics.update(m)
        if table is None:
            continue
        tables[split] = table
        bona = np.array([t.key == "bonafide" for t in trials])
        curves[f"{split} pooled"] = compute_det_curve(scores[bona], scores[~bona])[:2]
        with atomic_path(out_dir / f"eer-{split}.txt") as tmp:
            tmp.write_text(format_table(table) + "\n")
        if split != main:
            continue
        if asv_scores:  # the 2019 t-DCF, or the revised one of 2021
            asv = read_asv_scores(asv_scores)
            try:
                metrics[f"{split}_min_tdcf"] = min_tdcf(scores[bona], scores[~bona], *asv,
                                                        revised=data.startswith("asvspoof2021"))
            except ValueError as err:
                raise DataError(f"{asv_scores}: {err}") from None
        else:
            metrics[f"{split}_min_tdcf"] = None
            metrics["min_tdcf_note"] = "not computed: no ASV scores given (--asv-scores FILE)"
    if tables:
        write_json(out_dir / "eer_tables.json", tables)
        plot_det(curves, out_dir / "det.png", title=f"{data}: DET")
    return metrics


def _store_threshold(ckpt: Path, threshold: float) -> None:
    """Write ``threshold`` into the checkpoint's state if it differs from the stored one."""
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    stored = float(state["state_dict"].get("threshold", torch.tensor(math.nan)))
    if stored == threshold:
        return
    state["state_dict"]["threshold"] = torch.tensor(threshold)
    with atomic_path(ckpt) as tmp:
        torch.save(state, tmp)


def test(trainer: L.Trainer, task: SpoofTask, data: SpoofDataModule, run_dir) -> dict[str, Any]:
    """Score dev and eval with the best checkpoint; threshold = dev EER threshold (stored in the checkpoint).

    Writes into ``run_dir``: ``scores-{dev,eval}.txt`` (2019 format) and ``-2021.txt``, ``eer-*.txt``,
    ``eer_tables.json`` and ``det.png``. Returns dev_eer, threshold, eval_eer, eval_min_tdcf (``None`` without
    ASV scores, with ``min_tdcf_note``), eval_frr / eval_far at the threshold and ``eer_<attack>`` per attack.
    """
    callback = trainer.checkpoint_callback
    best = Path(callback.best_model_path) if callback is not None and callback.best_model_path else None
    if best is not None:
        task.load_state_dict(torch.load(best, map_location="cpu", weights_only=True)["state_dict"])
    if not trainer.is_global_zero:
        return {}
    results = {split: (ds.trials, score_dataset(task, ds, data.batch_size, data.num_workers))
               for split, ds in data.splits.items() if split != "train"}
    trials, scores = results["dev"]
    bona = np.array([t.key == "bonafide" for t in trials])
    threshold = compute_eer(scores[bona], scores[~bona])[1]
    task.threshold.fill_(threshold)
    if best is not None:
        _store_threshold(best, threshold)
    return {"threshold": threshold, **_report(Path(run_dir), results, threshold, data.asv_scores, data.data)}


def evaluate(module: SpoofTask, cfg: dict[str, Any], out_dir, **options: Any) -> dict[str, Any]:
    """``lcnn evaluate``: score one split with a trained module and write its reports into ``out_dir``.

    Options (all optional; the run's config gives the defaults): ``data``, ``data_dir``, ``protocol``
    (a FILE for the split scored, or ``SPLIT=FILE`` items), ``split`` (``eval``), ``cache_dir``,
    ``batch_size``, ``num_workers``, ``asv_scores``. Refuses to score when a trial has no audio, or when a
    trial list and its keys disagree.
    """
    data = options.get("data") or cfg.get("data", "minispoof")
    same = data == cfg.get("data")
    data_dir = options.get("data_dir") or (cfg.get("data_dir") if same else None)
    split = options.get("split") or "eval"
    protocol = options.get("protocol")
    if isinstance(protocol, (str, os.PathLike)) and str(protocol).partition("=")[0] not in SPLITS:
        protocol = {split: str(protocol)}  # a bare FILE: the protocol of the split scored
    protocols = parse_protocols(protocol or (cfg.get("protocol") if same else None))
    sources = resolve_sources(data, data_dir, protocols)
    if split not in sources:
        raise UserError(f"{data}: no {split} split (give --protocol {split}=FILE)")
    trials = load_split(sources[split])
    sizes = check_audio(trials, split)
    hp = module.hparams
    cache = feature_cache(hp.frontend, options.get("cache_dir") or cfg.get("cache_dir"))
    ds = SpoofDataset(trials, cache, hp.frames, sizes=sizes)
    scores = score_dataset(module, ds, options.get("batch_size") or cfg.get("batch_size", 64),
                           options.get("num_workers") or 0)
    threshold = float(module.threshold)
    asv = options.get("asv_scores") or (cfg.get("asv_scores") if same else None)
    out_dir = Path(out_dir)
    metrics = _report(out_dir, {split: (trials, scores)}, threshold, asv, data, main=split)
    metrics.update(data=data, split=split, threshold=threshold)
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def predict(module: SpoofTask, cfg: dict[str, Any], files: list[str], **options: Any) -> list[str]:
    """``lcnn predict``: ``FILE<TAB>score<TAB>bonafide|spoof`` per file, deciding at the dev threshold stored
    in the checkpoint (``threshold`` option overrides it; ``-`` when there is none)."""
    if options.get("int8"):
        raise UserError("--int8 is for image models (classify, face); spoof models run in fp32")
    hp = module.hparams
    cache = FeatureCache(hp.frontend)
    threshold = options.get("threshold")
    threshold = float(module.threshold) if threshold is None else float(threshold)
    module.eval()
    lines = []
    for file in files:
        try:
            feats = cache.extract(file)
        except FileNotFoundError:
            raise DataError(f"{file}: no such audio file") from None
        if hp.frames:
            feats = fit_frames(feats, hp.frames)
        x, lengths, _, _ = collate([(feats, -1, 0)])
        with torch.no_grad():
            score = float(module.score(module(x.to(module.device), lengths.to(module.device)))[0])
        decision = "-" if math.isnan(threshold) else ("bonafide" if score >= threshold else "spoof")
        lines.append(f"{file}\t{score:.6f}\t{decision}")
    return lines


def example_input(module: SpoofTask) -> Tensor:
    """A batch for export: ``(1, 1, frames, n_features)``, 400 frames (4 s) for variable-length models."""
    hp = module.hparams
    return torch.zeros(1, 1, hp.frames or 400, hp.n_features)


TASK_CLASS = SpoofTask
