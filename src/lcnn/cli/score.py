"""``lcnn score``: a spoof checkpoint over a protocol, CSV, list or folder of audio, into a score file (the
scoring engine, :mod:`lcnn.score`)."""

from __future__ import annotations

import argparse

from lcnn.cli.parsing import command
from lcnn.cli.trained import load, task_call_options
from lcnn.tasks import TASKS


def add(commands, task: str | None) -> None:
    """``lcnn score``."""
    p = command(commands, "score", task, help="spoof: score a protocol, CSV, list or folder of audio into a file",
                description="Score every trial of INPUT (an ASVspoof protocol or trial list, a CSV path,label[,speaker"
                ",attack], a list of paths, a folder of .flac/.wav, or one file), one line per trial in INPUT's "
                "order; higher = bona fide. The same command resumes a killed run. Exit 1 when some files failed.")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("input", metavar="INPUT")
    for opt in TASKS["spoof"].score_options:
        p.add_argument(*opt.flags, **opt.kwargs)
    p.set_defaults(run=_run_score)


def _run_score(args: argparse.Namespace) -> int:
    _, module, cfg, task = load(args)
    summary = task.score(module, cfg, args.input, **task_call_options(args, "score", task, ()))
    if summary is not None:  # process 0 of several
        print(summary)
    return int(bool(summary and summary.failed))
