"""One module per task. Each task module provides:

- ``NAME`` and ``MONITOR = (metric, "min" | "max")``, the validation metric for checkpoints and early stopping
  (a recipe's ``best_by: [metric, mode]`` chooses the best checkpoint by another one);
- ``RECIPES`` and ``defaults(data, recipe) -> dict``, the default training config for a dataset;
- ``TRAIN_OPTIONS``: extra ``lcnn train`` options, ``[(flags, argparse kwargs), ...]``, whose values land in the
  config under their ``dest``;
- ``setup(cfg) -> (LightningModule, LightningDataModule)``;
- ``test(trainer, module, data, run_dir) -> dict``: test the best checkpoint after fitting, write its outputs;
- ``evaluate(module, cfg, out_dir, **options) -> dict``: ``lcnn evaluate`` on a loaded checkpoint;
- ``predict(module, cfg, files, **options) -> list[str]``: ``lcnn predict``, one line per file;
- ``example_input(module) -> Tensor``: a batch for export.

``load_task`` rebuilds a trained task from its checkpoint, whatever the task.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import lightning as L
import torch

from lcnn.errors import UserError

# Two messages every Trainer prints that users can do nothing about: Lightning's batch-size inference uses a
# torch.utils._pytree API that torch 2.13 deprecates, and Lightning advertises its cloud logger.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda rec: "litlogger" not in rec.getMessage())

TASKS = {"classify": "lcnn.tasks.classify", "spoof": "lcnn.tasks.spoof", "face": "lcnn.tasks.face"}


def get_task(name: str) -> ModuleType:
    """The module implementing task ``name`` (``classify``, ``spoof`` or ``face``)."""
    if name not in TASKS:
        raise UserError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
    return importlib.import_module(TASKS[name])


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder's best checkpoint."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "checkpoints" / "best.ckpt", path / "best.ckpt"):
            if candidate.exists():
                return candidate
        raise UserError(f"{path}: no checkpoints/best.ckpt in this run folder")
    if not path.exists():
        raise UserError(f"{path}: no such checkpoint or run folder")
    return path


def load_task(path: str | Path, model: str | None = None) -> tuple[L.LightningModule, dict[str, Any], ModuleType]:
    """Rebuild the task saved in checkpoint ``path`` (or a run folder): ``(module, run config, task module)``.

    The module is in eval mode on the CPU. Weights are read with ``weights_only=True``; any key that does
    not fit the architecture is reported by name. ``model`` names the architecture of a released LightCNN
    checkpoint (``.pth.tar``, not an lcnn run), loaded as a face embedder.
    """
    path = find_checkpoint(path)
    if model is not None:
        face = get_task("face")
        return face.from_released(path, model), {"task": "face", "model": model}, face
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a file that is not a checkpoint
        raise UserError(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__})") from None
    if not isinstance(ckpt, dict) or "lcnn_task" not in ckpt:
        raise UserError(f"{path}: not an lcnn training checkpoint (no 'lcnn_task' entry); for a released "
                        f"LightCNN checkpoint name its architecture with --model")
    task = get_task(ckpt["lcnn_task"])
    module = task.TASK_CLASS(**ckpt["hyper_parameters"])
    missing, unexpected = _key_mismatch(module.state_dict(), ckpt["state_dict"])
    if missing or unexpected:
        raise UserError(
            f"{path}: weights do not fit {ckpt['hyper_parameters'].get('model')}: "
            f"missing {missing[:8]}, unexpected {unexpected[:8]}"
        )
    try:
        module.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise UserError(f"{path}: weights do not fit the architecture: {str(err).splitlines()[-1].strip()}") from None
    return module.eval(), ckpt.get("lcnn_config", {}), task


def _key_mismatch(expected: dict, found: dict) -> tuple[list[str], list[str]]:
    return sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
