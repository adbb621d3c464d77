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

Either list left by an earlier run into the same ``OUT`` is removed when this run has none. The exact scores
(of the files, and of the windows) come back in the :class:`Summary`; the files hold them in
:data:`lcnn.score.files.SCORE_FORMAT`, which gives back every float32. At ``32-true`` TF32 is off (cuDNN
and matmul) while scoring: fp32 is the reference.

Scores are higher for bona fide. The module's ``predict_step`` takes batches ``(x (B, 1, T, F), lengths,
labels, index, failed)`` and returns ``(scores (B,), index (B,))``, as
:class:`lcnn.tasks.spoof.module.SpoofModule` does; nothing here knows a model or a task.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException

from lcnn.audio.pipeline import FeaturePipeline
from lcnn.data.features import FeatureCache
from lcnn.errors import DataError, UserError
from lcnn.io import atomic_path
from lcnn.runs import hold, is_rank_zero, output_lock
from lcnn.score.data import ScoringData, TrialFeatures, WindowFeatures
from lcnn.score.files import SCORE_FORMAT, write_score_file
from lcnn.score.segments import Windows, parse_aggregate
from lcnn.score.trials import TrialTable
from lcnn.score.writer import PartialRun, ScoreWriter
from lcnn.speed import cpu_cores, intra_op_threads

__all__ = ["FORMATS", "ExactFP32", "Summary", "module_digest", "score_trials"]

FORMATS = ("2021", "2019")
_PRECISION_NAMES = {"32-true": "fp32", "32": "fp32", "bf16-mixed": "bf16", "16-mixed": "fp16"}


