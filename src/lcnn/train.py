"""Training runs: resolve the config, check everything, own the run folder, build the Lightning Trainer, fit,
test the best checkpoint, and write the run folder (config.json, checkpoints/, metrics.csv, metrics.json,
curves.png; ``seed-N/`` and summary.json for several seeds).

Nothing in the run folder is touched before the config, the data, the model and the trainer settings have
been checked; the folder is locked while the run lasts (:class:`lcnn.runs.RunFolder`); a resumed run
continues exactly where the last checkpoint left it (:class:`lcnn.callbacks.RunState`).
"""

from __future__ import annotations

import json
import os
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.plugins.precision import MixedPrecision, Precision

from lcnn.callbacks import TRANSIENT, AtomicCheckpointIO, RunCheckpoint, RunConfig, RunLog, RunState
from lcnn.config import check_run_settings
from lcnn.errors import DataError, UserError
from lcnn.io import read_text, write_json
from lcnn.models.pretrained import load_failure
from lcnn.plots import plot_training_curves
from lcnn.precision import evaluate_precision, train_precision
from lcnn.runs import RunFolder, is_rank_zero
from lcnn.score.engine import ExactFP32
from lcnn.speed import tune_cpu_allocator
from lcnn.tasks import Task, get_task

_RUN_DIR_ENV = "LCNN_RUN_DIR"  # lets the processes Lightning launches for DDP write into the same folder


def resolve_config(task: str = "classify", data: str | None = None, recipe: str = "article", **overrides) -> dict:
    """The full config of a run: the task's defaults, its recipe for ``data``, and the ``overrides`` (``None``
    values keep the default); see :meth:`lcnn.tasks.Task.resolve`."""
    return get_task(task).resolve(data, recipe, **overrides)


# What --resume may change: how much longer the run goes on and where it runs. The rest is the run itself.
RESUMABLE = ("epochs", "patience", "num_workers", "accelerator", "devices", "num_nodes", "strategy")


def resume_config(out: str | Path, **overrides: Any) -> dict:
    """The config stored in run folder ``out`` (its ``config.json``), to continue the run; ``overrides`` (``None``
    keeps the stored value) may change only :data:`RESUMABLE` settings (``epochs`` to train further, say; not
    under a ``onecycle`` schedule, which is laid out over the run's epochs). Anything else that differs from
    the run is a :class:`UserError`: a resumed run is the same run."""
    path = Path(out) / "config.json"
    if not path.is_file():
        raise UserError(f"{out}: nothing to resume (no config.json in this folder)")
    try:
        stored = json.loads(read_text(path, "run config"))
        task, data, recipe = (stored.pop(key) for key in ("task", "data", "recipe"))
        if not all(isinstance(v, str) for v in (task, data, recipe)):
            raise ValueError(f"task, data and recipe must be names, got {task!r}, {data!r}, {recipe!r}")
        run = get_task(task).resolve(data, recipe, **stored)
    except (ValueError, KeyError, AttributeError, TypeError) as err:
        raise DataError(f"{path}: not a run config ({type(err).__name__}: {err})") from None
    given = get_task(task).absolute_paths({k: v for k, v in overrides.items() if v is not None})
    for key, value in given.items():
        if key in TRANSIENT or key == "out" or value == run.get(key):
            continue
        if key not in RESUMABLE:
            may = ", ".join("--" + k.replace("_", "-") for k in RESUMABLE)
            raise UserError(f"{out}: --{key.replace('_', '-')} {value!r} is not the run's ({run.get(key)!r}); "
                            f"--resume continues the run as it was (only {may} may change)")  # fmt: skip
        if key == "epochs" and str(run.get("schedule", "")).startswith("onecycle"):
            raise UserError(f"{out}: the run's onecycle schedule is laid out over its {run['epochs']} epochs; "
                            "--resume cannot change --epochs (train a new run)")  # fmt: skip
        run[key] = value
    return {**run, **{k: v for k, v in given.items() if k in TRANSIENT}, "out": str(out), "resume": True}


