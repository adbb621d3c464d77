"""The commands on a trained checkpoint: ``evaluate``, ``predict``, ``verify``, ``export`` (``score``:
:mod:`lcnn.cli.score`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lcnn.cli.parsing import add_task_options, command, options_of, print_metrics, short_names, task_choice
from lcnn.errors import UserError
from lcnn.io import write_json
from lcnn.tasks import TASKS, find_checkpoint, load_task
from lcnn.tasks.base import count


def add(commands, task: str | None) -> None:
    """``lcnn evaluate``, ``predict``, ``verify`` and ``export``."""
    for add_one in (_add_evaluate, _add_predict, _add_verify, _add_export):
        add_one(commands, task)


def _bare_name(path: Path) -> str:
    """A checkpoint's name without any suffix: ``best`` of best.ckpt, ``LightCNN_9Layers`` of .pth.tar."""
    return path.name.split(".")[0]


def _model_name(source: str, folder: Path) -> str:
    """``NAME`` of ``hf:ORG/NAME@COMMIT``, else the folder's name."""
    return source.partition("@")[0].rpartition("/")[2] if source.startswith("hf:") else folder.resolve().name


def _provenance(module: Any, ckpt: Path, args: argparse.Namespace) -> dict:
    """``{"provenance": ...}``: a converted release's record (source, file SHA-256, licence); for a released
    LightCNN file given as is (``--model``), its name and SHA-256; nothing for a checkpoint lcnn trained."""
    record = getattr(module, "provenance", None)
    if record is None and getattr(args, "model", None):
        from lcnn.released import sha256

        record = {"format": f"lightcnn:{args.model}", "file": ckpt.name, "sha256": sha256(ckpt)}
    return {"provenance": record} if record else {}


def _read_metrics(out: Path) -> dict:
    import json

    return json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").is_file() else {}


def task_call_options(args: argparse.Namespace, command: str, task: Any, common: tuple[str, ...]) -> dict:
    """The values given for ``common`` options and the task's own options of ``command`` (not ``--model``, which
    names the architecture of a released file and is used to load it)."""
    dests = [*common, *(o.dest for o in options_of(task, command) if o.dest != "model")]
    return {k: getattr(args, k) for k in dests if getattr(args, k, None) is not None}


def _add_evaluate(commands, task: str | None) -> None:
    p = command(
        commands, "evaluate", task,
        help="evaluate a checkpoint or run folder; writes metrics.json, scores and plots",
        description="Evaluate a trained checkpoint (or a run folder's best checkpoint) on the test data of its "
        "run, or on the data given. Writes metrics.json, score files and plots into --out.",
    )  # fmt: skip
    p.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("more", nargs="*", metavar="MORE", help="more checkpoints of the task, evaluated alike (--out DIR: "
                   "into DIR/NAME)")  # fmt: skip
    task_choice(p, "the checkpoint's task, to list its options (default: read from the checkpoint)")
    p.add_argument("--data", help="dataset (default: the one the model was trained on)")
    p.add_argument("--data-dir")
    p.add_argument("--batch-size", type=count(1))
    p.add_argument("--out", help="output folder (default: evaluation/ beside the checkpoint's run)")
    p.add_argument("--plot", metavar="PNG", help="spoof: one DET plot of every checkpoint given")
    add_task_options(p, "evaluate", task)
    p.set_defaults(run=_run_evaluate)


def load(args: argparse.Namespace) -> tuple[Path, Any, dict, Any]:
    """``(checkpoint path, module, run config, task)``; refuses a ``--task`` that is not the checkpoint's."""
    ckpt = find_checkpoint(args.checkpoint)
    module, cfg, task = load_task(ckpt, getattr(args, "model", None))
    if getattr(args, "task", None) and args.task != task.name:
        raise UserError(f"{ckpt}: a {task.name} checkpoint, not {args.task}")
    if str(module.source).startswith("hf:"):  # the exact revision scored, whatever branch or tag was named
        print(f"lcnn: model {module.source}", file=sys.stderr)
    return ckpt, module, cfg, task


