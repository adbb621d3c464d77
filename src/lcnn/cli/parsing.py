"""The pieces the commands are built from: one-line errors, the task options of a command, a refusal that
names the tasks an unknown option belongs to, the short names of files in tables. Imports nothing heavy."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lcnn.errors import UserError
from lcnn.tasks import TASKS
from lcnn.tasks.base import RENAMED

TASK_COMMANDS = ("train", "evaluate", "predict")  # the commands with task options


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (:class:`UserError`, exit 2 in :func:`main`); an unknown option that is
    another task's is named as such."""

    task: str | None = None

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see {self.prog} --help)")

    def parse_args(self, args: list[str] | None = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        parsed, extra = self.parse_known_args(args, namespace)
        command = getattr(parsed, "command", None)
        renamed = next((f.split("=")[0] for f in extra if f.split("=")[0] in RENAMED), None)
        if renamed:
            raise UserError(f"{renamed} is spelled {RENAMED[renamed]} (see {self.prog} {command} --help)")
        if extra:
            message = f"unrecognized arguments: {' '.join(extra)}"
            foreign = foreign_option(extra, command, self.task) if command in TASK_COMMANDS else None
            raise UserError(f"{foreign or message} (see {self.prog} {command or ''} --help)".replace("  ", " "))
        return parsed


def foreign_option(extra: list[str], command: str, task: str | None) -> str | None:
    """``--pairs is not an option of the spoof task (face takes it)`` for an option of another task."""
    for flag in (f.split("=")[0] for f in extra if f.startswith("--")):
        owners = [t.name for t in TASKS.values() if any(flag in o.flags for o in options_of(t, command))]
        if owners and task not in owners:
            where = f"the {task} task" if task else f"lcnn {command} without --task"
            return f"{flag} is not an option of {where} ({', '.join(owners)} take{'s' * (len(owners) == 1)} it)"
    return None


#: The destinations of the arguments that name what a command writes; every other argument naming an existing file
#: or folder is one of its inputs, and those of :data:`DATA_FOLDERS` are corpora no output may be written into.
OUTPUTS = ("out", "weights")
DATA_FOLDERS = ("data_dir", "audio_dir")


def refuse_writing_inputs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The one check that no command writes over one of its inputs (:func:`lcnn.io.refuse_overwrite`), made on
    the parsed command line before the command runs: ``--out`` (and ``--weights``) against every argument that
    names an existing file or folder (a checkpoint, an input list, score files, a data folder)."""
    from lcnn.io import refuse_overwrite

    sub = getattr(parser, "commands", None)
    sub = sub.choices.get(getattr(args, "command", None)) if sub is not None else None
    if sub is None:
        return
    outputs, inputs, data_folders = [], [], []
    for action in sub._actions:
        value = getattr(args, action.dest, None)
        label = action.option_strings[0] if action.option_strings else (action.metavar or action.dest.upper())
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str) or not item:
                continue
            if action.dest in OUTPUTS:
                outputs.append((label, item))
            elif Path(item).exists():
                (data_folders if action.dest in DATA_FOLDERS else inputs).append((label, item))
    refuse_overwrite(outputs, inputs, data_folders)


def options_of(task: Any, command: str) -> tuple:
    """The options ``task`` declares for ``command`` (``train_options``, ...)."""
    return getattr(task, f"{command}_options", ())


def command(commands, name: str, task: str | None = None, **kwargs) -> Parser:
    """Add subcommand ``name`` (taking the options of ``task``, where it has task options)."""
    p = commands.add_parser(name, **kwargs)
    p.task = task
    p.set_defaults(command=name)
    return p


def add_task_options(p: argparse.ArgumentParser, command: str, task: str | None) -> None:
    if task is None:
        p.epilog = f"Task options: lcnn {command} --task {{{','.join(TASKS)}}} --help"
        return
    group = p.add_argument_group(f"{task} options")
    for opt in options_of(TASKS[task], command):
        group.add_argument(*opt.flags, **opt.kwargs)


def task_choice(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--task", choices=list(TASKS), help=help)


def print_metrics(result: dict) -> None:
    if "mean" in result:
        print(f"{'metric':<24}{'mean':>12}{'std':>12}")
        for key, mean in result["mean"].items():
            print(f"{key:<24}{mean:>12.5g}{result['std'][key]:>12.5g}")
        return
    for key, value in result.items():
        if not isinstance(value, (dict, list)):
            print(f"{key:<24}{value}")


def short_names(paths: list[str]) -> list[str]:
    """A name per path for tables, legends and folders: its last part, or where two share it, the whole path
    (``/`` as ``-``)."""
    last = [Path(p).name for p in paths]
    return [name if last.count(name) == 1 else p.replace("/", "-") for name, p in zip(last, paths)]
