"""What a run folder's checkpoints and log need beyond Lightning's defaults: atomic writes, the task and config
in every checkpoint, paths relative to the run folder, the state an exact resume needs, and a CSV log that
keeps the epochs before a resume."""

from __future__ import annotations

import csv
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_only

from lcnn.io import atomic_path

TRANSIENT = ("resume", "overwrite", "force")  # settings of one invocation, not of the run


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file beside the target and renamed: never torn."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


class RunConfig(Callback):
    """Stores the task name and the run's config in every checkpoint, so that ``lcnn evaluate`` and
    ``lcnn predict`` can rebuild the task and its data from the checkpoint alone."""

    def __init__(self, cfg: dict) -> None:
        self.cfg = {k: v for k, v in cfg.items() if k not in TRANSIENT}

    def on_save_checkpoint(self, trainer, module, checkpoint: dict) -> None:
        checkpoint["lcnn_task"] = self.cfg["task"]
        checkpoint["lcnn_config"] = self.cfg


class RunCheckpoint(ModelCheckpoint):
    """A :class:`ModelCheckpoint` whose state names its files relative to its folder, so that a run folder that
    was moved, copied or unpacked elsewhere resumes and tests its own checkpoints, never the old location's.

    Checkpoints written before this (absolute paths) are read by file name inside the current folder.
    """

    _PATHS = ("best_model_path", "last_model_path", "kth_best_model_path")

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        for key in self._PATHS:
            state[key] = Path(state[key]).name if state.get(key) else state.get(key)
        state["best_k_models"] = {Path(k).name: v for k, v in state.get("best_k_models", {}).items()}
        state["dirpath"] = "."
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        here = Path(self.dirpath)
        state = dict(state_dict, dirpath=self.dirpath)
        for key in self._PATHS:
            if state.get(key):
                state[key] = str(here / Path(state[key]).name)
        state["best_k_models"] = {str(here / Path(k).name): v for k, v in state.get("best_k_models", {}).items()}
        super().load_state_dict(state)


def rng_states() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's global random generators (CUDA's too), as plain values and
    tensors, so that a checkpoint holding them still loads with ``weights_only=True``."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},  # fmt: skip
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` returned."""
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class RunState(Callback):
    """The state an exact resume needs beyond Lightning's (weights, optimiser, schedules, loop counters,
    early stopping): the random generators and the fitting time of the earlier segments.

    Checkpoints are written at the end of an epoch's validation, which draws no random numbers (evaluation
    loaders have generators of their own), so the generators' states there are those the next epoch starts
    from: a resumed run restores them when that epoch starts, and its draws (shuffles, dropout, crops,
    augmentation, data-loader worker seeds) are those of an uninterrupted run. The training DataModule's own
    ``generator`` (its loader's shuffling) is saved with them.
    """

    def __init__(self) -> None:
        self.earlier_seconds = 0.0
        self._started = time.perf_counter()
        self._ended: float | None = None
        self._restore: dict[str, Any] | None = None

    @property
    def fit_seconds(self) -> float:
        """Seconds spent fitting, over every segment of the run (up to each segment's last checkpoint); the
        test after the fit does not count."""
        ended = time.perf_counter() if self._ended is None else self._ended
        return self.earlier_seconds + ended - self._started

    def on_fit_start(self, trainer, module) -> None:
        self._started, self._ended = time.perf_counter(), None

    def on_fit_end(self, trainer, module) -> None:
        self._ended = time.perf_counter()

    def on_save_checkpoint(self, trainer, module, checkpoint: dict) -> None:
        checkpoint["lcnn_rng"] = rng_states()
        generator = getattr(trainer.datamodule, "generator", None)
        if generator is not None:
            checkpoint["lcnn_rng"]["loader"] = generator.get_state()
        checkpoint["lcnn_fit_seconds"] = self.fit_seconds

    def on_load_checkpoint(self, trainer, module, checkpoint: dict) -> None:
        if trainer.state.fn != "fit":  # the test of the best checkpoint: its weights, not the run's clock
            return
        self.earlier_seconds = float(checkpoint.get("lcnn_fit_seconds", 0.0))
        self._restore = checkpoint.get("lcnn_rng")
        generator = getattr(trainer.datamodule, "generator", None)
        if self._restore and "loader" in self._restore and generator is not None:
            generator.set_state(self._restore["loader"])  # before the resumed epoch's loader is iterated

    def on_train_epoch_start(self, trainer, module) -> None:
        if self._restore is not None:
            set_rng_states(self._restore)
            self._restore = None


class RunLog(Logger):
    """``metrics.csv``: one row per logging call, the columns every metric logged; rewritten atomically at each
    save, so that it is never torn. A resumed run keeps the rows of the epochs before the one it restarts from.
    """

    def __init__(self, run_dir: str | Path, resume_epoch: int | None = None) -> None:
        super().__init__()
        self.path = Path(run_dir) / "metrics.csv"
        self.rows: list[dict[str, Any]] = []
        if resume_epoch is not None and self.path.is_file():
            with open(self.path, newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if r.get("epoch") and int(float(r["epoch"])) < resume_epoch]
        self._dirty = False

    @property
    def name(self) -> str:
        return "lcnn"

    @property
    def version(self) -> str:
        return ""

    @property
    def log_dir(self) -> str:
        return str(self.path.parent)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass  # config.json and the checkpoints hold them

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        row = {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in metrics.items()}
        self.rows.append({**row, "step": step})
        self._dirty = True

    @rank_zero_only
    def save(self) -> None:
        if not self._dirty:
            return
        columns = sorted({k for row in self.rows for k in row})
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(self.rows)
        self._dirty = False

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.save()
