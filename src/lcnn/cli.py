"""The ``lcnn`` command: train, evaluate, predict, verify, export, models, benchmark."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lcnn.errors import UserError

TASK_CHOICES = ("classify", "spoof", "face")
EPILOG = """examples:
  lcnn train                                    the article's LCNN on the bundled digits (offline, ~1 min)
  lcnn train --data mnist --recipe strong --seed 0 --seed 1 --seed 2
  lcnn train --task spoof --data asvspoof2019-la --data-dir ~/ASVspoof2019
  lcnn evaluate runs/classify-digits-lcnn-20261128-120000
  lcnn predict runs/.../checkpoints/best.ckpt digit.png
  lcnn export runs/.../checkpoints/best.ckpt --format onnx
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_task_from(argv))
    args = parser.parse_args(argv)
    try:
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


def _task_from(argv: list[str]) -> str:
    """The ``--task`` of a ``train`` command line, so that only that task's options are offered."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", choices=TASK_CHOICES, default="classify")
    known, _ = pre.parse_known_args(argv)
    return known.task


def build_parser(task: str = "classify") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lcnn",
        description="Light CNN (Max-Feature-Map) models: image classification, spoofed-speech detection "
        "and face verification.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from lcnn import __version__

    parser.add_argument("--version", action="version", version=f"lcnn {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _add_train(commands, task)
    _add_evaluate(commands)
    _add_predict(commands)
    _add_verify(commands)
    _add_export(commands)
    _add_models(commands)
    _add_benchmark(commands)
    return parser


def _add_train(commands, task: str) -> None:
    from lcnn.tasks import get_task

    p = commands.add_parser(
        "train",
        help="train a model; writes a run folder",
        description="Train a model and test its best checkpoint. Writes a run folder with config.json, "
        "checkpoints/ (best.ckpt, last.ckpt), metrics.csv, metrics.json and curves.png. Options not given "
        "come from the recipe for the task and data. Task-specific options are listed with --task TASK --help.",
    )
    p.add_argument("--task", choices=TASK_CHOICES, default="classify", help="what to train (default: classify)")
    p.add_argument("--data", help="dataset; classify: digits (default, bundled), mnist, cifar10, folder:PATH; "
                   "spoof: minispoof, asvspoof2019-la, asvspoof2019-pa, asvspoof2021-la, asvspoof2021-df, "
                   "custom (with --protocol); "
                   "face: orl, folder:PATH")
    p.add_argument("--data-dir", help="folder holding the dataset (otherwise downloaded or bundled)")
    p.add_argument("--recipe", default="article",
                   help="training recipe: article (the reference's; default), strong (classify), small (face)")
    p.add_argument("--model", help="architecture (see `lcnn models`)")
    p.add_argument("--epochs", type=int, help="maximum number of epochs")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs (0: off)")
    p.add_argument("--val-fraction", type=float, dest="val_fraction",
                   help="classify, face: share of the training images held out for validation (face: of each "
                   "person's images; default: the recipe's, 0.2 in the article's)")
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
    group = p.add_argument_group(f"{task} options")
    for flags, kwargs in getattr(get_task(task), "TRAIN_OPTIONS", []):
        group.add_argument(*flags, **kwargs)
    p.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from lcnn.train import resolve_config, train

    options = {k: v for k, v in vars(args).items() if k not in ("run", "task", "data", "recipe")}
    if options.get("devices") and str(options["devices"]).isdigit():
        options["devices"] = int(options["devices"])
    cfg = resolve_config(args.task, args.data, args.recipe, **options)
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


RELEASED_HELP = "face: CHECKPOINT is a released LightCNN file (.pth.tar) of this architecture, e.g. lightcnn29v2"


def _add_evaluate(commands) -> None:
    p = commands.add_parser(
        "evaluate",
        help="evaluate a checkpoint or run folder; writes metrics.json, scores and plots",
        description="Evaluate a trained checkpoint (or a run folder's best checkpoint) on the test data of its "
        "run, or on the data given. Writes metrics.json, score files and plots into --out.",
    )
    p.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("--data", help="dataset (default: the one the model was trained on)")
    p.add_argument("--data-dir")
    p.add_argument("--split", help="which split to score (spoof: dev or eval; default eval)")
    p.add_argument("--protocol", help="spoof: protocol file of the trials to score")
    p.add_argument("--asv-scores", help="spoof: ASVspoof ASV score file, for the min t-DCF")
    p.add_argument("--pairs", help="face: pairs file (LFW pairs.txt format or 'path1 path2 label' lines)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--test-time-flip", action=argparse.BooleanOptionalAction, default=None,
                   help="classify: average each image's probabilities with its mirror image's (default: as "
                   "trained; on in the strong recipe for CIFAR-10 and folders)")
    p.add_argument("--out", help="output folder (default: evaluation/ beside the checkpoint's run)")
    p.add_argument("--model", metavar="ARCH", help=RELEASED_HELP)
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from lcnn.tasks import find_checkpoint, load_task

    ckpt = find_checkpoint(args.checkpoint)
    module, cfg, task = load_task(ckpt, args.model)
    out = Path(args.out) if args.out else ckpt.parent.parent / "evaluation"
    if args.model and not args.out:  # a released file has no run folder
        out = Path(f"evaluation-{_bare_name(ckpt)}")
    options = {k: v for k, v in vars(args).items()
               if k not in ("run", "checkpoint", "out", "model") and v is not None}  # fmt: skip
    result = task.evaluate(module, cfg, out, **options)
    _print_metrics(result)
    print(f"written to {out}")
    return 0


def _add_predict(commands) -> None:
    p = commands.add_parser(
        "predict",
        help="predict files: class and probability, spoof score, or face embedding",
        description="Run a trained checkpoint on files: images (class and probability; face embeddings) or "
        "audio (spoof score and decision). One line per file.",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--threshold", type=float, help="decision threshold (default: the one chosen on dev)")
    p.add_argument("--resize", action="store_true", default=None, help="resize images to the model's input size")
    p.add_argument("--out", help="face: where to write embeddings.npy and its index")
    p.add_argument("--model", metavar="ARCH", help=RELEASED_HELP)
    p.add_argument("--int8", action="store_true", default=None,
                   help="images: run the model in int8 on the CPU (x86 with AVX512-VNNI: LightCNN-29v2 5.7x, the "
                        "article's LCNN 2.3x the fp32 speed), calibrated on the given images; outputs within a few "
                        "percent of fp32 (cosine > 0.999)")  # fmt: skip
    p.set_defaults(run=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from lcnn.tasks import load_task

    module, cfg, task = load_task(args.checkpoint, args.model)
    options = {k: v for k, v in vars(args).items() if k in ("threshold", "resize", "out", "int8") and v is not None}
    for line in task.predict(module, cfg, [Path(f) for f in args.files], **options):
        print(line)
    return 0


def _add_verify(commands) -> None:
    p = commands.add_parser(
        "verify",
        help="face: are two images the same person?",
        description="Cosine similarity of two face images' embeddings and a same/different decision.",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("image1")
    p.add_argument("image2")
    p.add_argument("--threshold", type=float, help="similarity threshold (default: the one chosen in training)")
    p.add_argument("--model", metavar="ARCH", help=RELEASED_HELP)
    p.set_defaults(run=_run_verify)


def _run_verify(args: argparse.Namespace) -> int:
    from lcnn.tasks import load_task

    module, cfg, task = load_task(args.checkpoint, args.model)
    if not hasattr(task, "verify"):
        raise UserError(f"{args.checkpoint}: a {task.NAME} checkpoint; verify needs a face model")
    print(task.verify(module, cfg, Path(args.image1), Path(args.image2), threshold=args.threshold))
    return 0


def _add_export(commands) -> None:
    p = commands.add_parser(
        "export",
        help="export a checkpoint's model to ONNX, TorchScript or safetensors",
        description="Export the model of a checkpoint. ONNX and TorchScript files are run on test batches and "
        "checked against PyTorch (max difference 1e-4) before they are kept.",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("--format", required=True, choices=("onnx", "torchscript", "safetensors"))
    p.add_argument("--out", help="output file (default: beside the checkpoint, named after it)")
    p.add_argument("--model", metavar="ARCH", help=RELEASED_HELP)
    p.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from lcnn.export import FORMATS, export_model
    from lcnn.tasks import find_checkpoint, load_task

    ckpt = find_checkpoint(args.checkpoint)
    module, cfg, task = load_task(ckpt, args.model)
    out = Path(args.out) if args.out else ckpt.parent / (_bare_name(ckpt) + FORMATS[args.format])
    metadata = {"task": task.NAME, "hyper_parameters": dict(module.hparams)}
    result = export_model(module.model, task.example_input(module), out, args.format, metadata)
    for key, value in result.items():
        print(f"{key:<16}{value}")
    return 0


def _add_models(commands) -> None:
    p = commands.add_parser("models", help="list the architectures with parameters and MACs")
    p.set_defaults(run=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from lcnn.benchmark import model_table

    print(model_table())
    return 0


def _add_benchmark(commands) -> None:
    p = commands.add_parser(
        "benchmark",
        help="inference and training throughput of a model on this machine",
        description="Images (or utterances) per second of a model, eager fp32 against the fast defaults.",
    )
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
