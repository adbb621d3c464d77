"""Streaming a scoring run to disk: the partial files beside the output, and the prediction writer that fills
them batch by batch.

``OUT.partial/`` (beside the output ``OUT``) holds:

- ``manifest.json``: the fingerprint of what decides the scores (model weights, trials, front-end, windows,
  batch size, precision, device type) and the number of items, written once, before the first score;
- ``scores-rank<R>.txt``: ``INDEX SCORE`` lines of process R (INDEX: the item's position in the input, or
  its window number; SCORE: the exact float), appended and flushed after every batch;
- ``failed-rank<R>.tsv``: ``INDEX<TAB>REASON`` lines, likewise.

The index, not the id, keys the shards: the fingerprint pins the input, and an index needs no table of ids
to merge or to resume. A kill loses at most the batch being written (an incomplete last line is ignored,
and cut off before appending). A restart with the same fingerprint skips every batch whose items are all
scored in the shards, whatever the number of processes then and now, and recomputes the others whole: the
same batches, so the same bits; an item scored twice keeps one score. An item that failed is tried again (a
file fixed, a full disk freed, since).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter
from tqdm import tqdm

from lcnn.errors import DataError, UserError
from lcnn.io import write_json

__all__ = ["PartialRun", "ScoreWriter"]


class PartialRun:
    """The partial files of the run that writes ``out`` (module docstring)."""

    def __init__(self, out: str | os.PathLike, fingerprint: dict[str, Any], items: int) -> None:
        self.out = Path(out)
        self.dir = self.out.with_name(self.out.name + ".partial")
        self.manifest = self.dir / "manifest.json"
        self.fingerprint = {**fingerprint, "items": items}
        self.items = items

    def check(self) -> None:
        """Refuse partial files of a run with other settings (a UserError naming what differs)."""
        if not self.manifest.is_file():
            return
        try:
            theirs = json.loads(self.manifest.read_text())["fingerprint"]
        except (OSError, ValueError, KeyError, TypeError):
            theirs = {}
        differ = [k for k in sorted(set(theirs) | set(self.fingerprint)) if theirs.get(k) != self.fingerprint.get(k)]
        if differ:
            raise UserError(f"{self.dir}: partial scores of a run with other settings ({', '.join(differ)} "
                            "differ); remove it, or pass --restart to start over")  # fmt: skip

    def prepare(self, strategy: Any, rank: int, restart: bool = False) -> np.ndarray:
        """On every process: complete the fingerprint with the device type, check it (or, with ``restart``,
        let process 0 remove the partial files), let process 0 write the manifest, then read what is done (a
        mask over the items: those scored; failed ones are retried) before any process writes."""
        self.fingerprint["device"] = strategy.root_device.type  # CPU and GPU kernels differ in the last bits
        if not restart:
            self.check()  # every process raises the same error
        if rank == 0:
            if restart:
                shutil.rmtree(self.dir, ignore_errors=True)
            if not self.manifest.is_file():
                write_json(self.manifest, {"fingerprint": self.fingerprint, "output": str(self.out)})
        strategy.barrier("lcnn-score-prepare")
        scores, _ = self.read()
        strategy.barrier("lcnn-score-read")
        return ~np.isnan(scores)

    def read(self) -> tuple[np.ndarray, dict[int, str]]:
        """``(scores, failed)`` of every process's shards: NaN where no score, ``{index: reason}``."""
        scores, failed = np.full(self.items, np.nan), {}
        for path in sorted(self.dir.glob("scores-rank*.txt")):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if line.endswith("\n"):
                        index, score = line.split()
                        scores[int(index)] = float(score)
        for path in sorted(self.dir.glob("failed-rank*.tsv")):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if line.endswith("\n"):
                        index, reason = line[:-1].split("\t", 1)
                        failed[int(index)] = reason
        return scores, failed

    def open(self, rank: int) -> tuple[TextIO, TextIO]:
        """This process's shards, for appending (an incomplete last line cut off first)."""
        files = []
        for name in (f"scores-rank{rank}.txt", f"failed-rank{rank}.tsv"):
            path = self.dir / name
            _cut_incomplete_line(path)
            files.append(open(path, "a", encoding="utf-8"))
        return files[0], files[1]

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _cut_incomplete_line(path: Path) -> None:
    try:
        with open(path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
    except FileNotFoundError:
        pass


class ScoreWriter(BasePredictionWriter):
    """Appends each batch's scores and failures to this process's shards, flushed per batch, and shows a
    progress bar (files/s or windows/s, ETA) on process 0.

    ``prediction`` is ``(scores (B,), index (B,))`` (the module's ``predict_step``), the batch's last element
    its failures. A NaN score is a failure. ``strict`` raises at the first failure instead, with one line
    ``describe(index): reason``.
    """

    def __init__(self, run: PartialRun, data: Any, describe: Callable[[int], str], unit: str = "file",
                 strict: bool = False, progress: bool = True) -> None:  # fmt: skip
        super().__init__(write_interval="batch")
        self.run, self.data, self.describe, self.unit = run, data, describe, unit
        self.strict, self.progress = strict, progress
        self.files: tuple[TextIO, TextIO] | None = None
        self.bar: Any = None

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        self.files = self.run.open(trainer.global_rank)
        total = sum(len(b) for b in self.data.batches)
        where = f" (process 0 of {trainer.world_size})" if trainer.world_size > 1 else ""
        self.bar = tqdm(total=total, unit=self.unit, desc=f"scoring{where}", dynamic_ncols=True, smoothing=0.1,
                        mininterval=1 if sys.stderr.isatty() else 30,
                        disable=not (self.progress and trainer.is_global_zero))  # fmt: skip

    def write_on_batch_end(self, trainer: Any, pl_module: Any, prediction: Any, batch_indices: Any, batch: Any,
                           batch_idx: int, dataloader_idx: int = 0) -> None:  # fmt: skip
        assert self.files is not None
        scores, index = prediction
        failed = list(batch[-1])
        lines = []
        for i, score in zip(index.tolist(), scores.tolist()):
            if math.isnan(score):
                failed.append((i, "the model's score is NaN"))
            else:
                lines.append(f"{i} {score!r}\n")
        if failed and self.strict:
            i, reason = failed[0]
            raise DataError(f"{self.describe(i)}: {reason} (--strict stops at the first failure)")
        self.files[0].write("".join(lines))
        self.files[0].flush()
        if failed:
            self.files[1].write("".join(f"{i}\t{reason}\n" for i, reason in failed))
            self.files[1].flush()
        self.bar.update(len(lines) + len(failed))

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.teardown(trainer, pl_module, "predict")

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self.bar is not None:
            self.bar.close()
        for f in self.files or ():
            f.close()
        self.files = self.bar = None
