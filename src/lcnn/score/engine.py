"""The scoring run: a trained module over a :class:`~lcnn.score.trials.TrialTable`, through Lightning's
``trainer.predict`` on one device or many, streamed to disk, resumable, then merged into the output.

Flow: the items (trials, or windows of long files) are planned into fixed batches of similar length; each
process takes every ``world_size``-th batch that is not done yet (:class:`~lcnn.score.data.ScoringData`);
DataLoader workers decode and compute the features, the module scores on its device (eval mode, inference
mode), :class:`~lcnn.score.writer.ScoreWriter` appends to the process's shard after every batch; process 0
then merges the shards into the output, written once (atomically) in the input's order:

- ``OUT``: ``ID SCORE`` a line (the ASVspoof 2021 / 5 form), or with ``form="2019"`` ``ID ATTACK KEY SCORE``;
  trials that failed have no line;
- ``OUT_STEM.failed.tsv`` beside it (only when some failed): ``id``, ``path`` and ``reason`` of each;
- ``OUT_STEM.segments.tsv`` with ``segment``: ``file``, ``start``, ``end`` (seconds), ``score`` per window; the
  utterance score is the aggregate of its windows (:mod:`lcnn.score.segments`).

Scores are higher for bona fide. The module's ``predict_step`` takes batches ``(x (B, 1, T, F), lengths,
labels, index, failed)`` and returns ``(scores (B,), index (B,))``, as
:class:`lcnn.tasks.spoof.module.SpoofModule` does; nothing here knows a model or a task.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from lcnn.audio.pipeline import FeaturePipeline
from lcnn.data.features import FeatureCache
from lcnn.errors import DataError, UserError
from lcnn.io import atomic_path
from lcnn.score.data import ScoringData, TrialFeatures, WindowFeatures
from lcnn.score.segments import Windows, parse_aggregate
from lcnn.score.trials import TrialTable
from lcnn.score.writer import PartialRun, ScoreWriter

__all__ = ["FORMATS", "Summary", "module_digest", "read_scores_in_order", "score_trials"]

FORMATS = ("2021", "2019")


@dataclass(frozen=True)
class Summary:
    """What a run did: of ``trials``, ``files`` scored (in the output) and ``failed`` (left out); this run read
    ``items`` (files, or windows with ``unit="window"``) in ``seconds``, and ``skipped`` items done by an
    earlier run; the files written."""

    trials: int
    files: int
    failed: int
    items: int
    seconds: float
    skipped: int
    unit: str
    out: Path
    failed_file: Path | None = None
    segments_file: Path | None = None

    def __str__(self) -> str:
        rate = self.items / self.seconds if self.seconds > 0 else float("nan")
        see = f" (see {self.failed_file})" if self.failed_file else ""
        what = " windows" if self.unit == "window" else ""
        return (f"{self.trials} files: {self.files} scored, {self.failed} failed{see}; read {self.items}{what} in "
                f"{self.seconds:.1f} s ({rate:.1f} {self.unit}s/s), skipped {self.skipped} (done before); "
                f"scores in {self.out}")  # fmt: skip


def score_trials(module: L.LightningModule, table: TrialTable, out: str | os.PathLike, *, frontend: dict[str, Any],
                 frames: int | None = None, batch_size: int = 32, workers: int = 0,
                 cache_dir: str | os.PathLike | None = None, segment: float | None = None, hop: float | None = None,
                 aggregate: str = "mean", form: str = "2021", strict: bool = False, restart: bool = False,
                 accelerator: str = "auto", devices: int | str = 1, num_nodes: int = 1, strategy: str = "auto",
                 precision: str = "32-true", progress: bool = True) -> Summary | None:  # fmt: skip
    """Score every trial of ``table`` with ``module`` into ``out`` (module docstring); the Summary on process
    0, ``None`` on the others.

    Args:
        frontend, frames: the features the module was trained on (front-end configuration; a fixed frame
            count for fixed-size models, ``None`` for whole utterances).
        batch_size, workers: items per batch (part of the fingerprint: it decides the last bits of a score)
            and DataLoader worker processes.
        cache_dir: the feature cache (:class:`lcnn.data.features.FeatureCache`); ``None``: no cache.
            Windows are never cached.
        segment, hop, aggregate: score windows of ``segment`` seconds every ``hop`` (default: ``segment``),
            each trial's score being their ``aggregate`` (:func:`~lcnn.score.segments.parse_aggregate`).
        form: ``2021`` (``ID SCORE``) or ``2019`` (``ID ATTACK KEY SCORE``; labelled trials only).
        strict: stop at the first trial that cannot be scored (DataError naming it), not list it.
        restart: discard the partial files of an earlier run instead of resuming it.
        accelerator, devices, num_nodes, strategy, precision: Lightning's (several devices or nodes: DDP,
            launched by Lightning, ``torchrun`` or a cluster's launcher).
    """
    out = Path(out)
    if form not in FORMATS:
        raise UserError(f"--format {form!r}: expected 2021 (ID SCORE) or 2019 (ID ATTACK KEY SCORE)")
    if form == "2019" and not table.labelled:
        raise UserError(f"--format 2019 needs a key and attack for every trial, and {table.source} has unlabelled ones")
    if batch_size < 1 or workers < 0:
        raise UserError(f"--batch-size must be at least 1 and --workers at least 0, got {batch_size} and {workers}")
    if hop is not None and segment is None:
        raise UserError("--hop needs --segment SECONDS")
    how = parse_aggregate(aggregate)
    if segment:
        windows = Windows.of(table, segment, hop or segment)
        failed_before = windows.failed
        items: Any = WindowFeatures(table, windows, FeaturePipeline(frontend), frames)
        lengths, n = windows.lengths(), len(windows)
    else:
        failed_before = {int(i): "no such file" for i in table.missing}
        items = TrialFeatures(table, FeatureCache(frontend, cache_dir), frames)
        lengths, n = np.frombuffer(table.sizes, dtype=np.int64), len(table)
    if strict and failed_before:
        i = min(failed_before)
        raise DataError(f"{table.path(i)}: {failed_before[i]} (--strict stops at the first failure)")

    fingerprint = {"model": module_digest(module), "trials": table.digest, "frontend": frontend, "frames": frames,
                   "segment": segment, "hop": (hop or segment) if segment else None, "batch_size": batch_size,
                   "precision": precision}  # fmt: skip
    run = PartialRun(out, fingerprint, n)
    data = ScoringData(items, lengths, run, batch_size, workers, restart)

    def describe(i: int) -> str:
        if not segment:
            return table.path(i)
        start, end = windows.span(i)
        return f"{table.path(windows.locate(i)[0])} at {start:.2f}-{end:.2f} s"

    writer = ScoreWriter(run, data, describe, "window" if segment else "file", strict, progress)
    trainer = _trainer(writer, accelerator, devices, num_nodes, strategy, precision)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*does not have many workers")  # the user's choice
        warnings.filterwarnings("ignore", message=r"Couldn't infer the batch indices")  # the writer needs none
        warnings.filterwarnings("ignore", message=r"Total length of `DataLoader` across ranks is zero")  # all done
        trainer.predict(module, datamodule=data, return_predictions=False)
    trainer.strategy.barrier("lcnn-score-merge")
    if not trainer.is_global_zero:
        return None
    scores, failed = run.read()
    scored = ~np.isnan(scores)
    failed = {i: reason for i, reason in failed.items() if not scored[i]}  # a batch rerun after a passing fault
    done = int(scored.sum()) + len(failed)
    unplanned = 0 if segment else len(failed_before)  # missing files are in no batch
    if done + unplanned != n:
        raise RuntimeError(f"internal error: {n - done - unplanned} of {n} items neither scored nor failed")
    if segment:
        scores, failed, segments_file = _merge_windows(out, table, windows, scores, failed, how)
    else:
        failed, segments_file = {**failed, **failed_before}, None
    files = _write_scores(out, table, scores, form)
    failed_file = _write_failed(out, table, failed)
    run.remove()
    return Summary(len(table), files, len(failed), done - data.skipped, time.perf_counter() - started, data.skipped,
                   "window" if segment else "file", out, failed_file, segments_file)  # fmt: skip


def _trainer(writer: ScoreWriter, accelerator: str, devices: int | str, num_nodes: int, strategy: str,
             precision: str) -> L.Trainer:  # fmt: skip
    report = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = report.level
    report.setLevel(logging.WARNING)  # not the device report of every new Trainer
    try:
        return L.Trainer(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy,
                         precision=precision, logger=False, enable_checkpointing=False, enable_model_summary=False,
                         enable_progress_bar=False, use_distributed_sampler=False, callbacks=[writer])  # fmt: skip
    finally:
        report.setLevel(level)


def module_digest(module: torch.nn.Module) -> str:
    """SHA-1 of a module's hyperparameters and weights: which model scored."""
    sha = hashlib.sha1(json.dumps(dict(getattr(module, "hparams", {})), sort_keys=True, default=str).encode())
    for name, tensor in module.state_dict().items():
        sha.update(name.encode())
        sha.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()