@dataclass(frozen=True)
class Summary:
    """What a run did: of ``trials``, ``files`` scored (in the output) and ``failed`` (left out); this run read
    ``items`` (files, or windows with ``unit="window"``) in ``seconds``, and ``skipped`` items done by an
    earlier run; the files written; ``scores``, each trial's exact score in the table's order (NaN: failed),
    in segment mode the ``windows`` with their exact ``window_scores`` (NaN: failed), and the ``precision``
    that computed them."""

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
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    windows: Windows | None = field(default=None, repr=False)
    window_scores: np.ndarray | None = field(default=None, repr=False)
    precision: str = "32-true"

    def __str__(self) -> str:
        rate = self.items / self.seconds if self.seconds > 0 else float("nan")
        see = f" (see {self.failed_file})" if self.failed_file else ""
        what = " windows" if self.unit == "window" else ""
        return (f"{self.trials} files: {self.files} scored, {self.failed} failed{see}; read {self.items}{what} in "
                f"{self.seconds:.1f} s ({rate:.1f} {self.unit}s/s), skipped {self.skipped} (done before); "
                f"scores in {self.out} ({_PRECISION_NAMES.get(self.precision, self.precision)})")  # fmt: skip


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
            launched by Lightning, ``torchrun`` or a cluster's launcher); what Lightning refuses is a UserError.
            ``precision="int8"``: the module's model is int8 already (:mod:`lcnn.inference`), run in fp32 around
            it on the CPU.
    """
    out = Path(out)
    _check_out(out)
    if form not in FORMATS:
        raise UserError(f"--format {form!r}: expected 2021 (ID SCORE) or 2019 (ID ATTACK KEY SCORE)")
    if form == "2019" and not table.labelled:
        raise UserError(f"--format 2019 needs a key and attack for every trial, and {table.source} has unlabelled ones")
    if batch_size < 1 or workers < 0:
        raise UserError(f"--batch-size must be at least 1 and --num-workers at least 0, got {batch_size} and {workers}")
    if hop is not None and segment is None:
        raise UserError("--hop needs --segment SECONDS")
    how = parse_aggregate(aggregate)
    lightning = precision
    if precision == INT8:
        if accelerator not in ("auto", "cpu"):
            raise UserError(f"--precision int8 runs on the CPU, not --accelerator {accelerator}")
        accelerator, lightning = "cpu", "32-true"
    hop = segment if hop is None else hop
    windows = None if segment is None else Windows.of(table, segment, hop)  # --segment 0 is refused, not ignored
    if windows is not None:
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

    # One writer per output: a second run on the same --out stops at once, naming the first (its partial files
    # would mix); processes other than the first of a distributed run write only their own shards.
    with hold(output_lock(out), out) if is_rank_zero() else nullcontext():
        fingerprint = {"model": module_digest(module), "trials": table.digest, "frontend": frontend, "frames": frames,
                       "segment": segment, "hop": hop, "batch_size": batch_size, "precision": precision}  # fmt: skip
        run = PartialRun(out, fingerprint, n)
        data = ScoringData(items, lengths, run, batch_size, workers, restart)

        def describe(i: int) -> str:
            if windows is None:
                return table.path(i)
            start, end = windows.span(i)
            return f"{table.path(windows.locate(i)[0])} at {start:.2f}-{end:.2f} s"

        unit = "file" if windows is None else "window"
        writer = ScoreWriter(run, data, describe, unit, strict, progress)
        trainer = _trainer([writer, ExactFP32()] if lightning in FP32 else [writer], accelerator=accelerator,
                           devices=devices, num_nodes=num_nodes, strategy=strategy, precision=lightning)  # fmt: skip
        # On a CPU the workers run the whole pipeline, one thread and one core each: no core waits while another
        # computes features, and no model thread waits at a barrier for a core a worker holds
        # (speed.intra_op_threads). Without workers the model takes the cores.
        on_cpu = trainer.strategy.root_device.type == "cpu"
        runner = module
        if on_cpu and workers:
            data.score, runner = WorkerScoring(module.eval(), precision), ScoredBatches()
        threads = max(1, cpu_cores() // trainer.num_devices - workers) if on_cpu else torch.get_num_threads()
        started = time.perf_counter()
        with warnings.catch_warnings(), intra_op_threads(threads):
            warnings.filterwarnings("ignore", message=r".*does not have many workers")  # the user's choice
            warnings.filterwarnings("ignore", message=r"Couldn't infer the batch indices")  # the writer needs none
            warnings.filterwarnings("ignore", message=r"Total length of `DataLoader` across ranks is zero")  # all done
            trainer.predict(runner, datamodule=data, return_predictions=False)
        trainer.strategy.barrier("lcnn-score-merge")
        if not trainer.is_global_zero:
            return None
        scores, failed = run.read()
        scored = ~np.isnan(scores)
        failed = {i: reason for i, reason in failed.items() if not scored[i]}  # a batch rerun after a passing fault
        done = int(scored.sum()) + len(failed)
        unplanned = len(failed_before) if windows is None else 0  # missing files are in no batch
        if done + unplanned != n:
            raise RuntimeError(f"internal error: {n - done - unplanned} of {n} items neither scored nor failed")
        window_scores = None
        if windows is not None:
            window_scores = scores
            scores, failed, segments_file = _merge_windows(out, table, windows, scores, failed, how)
        else:
            failed, segments_file = {**failed, **failed_before}, None
            _beside(out, "segments.tsv").unlink(missing_ok=True)  # the windows of an earlier run would mislead
        write_score_file(out, table.ids, scores, table.meta if form == "2019" else None)
        files = int(np.count_nonzero(~np.isnan(scores)))
        failed_file = _write_failed(out, table, failed)
        run.remove()
        return Summary(len(table), files, len(failed), done - data.skipped, time.perf_counter() - started, data.skipped,
                       unit, out, failed_file, segments_file, scores, windows, window_scores, precision)  # fmt: skip


def _check_out(out: Path) -> None:
    """Refuse, before scoring anything, an output that is a folder or that cannot be created (the nearest existing
    folder above it is not a writable folder)."""
    if out.is_dir():
        raise UserError(f"--out {out}: a folder; expected the score file to write (e.g. {out / 'scores.txt'})")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: cannot write into {parent} (expected a writable folder)")
    if parent == out.parent:  # permissions are not all: /proc, a read-only mount
        try:
            fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".probe", dir=parent)
        except OSError as err:
            raise UserError(f"--out {out}: cannot write into {parent} ({err.strerror or err})") from None
        os.close(fd)
        os.unlink(probe)


class WorkerScoring:
    """A batch scored where it was read, in a DataLoader worker on a CPU: ``(scores, index, failed)`` of the
    module's ``predict_step``, in inference mode, under bf16 autocast for ``bf16-mixed`` (an int8 module is int8
    already). The module must be in eval mode before the workers start."""

    def __init__(self, module: L.LightningModule, precision: str) -> None:
        self.module, self.bf16 = module, precision == "bf16-mixed"

    def __call__(self, batch: tuple) -> tuple:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            scores, index = self.module.predict_step(batch, 0)
        return scores.float(), index, batch[-1]


class ScoredBatches(L.LightningModule):
    """What the Trainer runs while the workers score (:class:`WorkerScoring`): the batches arrive scored."""

    def predict_step(self, batch: tuple, batch_idx: int) -> tuple:
        return batch[0], batch[1]


#: The precisions that compute in fp32: the scores of evaluate, the reference.
FP32 = ("32-true", "32", 32)
#: A precision that is no Lightning one: a model made int8 by its task, scored on the CPU.
INT8 = "int8"


class ExactFP32(L.Callback):
    """TF32 off (cuDNN convolutions and CUDA matmuls) while predicting or testing, restored at the end: torch lets cuDNN
    compute fp32 convolutions in TF32 by default, 10 bits of mantissa, and fp32 is the reference. On the
    predicting process itself, so that processes started by any launcher do the same."""

    def __init__(self) -> None:
        self.saved: tuple[bool, bool] | None = None

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        self.saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False

    on_test_start = on_predict_start  # training's test, an evaluation too (lcnn.train.test_for_evaluation)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self.saved is not None:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = self.saved
            self.saved = None

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.teardown(trainer, pl_module, "predict")  # Lightning calls no teardown after an exception


def _trainer(callbacks: list[L.Callback], **settings: Any) -> L.Trainer:
    """The Trainer of a scoring run; settings Lightning refuses (``--precision foo``, ``--devices 0``, an
    unknown accelerator or strategy, no GPU) are a UserError naming them."""
    report = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = report.level
    report.setLevel(logging.WARNING)  # not the device report of every new Trainer
    try:
        return L.Trainer(**settings, logger=False, enable_checkpointing=False, enable_model_summary=False,
                         enable_progress_bar=False, use_distributed_sampler=False, callbacks=callbacks)  # fmt: skip
    except (ValueError, TypeError, MisconfigurationException) as err:
        given = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in settings.items())
        raise UserError(f"cannot score with {given}: {' '.join(str(err).split())}") from None
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
    path = _beside(out, "segments.tsv")
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
                f.write(f"{utt}\t{start:.3f}\t{end:.3f}\t{scores[w]:{SCORE_FORMAT}}\n")
    return file_scores, files_failed, path


def _beside(out: Path, suffix: str) -> Path:
    """``OUT_STEM.SUFFIX`` beside the output."""
    return out.with_name(f"{out.stem}.{suffix}")


def _write_failed(out: Path, table: TrialTable, failed: dict[int, str]) -> Path | None:
    path = _beside(out, "failed.tsv")
    if not failed:
        path.unlink(missing_ok=True)  # a list from an earlier run would mislead
        return None
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write("id\tpath\treason\n")
        f.writelines(f"{table.ids[i]}\t{table.path(i)}\t{failed[i]}\n" for i in sorted(failed))
    return path
