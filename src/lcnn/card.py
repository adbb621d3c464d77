"""``lcnn export RUN --format hf``: a trained model as a folder in the Hugging Face Hub layout
(:mod:`lcnn.hub`), with a model card (``README.md``) whose YAML metadata is the Hub's: library, pipeline tag,
tags, datasets, licence and the run's test results (``metrics.json``) as a ``model-index``; below it the
DET / ROC plot, the training command, the data and the limitations. Ready for ``hf upload ORG/NAME DIR``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from lcnn import __version__
from lcnn.errors import UserError
from lcnn.hub import write_folder

__all__ = ["export_hf", "model_card", "training_command"]

# Per task: the Hub's pipeline tag and tags, the task type of the model-index, the plot of the run folder, the
# metrics of metrics.json reported (key, metric type, name), and the limitations in words.
_TASKS: dict[str, dict[str, Any]] = {
    "spoof": {
        "pipeline": "audio-classification", "tags": ["anti-spoofing", "audio-deepfake-detection", "asvspoof"],
        "plot": "det.png", "plot_name": "DET curve",
        "metrics": [("eval_eer", "eer", "EER (eval)"), ("eval_min_tdcf", "min-tdcf", "min t-DCF (eval)"),
                    ("eval_min_dcf", "min-dcf", "minDCF (eval)"), ("eval_act_dcf", "act-dcf", "actDCF (eval)"),
                    ("eval_cllr", "cllr", "Cllr (eval)"), ("dev_eer", "eer", "EER (dev)")],
        "limitations": "A countermeasure scores what it was trained to tell apart: attacks, codecs, channels and "
        "languages absent from its training data can score as bona fide. The decision threshold is the dev EER "
        "threshold of training; scores are LLRs only where the model was calibrated (`lcnn calibrate`), and a "
        "calibration holds for data like its dev set. Not a proof of authenticity.",
    },
    "face": {
        "pipeline": "image-feature-extraction", "tags": ["face-verification", "lightcnn"],
        "plot": "test_roc.png", "plot_name": "ROC curve",
        "metrics": [("test_acc", "accuracy", "verification accuracy (unseen people)"),
                    ("test_eer", "eer", "EER (unseen people)"),
                    ("test_tar_at_far_1e-3", "tar_at_far_0.001", "TAR at FAR 0.1 %")],
        "limitations": "Verification accuracy depends on the people, poses, lighting and image quality of the "
        "data; it was measured on the pairs named below only, and may differ across demographic groups. The "
        "same/different threshold is the one chosen at training. Face recognition is regulated in many places: "
        "use it only with the consent and legal basis it needs.",
    },
    "classify": {
        "pipeline": "image-classification", "tags": ["image-classification"],
        "plot": "curves.png", "plot_name": "training curves",
        "metrics": [("test_acc", "accuracy", "test accuracy")],
        "limitations": "The classifier knows only its training classes and input size; images unlike its "
        "training data (other scans, colours, sizes) are still given one of those classes.",
    },
}


def training_command(task: Any, cfg: dict[str, Any]) -> str:
    """The ``lcnn train`` command of a run config: the settings that differ from the recipe's for its data
    (local paths shown as their setting's name in capitals)."""
    if not cfg.get("data"):
        return ""
    try:
        base = task.resolve(cfg["data"], cfg.get("recipe", "article"))
    except UserError:
        base = {}
    words = ["lcnn", "train", "--task", task.name, "--data", _public(task, "data", cfg["data"])]
    if cfg.get("recipe", "article") != "article":
        words += ["--recipe", cfg["recipe"]]
    for key, value in cfg.items():
        if key in ("task", "data", "recipe", "out") or value == base.get(key, value) or value is None:
            continue
        flag = "--" + ("seed" if key == "seeds" else key.replace("_", "-"))
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, bool):
                words.append(flag if item else "--no-" + flag[2:])
            else:
                words += [flag, str(_public(task, key, item))]
    return " ".join(words)


def _public(task: Any, key: str, value: Any) -> Any:
    """``value`` without the local paths it names: a path setting as its name in capitals, ``folder:PATH`` data
    as ``folder:DIR``."""
    if key in task.path_settings:
        return key.upper()
    if key == "data" and str(value).startswith("folder:"):
        return "folder:DIR"
    return value


