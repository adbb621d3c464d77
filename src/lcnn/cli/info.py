"""``lcnn models`` and ``lcnn benchmark``: what is there and how fast it runs here."""

from __future__ import annotations

import argparse

from lcnn.cli.parsing import command
from lcnn.tasks.base import count


def add(commands, task: str | None) -> None:
    """``lcnn models`` and ``lcnn benchmark``."""
    _add_models(commands, task)
    _add_benchmark(commands, task)


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
