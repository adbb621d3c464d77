"""``lcnn models``, ``lcnn benchmark`` and ``lcnn cache``: what is there, how fast it runs here, what is cached."""

from __future__ import annotations

import argparse

from lcnn.cli.parsing import command
from lcnn.tasks.base import count


def add(commands, task: str | None) -> None:
    """``lcnn models``, ``lcnn benchmark`` and ``lcnn cache``."""
    _add_models(commands, task)
    _add_benchmark(commands, task)
    _add_cache(commands, task)


def _add_models(commands, task: str | None) -> None:
    p = command(commands, "models", task, help="list the architectures with parameters and MACs")
    p.set_defaults(run=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from lcnn.benchmark import model_table

    print(model_table())
    return 0


def _add_benchmark(commands, task: str | None) -> None:
    p = command(
        commands, "benchmark", task,
        help="inference and training throughput of a model on this machine",
        description="Images (or utterances) per second of a model, eager fp32 against the fast defaults.",
    )  # fmt: skip
    p.add_argument("--model", default="lcnn")
    p.add_argument("--input-shape", type=int, nargs="+", help="C H W (default: the model's own)")
    p.add_argument("--batch-size", type=count(1), default=64)
    p.add_argument("--steps", type=count(1), default=10)
    p.set_defaults(run=_run_benchmark)


def _run_benchmark(args: argparse.Namespace) -> int:
    from lcnn.benchmark import throughput_table

    print(throughput_table(args.model, args.input_shape, args.batch_size, args.steps))
    return 0


def _add_cache(commands, task: str | None) -> None:
    p = command(commands, "cache", task, help="the feature cache: entries and size per front-end, or clear it")
    p.add_argument("action", choices=("info", "clear"))
    p.add_argument("--cache-dir", metavar="DIR", help="default: $LCNN_CACHE/features or ~/.cache/lcnn/features")
    p.add_argument("--frontend", metavar="NAME", help="clear only this front-end's folders (lfcc, spec or a folder)")
    p.set_defaults(run=_run_cache)


def _run_cache(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lcnn.data.download import cache_dir
    from lcnn.data.features import cache_folders, clear_cache, format_cache

    root = Path(args.cache_dir) if args.cache_dir else cache_dir() / "features"
    rows = cache_folders(root) if args.action == "info" else clear_cache(root, args.frontend)
    print(format_cache(rows, root, removed=args.action == "clear"))
    return 0
