"""The ``lcnn`` command: train, evaluate, predict, score, verify, export, models, benchmark, cache, check-scores,
calibrate, fuse, degrade, faces, serve.

Building the parser imports no torch or Lightning: each task's options come from its declarations
(:data:`lcnn.tasks.TASKS`, light classes), and the commands import what they run (the task's ``task.py``
through :func:`lcnn.tasks.get_task`). ``evaluate`` and ``predict`` take the options of the checkpoint's task
(``--task`` to see them without one); an option of another task is an error. One module per group of commands
(``train``, ``trained``, ``score``, ``info``, ``score_files``, ``degrade``, ``faces``, ``serve``), each with
``add(commands, task)``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from lcnn.cli import degrade, faces, info, pretrained, score, score_files, serve, train, trained
from lcnn.cli.parsing import TASK_COMMANDS, Parser, refuse_writing_inputs
from lcnn.cli.signals import WORKER_KILLED, interruptible, quiet_teardown, received
from lcnn.errors import Interrupted, UserError
from lcnn.tasks import TASKS, read_checkpoint

__all__ = ["build_parser", "main"]

EPILOG = """examples:
  lcnn train                                    the article's LCNN on the bundled digits (offline, ~1 min)
  lcnn train --data mnist --recipe strong --seed 0 --seed 1 --seed 2
  lcnn train --task spoof --data asvspoof2019-la --data-dir ~/ASVspoof2019
  lcnn evaluate runs/classify-digits-lcnn-20261128-120000
  lcnn predict runs/.../checkpoints/best.ckpt digit.png
  lcnn score runs/.../checkpoints/best.ckpt eval.trl.txt --audio-dir flac --out scores.txt --num-workers 2
  lcnn export runs/.../checkpoints/best.ckpt --format onnx
  lcnn COMMAND --help                           a command's options (train/evaluate/predict: add --task TASK)
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    with interruptible():
        return _main(argv)


def _main(argv: list[str]) -> int:
    try:
        parser = build_parser(_task_of(argv))
        args = parser.parse_args(argv)
        refuse_writing_inputs(parser, args)
        code = args.run(args) or 0
        if received:  # the exception was lost in a finaliser: the command ran on, but was told to stop
            raise Interrupted(received[-1])
        return code
    except Interrupted as err:
        print(f"lcnn: stopped by {err.name}; what was finished is kept (the same command resumes a scoring run, "
              "--resume a training run)", file=sys.stderr)  # fmt: skip
        quiet_teardown()
        return 128 + err.signum
    except RuntimeError as err:
        if not WORKER_KILLED.search(str(err)):
            raise
        print("lcnn: stopped: a data-loading worker was killed (SIGTERM to the process group?); what was finished "
              "is kept", file=sys.stderr)  # fmt: skip
        quiet_teardown()
        return 128 + signal.SIGTERM
    except UserError as err:
        print(f"lcnn: error: {err}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        print(f"lcnn: error: {err.filename or err}: no such file or folder", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of the output left (`lcnn pretrained list | head`): quiet, as Unix tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return 128 + signal.SIGPIPE
    except OSError as err:  # a folder where a file is wanted, no permission, a full disk: the system's words
        where = f"{err.filename}: " if err.filename else ""
        print(f"lcnn: error: {where}{err.strerror or err}", file=sys.stderr)
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
            task = json.loads(config.read_text()).get("task")
        else:
            task = read_checkpoint(path)["lcnn_task"]
    except (UserError, OSError, ValueError, AttributeError, KeyError, TypeError):
        return None
    return task if isinstance(task, str) and task in TASKS else None


def build_parser(task: str | None = "classify") -> argparse.ArgumentParser:
    """The ``lcnn`` parser, with the options of ``task`` for the commands that have task options."""
    from lcnn import __version__

    parser = Parser(
        prog="lcnn",
        description="Light CNN (Max-Feature-Map) models: image classification, spoofed-speech detection "
        "and face verification.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.task = task
    parser.add_argument("--version", action="version", version=f"lcnn {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True, parser_class=Parser)
    parser.commands = commands  # the subcommands, for the checks made on a parsed command line
    for module in (train, trained, score, info, score_files, degrade, faces, serve, pretrained):
        module.add(commands, task)
    return parser