def _run_evaluate(args: argparse.Namespace) -> int:
    given = [args.checkpoint, *args.more]
    outs: dict[str, Path] = {}
    failed = False
    for name, checkpoint in zip(short_names(given), given):
        ckpt, module, cfg, task = load(argparse.Namespace(**{**vars(args), "checkpoint": checkpoint}))
        args.task = task.name  # the options parsed are this task's: the others must be of it too
        if args.plot and task.name != "spoof":
            raise UserError(f"--plot draws DET curves of spoof checkpoints; {ckpt} is a {task.name} one")
        out = Path(args.out) if args.out else ckpt.parent.parent / "evaluation"
        if getattr(args, "model", None) and not args.out:  # a released file has no run folder
            out = Path(f"evaluation-{_bare_name(ckpt)}")
        if ckpt.is_dir() and not args.out:  # a Hub-layout folder (maybe in the Hub's cache) is no run folder
            out = Path(f"evaluation-{_model_name(module.source, ckpt)}")
        out = out / name if args.more and args.out else out
        if out in outs.values():
            raise UserError(f"{checkpoint}: its results would overwrite another's in {out}; give --out DIR")
        options = task_call_options(args, "evaluate", task, ("data", "data_dir", "batch_size"))
        result = task.evaluate(module, cfg, out, **options)
        metrics = {**_read_metrics(out), "model": module.source, **_provenance(module, ckpt, args)}
        write_json(out / "metrics.json", metrics)
        print_metrics(result)
        print(f"written to {out}")
        outs[name] = out
        failed = failed or bool(result.get("failed"))  # spoof: files that could not be scored, listed beside
    if args.plot:
        from lcnn.tasks.spoof.report import write_det_overlay

        data, split = result["data"], result["split"]
        if result.get(f"{split}_labelled") is False:
            raise UserError(f"--plot: the {split} split of {data} has no labels; no DET curve to draw")
        files = {name: out / f"scores-{split}.txt" for name, out in outs.items()}
        print(f"DET plot: {write_det_overlay(files, args.plot, title=f'{data} {split}: DET')}")
    return int(failed)


def _add_predict(commands, task: str | None) -> None:
    p = command(
        commands, "predict", task,
        help="predict files: class and probability, spoof score, or face embedding",
        description="Run a trained checkpoint on files: images (class and probability; face embeddings) or "
        "audio (spoof score and decision). One line per file.",
    )  # fmt: skip
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("files", nargs="+", metavar="FILE")
    task_choice(p, "the checkpoint's task, to list its options (default: read from the checkpoint)")
    p.add_argument("--batch-size", type=count(1))
    add_task_options(p, "predict", task)
    p.set_defaults(run=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    _, module, cfg, task = load(args)
    options = task_call_options(args, "predict", task, ("batch_size",))
    for line in task.predict(module, cfg, [Path(f) for f in args.files], **options):
        print(line)
    return 0


def _add_verify(commands, task: str | None) -> None:
    p = command(
        commands, "verify", task,
        help="face: are two images the same person?",
        description="Cosine similarity of two face images' embeddings and a same/different decision.",
    )  # fmt: skip
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("image1")
    p.add_argument("image2")
    for opt in TASKS["face"].verify_options:
        p.add_argument(*opt.flags, **opt.kwargs)
    p.set_defaults(run=_run_verify)


def _run_verify(args: argparse.Namespace) -> int:
    _, module, cfg, task = load(args)
    print(task.verify(module, cfg, Path(args.image1), Path(args.image2), threshold=args.threshold,
                      align=args.align))
    return 0


def _add_export(commands, task: str | None) -> None:
    p = command(
        commands, "export", task,
        help="export a checkpoint's model to ONNX, TorchScript, safetensors or a Hugging Face Hub folder",
        description="Export the model of a checkpoint. ONNX and TorchScript files are run on test batches and "
        "checked against PyTorch (max difference 1e-4) before they are kept. --format hf writes the folder --out "
        "in the Hub layout: model.safetensors, config.json (what rebuilds the model and its input pipeline) and "
        "README.md (a model card with the run's results), for `hf upload ORG/NAME DIR`; every command and "
        "lcnn.load() take the folder, or hf:ORG/NAME once uploaded.",
    )  # fmt: skip
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("--format", required=True, choices=("onnx", "torchscript", "safetensors", "hf"))
    p.add_argument("--out", help="output file (default: beside the checkpoint, named after it); hf: the folder")
    p.add_argument("--license", default="mit", help="hf: the model card's licence, a Hub licence id (default mit)")
    p.add_argument("--model", metavar="ARCH", help="CHECKPOINT is a released LightCNN file of this architecture")
    p.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from lcnn.export import FORMATS, export_model

    ckpt, module, cfg, task = load(args)
    if args.format == "hf":
        from lcnn.card import export_hf

        if not args.out:
            raise UserError("--format hf writes a folder: give --out DIR")
        result = export_hf(ckpt, module, cfg, task, args.out, args.license)
        for key, value in result.items():
            print(f"{key:<16}{value}")
        return 0
    if getattr(module, "ssl", None) is not None:
        raise UserError(f"{ckpt}: a model with an SSL front-end does not export (only its back-end would go)")
    out = Path(args.out) if args.out else ckpt.parent / (_bare_name(ckpt) + FORMATS[args.format])
    from lcnn.models import model_info

    metadata = {"task": task.name, "hyper_parameters": dict(module.hparams)}
    info = model_info(module.hparams.model)
    if args.format != "safetensors" and args.format not in info.exports:
        raise UserError(f"{info.name} is not exported to {args.format} (it exports to {', '.join(info.exports)})")
    frames_axis = 2 if info.variable_length else None  # (N, 1, frames, features)
    result = export_model(module.model, task.example_input(module), out, args.format, metadata, frames_axis)
    for key, value in result.items():
        print(f"{key:<16}{value}")
    return 0