def _merge_windows(out: Path, table: TrialTable, windows: Windows, scores: np.ndarray, failed: dict[int, str],
                   how: Any) -> tuple[np.ndarray, dict[int, str], Path]:  # fmt: skip
    """Per-file aggregates of the window scores, and ``segments.tsv``; a file with a failed window fails."""
    files_failed = dict(windows.failed)
    for w, reason in sorted(failed.items()):
        f = windows.locate(w)[0]
        start, end = windows.span(w)
        files_failed.setdefault(f, f"at {start:.2f}-{end:.2f} s: {reason}")
    file_scores = np.full(len(table), np.nan)
    path = out.with_name(f"{out.stem}.segments.tsv")
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write("file\tstart\tend\tscore\n")
        for i in range(len(table)):
            if i in files_failed:
                continue
            first, last = int(windows.first[i]), int(windows.first[i + 1])
            file_scores[i] = how(scores[first:last])
            utt = table.ids[i]
            for w in range(first, last):
                start, end = windows.span(w)
                f.write(f"{utt}\t{start:.3f}\t{end:.3f}\t{scores[w]:.6f}\n")
    return file_scores, files_failed, path


def _write_scores(out: Path, table: TrialTable, scores: np.ndarray, form: str) -> int:
    lines = 0
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for i in range(len(table)):
            if not np.isnan(scores[i]):
                meta = f" {table.meta(i)}" if form == "2019" else ""
                f.write(f"{table.ids[i]}{meta} {scores[i]:.6f}\n")
                lines += 1
    return lines


def _write_failed(out: Path, table: TrialTable, failed: dict[int, str]) -> Path | None:
    path = out.with_name(f"{out.stem}.failed.tsv")
    if not failed:
        path.unlink(missing_ok=True)  # a list from an earlier run would mislead
        return None
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write("id\tpath\treason\n")
        f.writelines(f"{table.ids[i]}\t{table.path(i)}\t{failed[i]}\n" for i in sorted(failed))
    return path


def read_scores_in_order(path: str | os.PathLike, table: TrialTable) -> np.ndarray:
    """The scores of a score file of :func:`score_trials` (2021 form: the table's order, failed trials left
    out) in the table's order, NaN where a trial has no line."""
    scores, i = np.full(len(table), np.nan), 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            utt, _, score = line.rstrip("\n").rpartition(" ")
            while i < len(table) and table.ids[i] != utt:
                i += 1
            if i == len(table):
                raise DataError(f"{path}: trial {utt!r} is not in {table.source}, or not in its order")
            scores[i] = float(score)
            i += 1
    return scores
