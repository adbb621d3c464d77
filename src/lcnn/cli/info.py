"""``lcnn models``, ``lcnn benchmark`` and ``lcnn cache``: what is there, how fast it runs here, what is cached."""

from __future__ import annotations

import argparse

from lcnn.cli.parsing import command
from lcnn.errors import UserError
from lcnn.tasks.base import count, positive


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
        description="Images (or utterances) per second of a model, eager fp32 against the fast defaults. With "
                    "--probe: the precision probe's table (fp32 / bf16 training, fp32 / bf16 / int8 inference) and "
                    "what precision auto, predict and scoring choose from it here.",
    )  # fmt: skip
    p.add_argument("--model", default="lcnn")
    p.add_argument("--input-shape", type=int, nargs="+", help="C H W (default: the model's own)")
    p.add_argument("--batch-size", type=count(1), default=64)
    p.add_argument("--steps", type=count(1), default=10)
    p.add_argument("--probe", action="store_true", help="show the precision probe of --model and its choice")
    p.add_argument("--refresh", action="store_true", help="with --probe: measure again (the table is cached)")
    p.add_argument("--budget", type=positive, default=0.3, metavar="SECONDS",
                   help="with --probe --refresh or a first probe: timed seconds per candidate (default 0.3)")
    p.set_defaults(run=_run_benchmark)


def _run_benchmark(args: argparse.Namespace) -> int:
    from lcnn.benchmark import probe_text, throughput_table
    from lcnn.models import model_info
    from lcnn.probe import probe

    shape = args.input_shape
    if shape is not None and (len(shape) != 3 or min(shape) < 1):
        raise UserError(f"--input-shape {' '.join(map(str, shape))}: expected C H W, three whole numbers of at least 1")
    try:
        if not args.probe:
            print(throughput_table(args.model, shape, args.batch_size, args.steps))
            return 0
        result = probe(args.model, shape, budget_s=args.budget, refresh=args.refresh)
    except (RuntimeError, ValueError, TypeError, NotImplementedError) as err:  # a model or shape torch refuses
        what = "the precision probe" if args.probe else "the benchmark"
        why = next(iter(str(err).splitlines()), "")  # torch's errors run to pages
        raise UserError(f"{what} of {args.model} failed ({type(err).__name__}: {why})") from None
    print(probe_text(result, model_info(args.model).tasks))
    if result["cache"]:
        print(f"cached in {result['cache']} (--refresh measures again; LCNN_PRECISION or --precision override auto)")
    else:
        print("not cached: other processes disturbed the measurement (spread above 1.5x); the next use measures again")
    return 0


def _add_cache(commands, task: str | None) -> None:
    p = command(commands, "cache", task, help="the feature cache: entries and size per front-end, or clear it")
    p.add_argument("action", choices=("info", "clear"))
    p.add_argument("--cache-dir", metavar="DIR", help="default: $LCNN_CACHE/features or ~/.cache/lcnn/features")
    p.add_argument("--frontend", metavar="NAME", help="clear only this front-end's folders (lfcc, spec or a folder)")
    p.set_defaults(run=_run_cache)


def _run_cache(args: argparse.Namespace) -> int:
    from lcnn.data.features import cache_folders, clear_cache, format_cache
    from lcnn.tasks.spoof.data import cache_root

    root = cache_root(args.cache_dir)
    rows = cache_folders(root) if args.action == "info" else clear_cache(root, args.frontend)
    print(format_cache(rows, root, removed=args.action == "clear"))
    return 0
