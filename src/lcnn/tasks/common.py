"""Pieces every task shares: optimisers and schedules, and the quiet Trainer that evaluation and prediction
run through."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

import lightning as L
import numpy as np
import torch

from lcnn.inference import quantize_int8
from lcnn.probe import checked_int8, choose

# Two messages every Trainer prints that users can do nothing about: Lightning's batch-size inference uses a
# torch.utils._pytree API that torch 2.13 deprecates, and Lightning advertises its cloud logger.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda rec: "litlogger" not in rec.getMessage())


def check_loader_settings(batch_size: int, val_fraction: float) -> None:
    """A ValueError for a batch size under 1 or a validation fraction outside (0, 1): the DataModules' own
    check, for settings that come from a config file or the API rather than the command line."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")


def inference_trainer(accelerator: str = "auto", devices: int | str = 1, progress: bool = False,
                      precision: str = "fp32") -> L.Trainer:  # fmt: skip
    """A Trainer for ``trainer.test`` / ``trainer.predict`` of a trained module: no logger, no checkpoints,
    no model summary, no progress bar unless asked for, and not the device report of every new Trainer.
    ``precision``: ``fp32``, ``bf16`` (autocast) or ``int8`` (a model quantized already: on the CPU)."""
    report = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = report.level
    report.setLevel(logging.WARNING)
    try:
        return L.Trainer(accelerator="cpu" if precision == "int8" else accelerator, devices=devices, logger=False,
                         enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=progress,
                         precision="bf16-mixed" if precision == "bf16" else "32-true")  # fmt: skip
    finally:
        report.setLevel(level)


def inference_choice(task: str, module: L.LightningModule) -> str:
    """``fp32``, ``bf16`` or ``int8``: the fastest path on this CPU for the module's model that is known to keep
    ``task``'s result (:func:`lcnn.probe.choose`); ``fp32`` where a GPU runs it, or ``$LCNN_PRECISION`` is set."""
    if torch.cuda.is_available():
        return "fp32"

    shape = getattr(module.model, "input_shape", None)
    return choose(task, module.hparams.model, shape, parts=("infer",))["infer"]


def predict_precision(task: str, module: L.LightningModule, int8: bool | None, calibration: Callable[[], torch.Tensor],
                      first: Callable[[], torch.Tensor], agreement: Callable[[torch.Tensor, torch.Tensor], float],
                      run: Callable[[Any, torch.Tensor], torch.Tensor] | None = None) -> str:  # fmt: skip
    """The path ``predict`` runs the module in (``fp32``, ``bf16`` or ``int8``), its model made int8 for int8.

    ``int8=True``: int8, calibrated on ``calibration()`` (``run(model, x)`` the computation to calibrate);
    ``False``: fp32; ``None``: :func:`inference_choice`, where a chosen int8 must also agree with fp32 on
    ``first()``, the first batch (``agreement`` at least ``lcnn.probe.INT8_AGREEMENT``), else it is fp32."""
    precision = {True: "int8", False: "fp32"}.get(int8) or inference_choice(task, module)
    if precision != "int8":
        return precision
    if int8:
        module.model = quantize_int8(module.model, calibration(), run)
        return precision
    module.model, precision = checked_int8(module.model, calibration(), first(), agreement, run)
    return precision


def gather_by_index(module: L.LightningModule, parts: list[torch.Tensor]) -> list[torch.Tensor]:
    """``[values, ..., index, ...]`` (``index`` third: each item's dataset index) of this rank -> those of all
    ranks, each item once (distributed samplers may repeat some), in dataset order."""
    if module.trainer is not None and module.trainer.world_size > 1:
        gathered: list[Any] = [None] * module.trainer.world_size
        torch.distributed.all_gather_object(gathered, parts)
        parts = [torch.cat(p) for p in zip(*gathered)]
    _, first = np.unique(parts[2].numpy(), return_index=True)
    return [p[first] for p in parts]


def make_optimizer(module: L.LightningModule, hp: Any, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Adam, AdamW or SGD with an optional schedule, from a task's hyperparameters.

    ``schedule``: ``none``; ``onecycle`` (warm-up then cosine decay, stepped every batch);
    ``step:EPOCHS:GAMMA`` (multiply the learning rate by GAMMA every EPOCHS epochs).
    ``params``: parameter groups (dicts that may set their own ``lr`` and ``weight_decay``) in place of all
    trainable parameters of ``module``; schedules scale each group's own learning rate.
    """
    if params is None:
        params = [p for p in module.parameters() if p.requires_grad]
    wd = hp.get("weight_decay", 0.0)
    name = hp.get("optimizer", "adam")
    if name == "adam":
        optimizer = torch.optim.Adam(params, lr=hp["lr"], weight_decay=wd)
    elif name == "adamw":
        optimizer = torch.optim.AdamW(params, lr=hp["lr"], weight_decay=wd)
    elif name == "sgd":
        optimizer = torch.optim.SGD(params, lr=hp["lr"], momentum=hp.get("momentum", 0.9), weight_decay=wd)
    else:
        raise ValueError(f"unknown optimizer {name!r}; expected adam, adamw or sgd")
    schedule = hp.get("schedule", "none")
    if schedule == "none":
        return {"optimizer": optimizer}
    if schedule == "onecycle":
        steps = module.trainer.estimated_stepping_batches
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                                        total_steps=int(steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
    if schedule.startswith("step:"):
        _, every, gamma = schedule.split(":")
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=int(every), gamma=float(gamma))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
    raise ValueError(f"unknown schedule {schedule!r}; expected none, onecycle or step:EPOCHS:GAMMA")
