"""The score-file commands of ``lcnn``: ``check-scores``.

They work on score files (:mod:`lcnn.scores`) and keys (any protocol :func:`lcnn.data.protocols.read_protocol`
reads); each file is checked against the key first. Building their parsers imports nothing heavy; each command
imports what it runs. Calibration and fusion are fitted at ASVspoof 5's operating point (Pspoof 0.05 by default,
Cmiss 1, Cfa 10) with :func:`lcnn.metrics.fit_calibration` / :func:`lcnn.metrics.fit_fusion`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

KEY_HELP = "the key: a protocol or key file (ASVspoof 2019 / 2021 / 5, In-the-Wild meta.csv, CSV); default: the " \
           "labels of the score files themselves (ID ATTACK KEY SCORE)"  # fmt: skip


def add_commands(commands: Any) -> None:
    """Add check-scores to the ``lcnn`` subparsers."""
    p = _command(commands, "check-scores", help="check score files against a key before computing any metric",
                 description="Check score files against their key: missing, extra or duplicate ids, NaN or "
                 "infinite scores, decisions instead of scores, labels that contradict the key (errors: exit 2), and "
                 "inverted-looking scores (a warning). Prints each file's pooled EER and min DCF when usable.")
    p.add_argument("scores", nargs="+", metavar="SCORES")
    p.add_argument("--protocol", "--key", dest="protocol", metavar="KEY", help=KEY_HELP)
    p.set_defaults(run=run_check_scores)


def _command(commands: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    p = commands.add_parser(name, **kwargs)
    p.set_defaults(command=name)
    return p


def _warn(check: Any) -> None:
    for warning in check.warnings:
        print(f"lcnn: warning: {check.name}: {warning}", file=sys.stderr)


def run_check_scores(args: argparse.Namespace) -> int:
    from lcnn.data.protocols import read_protocol
    from lcnn.errors import DataError
    from lcnn.scores import check_scores, read_scores

    trials = read_protocol(args.protocol) if args.protocol else None
    failed = 0
    for path in args.scores:
        try:
            check = check_scores(read_scores(path), trials, args.protocol or "the key")
            _warn(check)
            check.raise_errors()
        except DataError as err:
            if len(args.scores) == 1:
                raise
            print(f"lcnn: error: {err}", file=sys.stderr)
            failed += 1
            continue
        print(check.summary())
    return 2 if failed else 0