def build_trainer(cfg: dict, run_dir: Path, monitor: tuple[str, str], resume_epoch: int | None = None,
                  input_shape: tuple[int | None, ...] | None = None) -> L.Trainer:  # fmt: skip
    """A Trainer with best and last checkpoints, early stopping (when ``patience`` > 0), the run's CSV log and
    the state exact resume needs.

    Early stopping watches ``monitor``; the best checkpoint is the best by ``cfg["best_by"]`` (``[metric,
    mode]``) where the recipe sets it, else by ``monitor`` too. ``resume_epoch`` keeps the log of the epochs
    before it. ``input_shape``: one example of the model's input, which precision ``auto`` is measured on
    (:func:`lcnn.precision.train_precision`). Trainer settings Lightning refuses are a :class:`UserError`.
    """
    precision = train_precision(cfg["precision"], cfg["accelerator"], cfg.get("task"), cfg.get("model"), input_shape)
    metric, mode = monitor
    best_metric, best_mode = cfg.get("best_by") or monitor
    # ``last.ckpt`` has a checkpoint callback of its own: ``save_last`` only rewrites it when the best improves.
    callbacks = [
        RunConfig(cfg),
        RunCheckpoint(run_dir / "checkpoints", filename="best", monitor=best_metric, mode=best_mode,
                      enable_version_counter=False),
        RunCheckpoint(run_dir / "checkpoints", filename="last", enable_version_counter=False),
        RunState(),
        ExactFP32(),  # TF32 off while testing (test_for_evaluation)
    ]  # fmt: skip
    if cfg.get("patience"):
        callbacks.append(EarlyStopping(metric, patience=cfg["patience"], mode=mode, verbose=True))
    try:
        return L.Trainer(
            max_epochs=cfg["epochs"],
            accelerator=cfg["accelerator"],
            devices=cfg["devices"],
            strategy=cfg["strategy"],
            precision=precision,
            callbacks=callbacks,
            logger=RunLog(run_dir, resume_epoch),
            plugins=[AtomicCheckpointIO()],
            default_root_dir=run_dir,
            log_every_n_steps=1,
            enable_model_summary=False,
            deterministic=cfg.get("deterministic", False),
        )
    except (MisconfigurationException, ValueError, RuntimeError) as err:
        raise UserError(f"trainer settings: {err}") from None


#: The name ARCHITECTURE.md's public API has for the training rule (one function, in lcnn.precision).
resolve_precision = train_precision


def new_run_dir(cfg: dict) -> Path:
    """``--out``, or ``runs/TASK-DATA-MODEL-TIMESTAMP``."""
    if cfg.get("out"):
        return Path(cfg["out"])
    data = str(cfg["data"]).replace(":", "-").replace("/", "_").strip("_-")[-40:]
    return Path("runs") / f"{cfg['task']}-{data}-{cfg['model']}-{time.strftime('%Y%m%d-%H%M%S')}"


def train(cfg: dict) -> dict:
    """Train every seed of ``cfg``; return the metrics (one seed) or the summary over seeds.

    Before the run folder is touched, the settings, the data, the model and the trainer of the first seed are
    built (every mistake stops here with one line), and the folder is checked: one that holds a run needs
    ``resume`` or ``overwrite``. The folder is then locked for the whole run.
    """
    check_run_settings(cfg)
    task = get_task(cfg["task"])
    cfg = task.absolute_paths(cfg)
    # Processes that Lightning launches for DDP re-run the command: they find the folder of the first one.
    inherited = os.environ.get(_RUN_DIR_ENV)
    if inherited:
        return _train_seeds(cfg, task, Path(inherited))
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 and not cfg.get("out"):
        raise UserError("processes launched together (torchrun, a cluster) need --out: one folder for all of them")
    if not is_rank_zero():  # launched beside process 0, which owns (checks, locks, clears) the folder
        return _train_seeds(cfg, task, Path(cfg["out"]))
    run_dir = new_run_dir(cfg)
    folder = RunFolder(run_dir)
    folder.check(cfg["resume"], cfg["overwrite"], cfg["force"])
    first = _prepare(cfg, task, cfg["seeds"][0], _seed_dir(run_dir, cfg, cfg["seeds"][0]))
    with folder.lock(cfg["force"]):
        folder.check(cfg["resume"], cfg["overwrite"], holding=True)  # again, now that the lock is ours
        if cfg["overwrite"]:
            folder.clear()
        os.environ[_RUN_DIR_ENV] = str(run_dir)
        try:
            write_json(run_dir / "config.json", {k: v for k, v in cfg.items() if k not in TRANSIENT})
            return _train_seeds(cfg, task, run_dir, first)
        finally:
            del os.environ[_RUN_DIR_ENV]


def _seed_dir(run_dir: Path, cfg: dict, seed: int) -> Path:
    return run_dir if len(cfg["seeds"]) == 1 else run_dir / f"seed-{seed}"


def _train_seeds(cfg: dict, task: Task, run_dir: Path, first: tuple | None = None) -> dict:
    if cfg["accelerator"] == "cpu" or not torch.cuda.is_available():
        tune_cpu_allocator()
    seeds = cfg["seeds"]
    results = {}
    for i, seed in enumerate(seeds):
        results[seed] = train_one(cfg, task, seed, _seed_dir(run_dir, cfg, seed), first if i == 0 else None)
    if len(seeds) == 1:
        return results[seeds[0]]
    summary = summarize(results)
    if is_rank_zero():
        write_json(run_dir / "summary.json", summary)
    return summary


