"""``lcnn train``: the common training options, the task's own, and the run."""

from __future__ import annotations

import argparse

from lcnn.cli.parsing import add_task_options, command, print_metrics, task_choice
from lcnn.errors import UserError
from lcnn.tasks import TASKS
from lcnn.tasks.base import NUM_WORKERS, RUN_OPTIONS, count, positive


def add(commands, task: str | None) -> None:
    """``lcnn train``."""
    p = command(
        commands, "train", task,
        help="train a model; writes a run folder",
        description="Train a model and test its best checkpoint. Writes a run folder with config.json, "
        "checkpoints/ (best.ckpt, last.ckpt), metrics.csv, metrics.json and curves.png. Options not given "
        "come from the recipe for the task and data.",
    )  # fmt: skip
    task_choice(p, "what to train (default: classify)")
    data_help = "; ".join(f"{t.name}: {t.data_help}" for t in TASKS.values())
    p.add_argument("--data", help=f"dataset; {data_help}")
    p.add_argument("--data-dir", help="folder holding the dataset (otherwise downloaded or bundled)")
    p.add_argument("--recipe",
                   help="training recipe: article (the reference's; default), strong (classify), small (face)")
    p.add_argument("--model", help="architecture (see `lcnn models`)")
    p.add_argument("--epochs", type=count(1), help="maximum number of epochs")
    p.add_argument("--batch-size", type=count(1))
    p.add_argument("--lr", type=positive, help="learning rate")
    p.add_argument("--patience", type=count(0), help="early-stopping patience in epochs (0: off)")
    p.add_argument("--seed", type=int, action="append", dest="seeds",
                   help="random seed; repeat to train several seeds and get a summary (default: 0)")
    for opt in (*RUN_OPTIONS, NUM_WORKERS):
        p.add_argument(*opt.flags, **opt.kwargs)
    p.add_argument("--out", help="run folder (default runs/TASK-DATA-MODEL-TIME)")
    p.add_argument("--resume", action="store_true", default=None,
                   help="continue the run in --out from its last checkpoint, with its config (options given here "
                        "change it, e.g. --epochs)")
    p.add_argument("--overwrite", action="store_true", default=None, help="replace the run in --out")
    p.add_argument("--force", action="store_true", default=None,
                   help="take over a run folder whose lock a process left behind (or holds on another host)")
    add_task_options(p, "train", task)
    p.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from lcnn.train import resolve_config, resume_config, train

    options = {k: v for k, v in vars(args).items() if k not in ("run", "command", "task", "data")}
    if args.resume:
        if not args.out:
            raise UserError("--resume continues the run in --out: give the run folder")
        cfg = resume_config(options.pop("out"), task=args.task, data=args.data, **options)
    else:
        recipe = options.pop("recipe") or "article"
        cfg = resolve_config(args.task or "classify", args.data, recipe, **options)
    result = train(cfg)
    from lcnn.runs import is_rank_zero

    if is_rank_zero():
        print_metrics(result)  # once, not once per DDP process
    return 0
