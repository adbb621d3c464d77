"""Training runs: resolve the config, build the Lightning Trainer, fit, test the best checkpoint, and
write the run folder (config.json, checkpoints/, metrics.csv, metrics.json, curves.png)."""

from __future__ import annotations

import csv
import os
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lcnn.errors import UserError
from lcnn.io import atomic_path, write_json
from lcnn.tasks import get_task

_RUN_DIR_ENV = "LCNN_RUN_DIR"  # lets the processes Lightning launches for DDP write into the same folder


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file beside the target and renamed: never torn."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


class RunConfig(Callback):
    """Stores the task name and the run's config in every checkpoint, so that ``lcnn evaluate`` and
    ``lcnn predict`` can rebuild the task and its data from the checkpoint alone."""

    def __init__(self, cfg: dict) -> None:
        self.cfg = cfg

    def on_save_checkpoint(self, trainer, module, checkpoint: dict) -> None:
        checkpoint["lcnn_task"] = self.cfg["task"]
        checkpoint["lcnn_config"] = self.cfg


def resolve_config(task: str = "classify", data: str | None = None, recipe: str = "article", **overrides) -> dict:
    """The full config of a run: the task's defaults, its recipe for ``data``, and the ``overrides`` (``None``
    values keep the default); see :meth:`lcnn.tasks.Task.resolve`."""
    return get_task(task).resolve(data, recipe, **overrides)


def build_trainer(cfg: dict, run_dir: Path, monitor: tuple[str, str]) -> L.Trainer:
    """A Trainer with best/last checkpoints, early stopping (when ``patience`` > 0) and a CSV log.

    Early stopping watches ``monitor``; the best checkpoint is the best by ``cfg["best_by"]`` (``[metric,
    mode]``) where the recipe sets it, else by ``monitor`` too.
    """
    metric, mode = monitor
    best_metric, best_mode = cfg.get("best_by") or monitor
    # ``last.ckpt`` has a checkpoint callback of its own: ``save_last`` only rewrites it when the best improves.
    callbacks = [
        RunConfig(cfg),
        ModelCheckpoint(run_dir / "checkpoints", filename="best", monitor=best_metric, mode=best_mode,
                        enable_version_counter=False),
        ModelCheckpoint(run_dir / "checkpoints", filename="last", enable_version_counter=False),
    ]
    if cfg.get("patience"):
        callbacks.append(EarlyStopping(metric, patience=cfg["patience"], mode=mode, verbose=True))
    return L.Trainer(
        max_epochs=cfg["epochs"],
        accelerator=cfg["accelerator"],
        devices=cfg["devices"],
        strategy=cfg["strategy"],
        precision=resolve_precision(cfg["precision"], cfg["accelerator"]),
        callbacks=callbacks,
        logger=CSVLogger(run_dir, name="", version=""),
        plugins=[AtomicCheckpointIO()],
        default_root_dir=run_dir,
        log_every_n_steps=1,
        enable_model_summary=False,
        deterministic=cfg.get("deterministic", False),
    )


def resolve_precision(precision: str, accelerator: str) -> str:
    """``auto``: bf16 mixed precision where the hardware runs it faster (bf16 GPUs, AMX CPUs), else fp32."""
    if precision != "auto":
        return precision
    from lcnn.speed import default_precision

    if accelerator in ("auto", "gpu", "cuda"):
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    return default_precision(accelerator if accelerator in ("cuda", "cpu") else "cpu")


def new_run_dir(cfg: dict) -> Path:
    """``--out``, or ``runs/TASK-DATA-MODEL-TIMESTAMP``."""
    if cfg.get("out"):
        return Path(cfg["out"])
    data = str(cfg["data"]).replace(":", "-").replace("/", "_").strip("_-")[-40:]
    return Path("runs") / f"{cfg['task']}-{data}-{cfg['model']}-{time.strftime('%Y%m%d-%H%M%S')}"


def train(cfg: dict) -> dict:
    """Train every seed of ``cfg``; return the metrics (one seed) or the summary over seeds."""
    # Processes that Lightning launches for DDP re-run the command: they must find the same folder.
    inherited = os.environ.get(_RUN_DIR_ENV)
    run_dir = Path(inherited) if inherited else new_run_dir(cfg)
    os.environ[_RUN_DIR_ENV] = str(run_dir)
    try:
        return _train_seeds(cfg, run_dir)
    finally:
        if not inherited:
            del os.environ[_RUN_DIR_ENV]