def _public_config(task: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    """The run config that travels with the model: its local paths left out (``evaluate`` then needs
    ``--data-dir``, as for any data)."""
    return {k: _public(task, k, v) for k, v in cfg.items() if k not in task.path_settings and k != "out"}


def _eval_results(task: str, data: str, metrics: dict[str, Any]) -> list[Any]:
    from huggingface_hub import EvalResult

    results = []
    for key, kind, name in _TASKS[task]["metrics"]:
        value = metrics.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            split = key.split("_")[0]
            results.append(EvalResult(task_type=_TASKS[task]["pipeline"], dataset_type=data, dataset_name=data,
                                      dataset_split=split if split in ("dev", "eval", "test") else None,
                                      metric_type=kind, metric_name=name, metric_value=float(value)))  # fmt: skip
    return results


def model_card(config: dict[str, Any], metrics: dict[str, Any], command: str, name: str,
               license: str = "mit", plot: str | None = None) -> str:  # fmt: skip
    """The ``README.md`` of an exported model: the Hub's YAML metadata, then the model, its results, how it
    was trained, the data, the limitations and how to use it."""
    from huggingface_hub import ModelCardData

    task, info = config["task"], _TASKS[config["task"]]
    data = str((config.get("run_config") or {}).get("data") or "unknown")
    results = _eval_results(task, data, metrics)
    meta = ModelCardData(library_name="lcnn", license=license, pipeline_tag=info["pipeline"],
                         tags=["lcnn", "max-feature-map", *info["tags"]], model_name=name,
                         datasets=[data] if data != "unknown" else None,
                         eval_results=results or None)  # fmt: skip
    hp = config["hyper_parameters"]
    rows = "\n".join(f"| {r.metric_name} | {r.dataset_name} {r.dataset_split or ''} | {r.metric_value:.4f} |"
                     for r in results)  # fmt: skip
    lines = [
        "---", meta.to_yaml(), "---", "", f"# {name}", "",
        f"A Light CNN (Max-Feature-Map) {task} model trained with [lcnn](https://pypi.org/project/lcnn/) "
        f"{__version__}: architecture `{config['architecture']}`"
        + (f", front-end `{hp['frontend']['name']}` at {hp['frontend'].get('sample_rate')} Hz" if hp.get("frontend")
           else "") + (f", head `{hp['loss']}`" if hp.get("loss") else "") + ".", "",
        "## Results", "",
        ("| metric | data | value |\n|---|---|---|\n" + rows) if rows else "No test results were recorded.",
        "",
    ]  # fmt: skip
    if plot:
        lines += [f"![{info['plot_name']}]({plot})", ""]
    lines += [
        "## Use", "", "```python", "import lcnn", "", f'model = lcnn.load("hf:ORG/{name}")  # or the folder itself',
        {"spoof": 'print(model.score("audio.flac"))', "face": 'print(model.verify("a.jpg", "b.jpg"))',
         "classify": 'print(model.predict("image.png"))'}[task], "```", "",
        f"or `lcnn {'score' if task == 'spoof' else 'predict'} hf:ORG/{name} ...`; `config.json` holds the "
        "architecture, the front-end and the head, the sample rate, the threshold and the calibration.", "",
        "## Training", "", "```bash", command or "(not recorded)", "```", "",
        "## Data", "", f"Trained on `{data}`. See the dataset's own terms of use.", "",
        "## Limitations", "", info["limitations"], "",
    ]  # fmt: skip
    return "\n".join(lines)


def export_hf(checkpoint: Path, module: Any, cfg: dict[str, Any], task: Any, out: str | Path,
              license: str = "mit") -> dict[str, Any]:  # fmt: skip
    """Write the Hub-layout folder ``out`` of a loaded checkpoint (``lcnn.tasks.load_task``): weights,
    config, model card and the run's plot; the results come from the run's ``metrics.json``."""
    out = Path(out)  # never the checkpoint's own folder: the command line checks every --out against its inputs
    hp = dict(module.hparams)
    calibration = getattr(module, "calibration", None)
    threshold = float(getattr(module, "threshold", torch.tensor(math.nan)))
    config = {
        "task": task.name, "architecture": hp["model"], "hyper_parameters": hp,
        "frontend": hp.get("frontend"), "sample_rate": (hp.get("frontend") or {}).get("sample_rate"),
        "head": hp.get("loss"), "classes": hp.get("classes"),
        "threshold": threshold if math.isfinite(threshold) else None,
        "calibration": calibration.to_dict() if calibration is not None else None,
        "run_config": _public_config(task, cfg),
    }  # fmt: skip
    run = Path(checkpoint).parent.parent if Path(checkpoint).parent.name == "checkpoints" else Path(checkpoint).parent
    metrics = _read_json(run / "metrics.json") if Path(checkpoint).is_file() else {}
    plot = run / _TASKS[task.name]["plot"]
    extra = {plot.name: plot} if plot.is_file() and Path(checkpoint).is_file() else {}
    card = model_card(config, metrics, training_command(task, cfg), out.resolve().name, license,
                      plot.name if extra else None)  # fmt: skip
    write_folder(out, module.state_dict(), config, card, extra)
    return {"path": str(out), "format": "hf", "files": ", ".join(["config.json", "model.safetensors", "README.md",
                                                                  *extra])}  # fmt: skip


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{path}: not readable JSON") from None
    return data if isinstance(data, dict) else {}