def _last_checkpoint(seed_dir: Path, cfg: dict) -> Path | None:
    """The checkpoint a resumed seed continues from (``None``: it starts afresh)."""
    last = seed_dir / "checkpoints" / "last.ckpt"
    return last if cfg.get("resume") and last.is_file() else None


def _prepare(cfg: dict, task: Task, seed: int, seed_dir: Path) -> tuple[Any, Any, L.Trainer]:
    """Seed, then build the module, the data and the trainer of one seed (nothing is written)."""
    L.seed_everything(seed, workers=True, verbose=False)
    module, data = task.build(cfg)
    ckpt = _last_checkpoint(seed_dir, cfg)
    resume_epoch = None
    if ckpt is not None:
        try:
            resume_epoch = int(torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)["epoch"]) + 1
        except Exception as err:  # a file torn or edited by hand: say which, before training anything
            raise UserError(f"cannot resume: {load_failure(ckpt, err)}") from None
    shape = getattr(getattr(module, "model", None), "input_shape", None)
    return module, data, build_trainer(cfg, seed_dir, task.monitor, resume_epoch, shape)


def train_one(cfg: dict, task: Task, seed: int, run_dir: Path, prepared: tuple | None = None) -> dict:
    """One training run: fit (or continue), then test the best checkpoint and write metrics.json and curves.png.

    With ``resume``, a seed that has finished (its metrics.json says so, and no more epochs are asked for)
    keeps its results; one with a last checkpoint continues from it; the others start afresh.
    """
    done = run_dir / "metrics.json"
    if cfg.get("resume") and done.is_file():
        finished = json.loads(done.read_text())
        if finished.get("stopped_early") or finished.get("epochs_trained", 0) >= cfg["epochs"]:
            return finished
    module, data, trainer = prepared or _prepare(cfg, task, seed, run_dir)
    with warnings.catch_warnings():
        # ckpt_path="best" takes the first checkpoint callback's best: build_trainer puts the kept one first.
        warnings.filterwarnings("ignore", message=r'`\.test\(ckpt_path="best"\)` is called with Trainer configured')
        # A resumed run's checkpoint folder holds its checkpoints: that is the point.
        warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
        trainer.fit(module, data, ckpt_path=_last_checkpoint(run_dir, cfg), weights_only=True)
        trained_in = trainer.precision
        test_for_evaluation(trainer)
        metrics = task.test(trainer, module, data, run_dir)
    state = next(c for c in trainer.callbacks if isinstance(c, RunState))
    stopper = next((c for c in trainer.callbacks if isinstance(c, EarlyStopping)), None)
    metrics.update(
        seed=seed,
        epochs_trained=trainer.current_epoch,
        best_epoch=_best_epoch(trainer),
        stopped_early=bool(stopper is not None and stopper.stopped_epoch > 0),
        fit_seconds=round(state.fit_seconds, 1),
        precision=trained_in,  # what precision auto chose here (lcnn.precision)
        best_checkpoint="checkpoints/best.ckpt",  # relative to the run folder, which can be moved
    )
    if trainer.is_global_zero:
        write_json(done, metrics)
        plot_training_curves(run_dir / "metrics.csv", run_dir / "curves.png")
    return metrics


def test_for_evaluation(trainer: L.Trainer) -> None:
    """Make ``trainer``, fitted, test in evaluate's precision (:func:`lcnn.precision.evaluate_precision`, fp32;
    TF32 is off through :class:`lcnn.score.engine.ExactFP32`): training's test is an evaluation, so that
    metrics.json and the run's score files are what ``lcnn evaluate`` computes. The autocast of a ``-mixed``
    training precision is dropped; a ``-true`` one (weights converted, given explicitly) stays."""
    if evaluate_precision() == "fp32" and isinstance(trainer.strategy.precision_plugin, MixedPrecision):
        trainer.strategy.precision_plugin = Precision()


def _best_epoch(trainer: L.Trainer) -> int | None:
    for callback in trainer.checkpoint_callbacks:
        if callback.best_model_path:
            return int(torch.load(callback.best_model_path, map_location="cpu", weights_only=True)["epoch"])
    return None


def summarize(results: dict[int, dict]) -> dict:
    """Mean and standard deviation over seeds of every numeric metric, with the per-seed values."""
    summary: dict[str, Any] = {"seeds": list(results), "per_seed": results, "mean": {}, "std": {}}
    keys = [k for k, v in next(iter(results.values())).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seed"]  # fmt: skip
    for key in keys:
        values = [r[key] for r in results.values() if isinstance(r.get(key), (int, float))]
        summary["mean"][key] = statistics.fmean(values)
        summary["std"][key] = statistics.stdev(values) if len(values) > 1 else 0.0
    return summary