def _train_seeds(cfg: dict, run_dir: Path) -> dict:
    if cfg["accelerator"] == "cpu" or not torch.cuda.is_available():
        from lcnn.speed import tune_cpu_allocator

        tune_cpu_allocator()
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", cfg)
    seeds = cfg["seeds"]
    results = {}
    for seed in seeds:
        seed_dir = run_dir if len(seeds) == 1 else run_dir / f"seed-{seed}"
        results[seed] = train_one(cfg, seed, seed_dir)
    if len(seeds) == 1:
        return results[seeds[0]]
    summary = summarize(results)
    write_json(run_dir / "summary.json", summary)
    return summary


def train_one(cfg: dict, seed: int, run_dir: Path) -> dict:
    """One training run: fit, then test the best checkpoint and write metrics.json and curves.png."""
    from lcnn.plots import plot_training_curves

    task = get_task(cfg["task"])
    L.seed_everything(seed, workers=True, verbose=False)
    module, data = task.build(cfg)
    trainer = build_trainer(cfg, run_dir, task.monitor)
    started = time.perf_counter()
    ckpt = run_dir / "checkpoints" / "last.ckpt" if cfg.get("resume") else None
    if ckpt is not None and not ckpt.exists():
        raise UserError(f"{ckpt}: nothing to resume (no last checkpoint in this run folder)")
    earlier_log = _read_csv(run_dir / "metrics.csv") if ckpt else []
    with warnings.catch_warnings():
        # The CSV logger warns that the run folder (config.json is already there) "is not empty" and that
        # "previous log files will be deleted": it replaces metrics.csv only, whose earlier rows a resume restores.
        warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
        trainer.fit(module, data, ckpt_path=ckpt)
    fit_seconds = time.perf_counter() - started
    with warnings.catch_warnings():
        # ckpt_path="best" takes the first checkpoint callback's best: build_trainer puts the kept one first.
        warnings.filterwarnings("ignore", message=r'`\.test\(ckpt_path="best"\)` is called with Trainer configured')
        metrics = task.test(trainer, module, data, run_dir)
    metrics.update(
        seed=seed,
        epochs_trained=trainer.current_epoch,
        best_epoch=_best_epoch(trainer),
        fit_seconds=round(fit_seconds, 1),
        best_checkpoint=str(run_dir / "checkpoints" / "best.ckpt"),
    )
    if trainer.is_global_zero:
        if earlier_log:
            _prepend_csv(earlier_log, run_dir / "metrics.csv")
        write_json(run_dir / "metrics.json", metrics)
        plot_training_curves(run_dir / "metrics.csv", run_dir / "curves.png")
    return metrics


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _prepend_csv(earlier: list[dict[str, str]], path: Path) -> None:
    """Put the log of the epochs before a resume back in front of the log that Lightning restarted."""
    later = _read_csv(path)
    first_new_epoch = min((int(r["epoch"]) for r in later if r.get("epoch")), default=0)
    rows = [r for r in earlier if r.get("epoch") and int(r["epoch"]) < first_new_epoch] + later
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)


def _best_epoch(trainer: L.Trainer) -> int | None:
    for callback in trainer.checkpoint_callbacks:
        if callback.best_model_path:
            return int(torch.load(callback.best_model_path, map_location="cpu", weights_only=True)["epoch"])
    return None


def summarize(results: dict[int, dict]) -> dict:
    """Mean and standard deviation over seeds of every numeric metric, with the per-seed values."""
    summary: dict[str, Any] = {"seeds": list(results), "per_seed": results, "mean": {}, "std": {}}
    keys = [k for k, v in next(iter(results.values())).items() if isinstance(v, (int, float)) and k != "seed"]
    for key in keys:
        values = [r[key] for r in results.values() if isinstance(r.get(key), (int, float))]
        summary["mean"][key] = statistics.fmean(values)
        summary["std"][key] = statistics.stdev(values) if len(values) > 1 else 0.0
    return summary
