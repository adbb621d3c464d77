"""The ``lcnn`` command: train, evaluate, predict, score, cache, verify, export, models, benchmark.

Building the parser imports no torch or Lightning: each task's options come from its :class:`~lcnn.tasks.Task`
(light classes), and the commands import what they run. ``evaluate`` and ``predict`` take the options of the
checkpoint's task (``--task`` to see them without one); an option of another task is an error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from lcnn.errors import UserError

EPILOG = """examples:
  lcnn train                                    the article's LCNN on the bundled digits (offline, ~1 min)
  lcnn train --data mnist --recipe strong --seed 0 --seed 1 --seed 2
  lcnn train --task spoof --data asvspoof2019-la --data-dir ~/ASVspoof2019
  lcnn evaluate runs/classify-digits-lcnn-20261128-120000
  lcnn predict runs/.../checkpoints/best.ckpt digit.png
  lcnn score runs/.../checkpoints/best.ckpt eval.trl.txt --audio-dir flac --out scores.txt --workers 2
  lcnn export runs/.../checkpoints/best.ckpt --format onnx
  lcnn COMMAND --help                           a command's options (train/evaluate/predict: add --task TASK)
"""
TASK_COMMANDS = ("train", "evaluate", "predict")  # the commands with task options


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (:class:`UserError`, exit 2 in :func:`main`); an unknown option that is
    another task's is named as such."""

    task: str | None = None

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see {self.prog} --help)")

    def parse_args(self, args: list[str] | None = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            command = getattr(parsed, "command", None)
            message = f"unrecognized arguments: {' '.join(extra)}"
            foreign = _foreign_option(extra, command, self.task) if command in TASK_COMMANDS else None
            raise UserError(f"{foreign or message} (see {self.prog} {command or ''} --help)".replace("  ", " "))
        return parsed


def _foreign_option(extra: list[str], command: str, task: str | None) -> str | None:
    """``--pairs is not an option of the spoof task (face takes it)`` for an option of another task."""
    from lcnn.tasks import TASKS

    for flag in (f.split("=")[0] for f in extra if f.startswith("--")):
        owners = [t.name for t in TASKS.values() if any(flag in o.flags for o in _options(t, command))]
        if owners and task not in owners:
            where = f"the {task} task" if task else f"lcnn {command} without --task"
            return f"{flag} is not an option of {where} ({', '.join(owners)} take{'s' * (len(owners) == 1)} it)"
    return None


def _options(task: Any, command: str) -> tuple:
    return getattr(task, f"{command}_options", ())


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(_task_of(argv)).parse_args(argv)
        return args.run(args) or 0
    except UserError as err:
        print(f"lcnn: error: {err}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        print(f"lcnn: error: {err.filename or err}: no such file or folder", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lcnn: interrupted", file=sys.stderr)
        return 130


def _task_of(argv: list[str]) -> str | None:
    """The task whose options a command line takes: ``--task``, else face for ``--model`` (a released file),
    else the task of the checkpoint or run folder given to ``evaluate`` / ``predict``; ``train``'s default is
    ``classify``. ``None`` where it cannot be known (the command's common options only)."""
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in TASK_COMMANDS:
        return None
    from lcnn.tasks import TASKS

    for i, arg in enumerate(argv):
        if arg == "--task" and i + 1 < len(argv) or arg.startswith("--task="):
            name = arg.partition("=")[2] or argv[i + 1]
            return name if name in TASKS else None  # an unknown task: the parser says which ones exist
    try:
        known, _ = build_parser(None).parse_known_args([a for a in argv if a not in ("-h", "--help")])
    except UserError:
        return None
    if command == "train":
        return "classify"
    if any(a == "--model" or a.startswith("--model=") for a in argv):
        return "face"
    return _peek_task(known.checkpoint) if getattr(known, "checkpoint", None) else None


def _peek_task(path: str) -> str | None:
    """The task of a run folder (its config.json) or checkpoint; ``None`` where it is unreadable (the command
    itself then says why)."""
    config = Path(path) / "config.json"
    try:
        if config.is_file():
            return json.loads(config.read_text()).get("task")
        from lcnn.tasks import read_checkpoint

        return read_checkpoint(path)["lcnn_task"]
    except (UserError, OSError, ValueError, AttributeError):
        return None


def build_parser(task: str | None = "classify") -> argparse.ArgumentParser:
    """The ``lcnn`` parser, with the options of ``task`` for the commands that have task options."""
    from lcnn import __version__

    parser = _Parser(
        prog="lcnn",
        description="Light CNN (Max-Feature-Map) models: image classification, spoofed-speech detection "
        "and face verification.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.task = task
    parser.add_argument("--version", action="version", version=f"lcnn {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True, parser_class=_Parser)
    for add in (_add_train, _add_evaluate, _add_predict, _add_score, _add_cache, _add_verify, _add_export, _add_models,
                _add_benchmark):
        add(commands, task)
    return parser


def _command(commands, name: str, task: str | None, **kwargs) -> _Parser:
    p = commands.add_parser(name, **kwargs)
    p.task = task
    p.set_defaults(command=name)
    return p


def _add_task_options(p: argparse.ArgumentParser, command: str, task: str | None) -> None:
    from lcnn.tasks import TASKS

    if task is None:
        p.epilog = f"Task options: lcnn {command} --task {{{','.join(TASKS)}}} --help"
        return
    group = p.add_argument_group(f"{task} options")
    for opt in _options(TASKS[task], command):
        group.add_argument(*opt.flags, **opt.kwargs)


def _task_choice(p: argparse.ArgumentParser, help: str) -> None:
    from lcnn.tasks import TASKS

    p.add_argument("--task", choices=list(TASKS), help=help)


def _add_train(commands, task: str | None) -> None:
    from lcnn.tasks import TASKS

    p = _command(
        commands, "train", task,
        help="train a model; writes a run folder",
        description="Train a model and test its best checkpoint. Writes a run folder with config.json, "
        "checkpoints/ (best.ckpt, last.ckpt), metrics.csv, metrics.json and curves.png. Options not given "
        "come from the recipe for the task and data.",
    )  # fmt: skip
    _task_choice(p, "what to train (default: classify)")
    data_help = "; ".join(f"{t.name}: {t.data_help}" for t in TASKS.values())
    p.add_argument("--data", help=f"dataset; {data_help}")
    p.add_argument("--data-dir", help="folder holding the dataset (otherwise downloaded or bundled)")
    p.add_argument("--recipe", default="article",
                   help="training recipe: article (the reference's; default), strong (classify), small (face)")
    p.add_argument("--model", help="architecture (see `lcnn models`)")
    p.add_argument("--epochs", type=int, help="maximum number of epochs")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs (0: off)")
    p.add_argument("--seed", type=int, action="append", dest="seeds",
                   help="random seed; repeat to train several seeds and get a summary (default: 0)")
    p.add_argument("--accelerator", help="cpu, gpu, mps or auto (default)")
    p.add_argument("--devices", help="number of devices or processes (default 1); >1 trains with DDP")
    p.add_argument("--strategy", help="Lightning strategy: auto, ddp, ddp_spawn, ... (default auto)")
    p.add_argument("--precision", help="auto (default: bf16-mixed on bf16 GPUs and AMX CPUs, else 32-true), "
                   "32-true, bf16-mixed, 16-mixed")
    p.add_argument("--num-workers", type=int, help="data-loading worker processes (default 0)")
    p.add_argument("--out", help="run folder (default runs/TASK-DATA-MODEL-TIME)")
    p.add_argument("--resume", action="store_true", default=None, help="continue the run in --out from last.ckpt")
    _add_task_options(p, "train", task)
    p.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from lcnn.train import resolve_config, train

    options = {k: v for k, v in vars(args).items() if k not in ("run", "command", "task", "data", "recipe")}
    if options.get("devices") and str(options["devices"]).isdigit():
        options["devices"] = int(options["devices"])
    cfg = resolve_config(args.task or "classify", args.data, args.recipe, **options)
    result = train(cfg)
    if int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0:
        _print_metrics(result)  # once, not once per DDP process
    return 0


def _print_metrics(result: dict) -> None:
    if "mean" in result:
        print(f"{'metric':<24}{'mean':>12}{'std':>12}")
        for key, mean in result["mean"].items():
            print(f"{key:<24}{mean:>12.5g}{result['std'][key]:>12.5g}")
        return
    for key, value in result.items():
        if not isinstance(value, (dict, list)):
            print(f"{key:<24}{value}")


def _bare_name(path: Path) -> str:
    """A checkpoint's name without any suffix: ``best`` of best.ckpt, ``LightCNN_9Layers`` of .pth.tar."""
    return path.name.split(".")[0]


def _task_call_options(args: argparse.Namespace, command: str, task: Any, common: tuple[str, ...]) -> dict:
    """The values given for ``common`` options and the task's own options of ``command`` (not ``--model``, which
    names the architecture of a released file and is used to load it)."""
    dests = [*common, *(o.dest for o in _options(task, command) if o.dest != "model")]
    return {k: getattr(args, k) for k in dests if getattr(args, k, None) is not None}


def _add_evaluate(commands, task: str | None) -> None:
    p = _command(
        commands, "evaluate", task,
        help="evaluate a checkpoint or run folder; writes metrics.json, scores and plots",
        description="Evaluate a trained checkpoint (or a run folder's best checkpoint) on the test data of its "
        "run, or on the data given. Writes metrics.json, score files and plots into --out.",
    )  # fmt: skip
    p.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT")
    _task_choice(p, "the checkpoint's task, to list its options (default: read from the checkpoint)")
    p.add_argument("--data", help="dataset (default: the one the model was trained on)")
    p.add_argument("--data-dir")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--out", help="output folder (default: evaluation/ beside the checkpoint's run)")
    _add_task_options(p, "evaluate", task)
    p.set_defaults(run=_run_evaluate)


def _load(args: argparse.Namespace) -> tuple[Path, Any, dict, Any]:
    """``(checkpoint path, module, run config, task)``; refuses a ``--task`` that is not the checkpoint's."""
    from lcnn.tasks import find_checkpoint, load_task

    ckpt = find_checkpoint(args.checkpoint)
    module, cfg, task = load_task(ckpt, getattr(args, "model", None))
    if getattr(args, "task", None) and args.task != task.name:
        raise UserError(f"{ckpt}: a {task.name} checkpoint, not {args.task}")
    return ckpt, module, cfg, task


def _run_evaluate(args: argparse.Namespace) -> int:
    ckpt, module, cfg, task = _load(args)
    out = Path(args.out) if args.out else ckpt.parent.parent / "evaluation"
    if getattr(args, "model", None) and not args.out:  # a released file has no run folder
        out = Path(f"evaluation-{_bare_name(ckpt)}")
    options = _task_call_options(args, "evaluate", task, ("data", "data_dir", "batch_size"))
    result = task.evaluate(module, cfg, out, **options)
    _print_metrics(result)
    print(f"written to {out}")
    return int(bool(result.get("failed")))  # spoof: files that could not be scored, listed in failed_file


def _add_predict(commands, task: str | None) -> None:
    p = _command(
        commands, "predict", task,
        help="predict files: class and probability, spoof score, or face embedding",
        description="Run a trained checkpoint on files: images (class and probability; face embeddings) or "
        "audio (spoof score and decision). One line per file.",
    )  # fmt: skip
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("files", nargs="+", metavar="FILE")
    _task_choice(p, "the checkpoint's task, to list its options (default: read from the checkpoint)")
    p.add_argument("--batch-size", type=int)
    _add_task_options(p, "predict", task)
    p.set_defaults(run=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    _, module, cfg, task = _load(args)
    options = _task_call_options(args, "predict", task, ("batch_size",))
    for line in task.predict(module, cfg, [Path(f) for f in args.files], **options):
        print(line)
    return 0


def _add_score(commands, task: str | None) -> None:
    from lcnn.tasks import TASKS

    p = _command(commands, "score", task, help="spoof: score a protocol, CSV, list or folder of audio into a file",
                 description="Score every trial of INPUT (an ASVspoof protocol or trial list, a CSV path,label[,speaker"
                 ",attack], a list of paths, a folder of .flac/.wav, or one file), one line per trial in INPUT's "
                 "order; higher = bona fide. The same command resumes a killed run. Exit 1 when some files failed.")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("input", metavar="INPUT")
    for opt in TASKS["spoof"].score_options:
        p.add_argument(*opt.flags, **opt.kwargs)
    p.set_defaults(run=_run_score)


def _run_score(args: argparse.Namespace) -> int:
    _, module, cfg, task = _load(args)
    summary = task.score(module, cfg, args.input, **_task_call_options(args, "score", task, ()))
    if summary is not None:  # process 0 of several
        print(summary)
    return int(bool(summary and summary.failed))


def _add_cache(commands, task: str | None) -> None:
    p = _command(commands, "cache", task, help="the feature cache: entries and size per front-end, or clear it")
    p.add_argument("action", choices=("info", "clear"))
    p.add_argument("--cache-dir", metavar="DIR", help="default: $LCNN_CACHE/features or ~/.cache/lcnn/features")
    p.add_argument("--frontend", metavar="NAME", help="clear only this front-end's folders (lfcc, spec or a folder)")
    p.set_defaults(run=_run_cache)


def _run_cache(args: argparse.Namespace) -> int:
    from lcnn.data.download import cache_dir
    from lcnn.data.features import cache_folders, clear_cache, format_cache

    root = Path(args.cache_dir) if args.cache_dir else cache_dir() / "features"
    rows = cache_folders(root) if args.action == "info" else clear_cache(root, args.frontend)
    print(format_cache(rows, root, removed=args.action == "clear"))
    return 0


def _add_verify(commands, task: str | None) -> None:
    from lcnn.tasks import TASKS

    p = _command(
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
    _, module, cfg, task = _load(args)
    print(task.verify(module, cfg, Path(args.image1), Path(args.image2), threshold=args.threshold))
    return 0


def _add_export(commands, task: str | None) -> None:
    p = _command(
        commands, "export", task,
        help="export a checkpoint's model to ONNX, TorchScript or safetensors",
        description="Export the model of a checkpoint. ONNX and TorchScript files are run on test batches and "
        "checked against PyTorch (max difference 1e-4) before they are kept.",
    )  # fmt: skip
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("--format", required=True, choices=("onnx", "torchscript", "safetensors"))
    p.add_argument("--out", help="output file (default: beside the checkpoint, named after it)")
    p.add_argument("--model", metavar="ARCH", help="CHECKPOINT is a released LightCNN file of this architecture")
    p.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from lcnn.export import FORMATS, export_model

    ckpt, module, cfg, task = _load(args)
    out = Path(args.out) if args.out else ckpt.parent / (_bare_name(ckpt) + FORMATS[args.format])
    metadata = {"task": task.name, "hyper_parameters": dict(module.hparams)}
    result = export_model(module.model, task.example_input(module), out, args.format, metadata)
    for key, value in result.items():
        print(f"{key:<16}{value}")
    return 0


def _add_models(commands, task: str | None) -> None:
    p = _command(commands, "models", task, help="list the architectures with parameters and MACs")
    p.set_defaults(run=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from lcnn.benchmark import model_table

    print(model_table())
    return 0


def _add_benchmark(commands, task: str | None) -> None:
    p = _command(
        commands, "benchmark", task,
        help="inference and training throughput of a model on this machine",
        description="Images (or utterances) per second of a model, eager fp32 against the fast defaults.",
    )  # fmt: skip
    p.add_argument("--model", default="lcnn")
    p.add_argument("--input-shape", type=int, nargs="+", help="C H W (default: the model's own)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.set_defaults(run=_run_benchmark)


def _run_benchmark(args: argparse.Namespace) -> int:
    from lcnn.benchmark import throughput_table

    print(throughput_table(args.model, args.input_shape, args.batch_size, args.steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
