"""The :class:`Task` class: everything the command line and the trainer know of a task, in one place.

A task is a subclass with its name, monitored metric, recipes, default data, the options each command takes,
and the import paths of its LightningModule and DataModule, whose ``__init__`` signatures are the schema of
its config (:mod:`lcnn.config`). This module and the task subclasses import nothing heavy at import time, so
that ``lcnn --help`` starts at once; the methods that run models import what they need.
"""

from __future__ import annotations

import argparse
import importlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from lcnn.config import REQUIRED, RunSettings, build, check_keys, signature_defaults
from lcnn.errors import UserError

__all__ = ["Option", "Task"]


@dataclass(frozen=True)
class Option:
    """One command-line option: ``parser.add_argument(*flags, **kwargs)``; its ``dest`` is a config key."""

    flags: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def dest(self) -> str:
        return self.kwargs.get("dest") or self.flags[0].lstrip("-").replace("-", "_")


def option(*flags: str, **kwargs: Any) -> Option:
    """An :class:`Option` written like an ``add_argument`` call."""
    return Option(tuple(flags), kwargs)


def count(minimum: int) -> Any:
    """An argparse ``type``: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def positive(text: str) -> float:
    """An argparse ``type``: a number above 0."""
    value = _number(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def non_negative(text: str) -> float:
    """An argparse ``type``: a finite number of at least 0."""
    value = finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {text}")
    return value


def finite(text: str) -> float:
    """An argparse ``type``: any finite number (a score threshold); ``nan`` and ``inf`` are refused."""
    value = _number(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def port(text: str) -> int:
    """An argparse ``type``: a TCP port, 1 to 65535 (0 would let the system pick one nobody is told)."""
    value = count(1)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port from 1 to 65535, got {value}")
    return value


def fraction(text: str) -> float:
    """An argparse ``type``: a number strictly between 0 and 1."""
    value = positive(text)
    if not value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def devices(text: str) -> int | str:
    """An argparse ``type`` for ``--devices``: a number of devices (at least 1), or what Lightning reads otherwise
    (``auto``, ``0,1``)."""
    try:
        int(text)
    except ValueError:
        return text
    return count(1)(text)


#: The options every command that runs a Trainer takes (train, score), declared once.
RUN_OPTIONS = (
    option("--accelerator", help="cpu, gpu, mps or auto (default)"),
    option("--devices", type=devices, help="devices (processes) per node (default 1); more: DDP"),
    option("--strategy", help="Lightning strategy: auto (default; ddp with several devices), ddp, ddp_spawn, ..."),
    option("--precision", help="auto (default: $LCNN_PRECISION where set for training; bf16-mixed on bf16 GPUs; on "
           "CPUs the precision probe's choice, bf16-mixed where it measured it faster here and it is known to keep "
           "the task's result, see `lcnn benchmark --probe`; else 32-true, the precision of evaluate), 32-true, "
           "bf16-mixed, 16-mixed (GPUs); score: also int8 (the CPU; each file quantized with its own ranges)"),
)  # fmt: skip

#: Data-loading worker processes: one spelling (``--num-workers``) for every command.
NUM_WORKERS = option("--num-workers", type=count(0), metavar="N", help="data-loading worker processes (default 0)")

#: Spellings refused with a pointer to the one kept.
RENAMED = {"--workers": "--num-workers"}


def _import(path: str) -> Any:
    """``"package.module:Name"`` -> the object."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


class Task:
    """What a task declares (class attributes) and does (methods); one subclass per task.

    Class attributes:
        name: the ``--task`` name. description: one line for ``--help``.
        monitor: ``(metric, "min" | "max")`` for early stopping and, unless a recipe's ``best_by`` says
            otherwise, the kept checkpoint.
        default_data: the data trained on without ``--data``. data_help: the ``--data`` choices, in words.
        recipes: ``{recipe: {data or "default": {setting: value}}}``: what each recipe sets for each data.
        module, datamodule: import paths (``"lcnn.tasks.x.module:XModule"``) of the LightningModule and
            DataModule.
        module_from_data: the module's ``__init__`` parameters read from the set-up DataModule (class names,
            input shape...), not from the config.
        data_from_model: the DataModule's ``__init__`` parameters that follow from the model (its input
            channels), not from the config; :meth:`data_settings` computes them.
        path_settings: the settings that name files or folders (made absolute in a run's config, so that the
            run folder can be moved and still finds its data); ``path_prefixes``: in those settings, the
            ``KIND:PATH`` items whose PATH is one.
        train_options, evaluate_options, predict_options, score_options: the task's own options of each command
            (a task with a command of its own adds them likewise: face's ``verify_options``).
        implementation: the import path of the subclass that runs the task (its ``task.py``); the declarations
            above live in a light class of their own (its ``spec.py``), read by the parser without torch.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    monitor: ClassVar[tuple[str, str]]
    default_data: ClassVar[str]
    data_help: ClassVar[str]
    recipes: ClassVar[dict[str, dict[str, dict[str, Any]]]]
    module: ClassVar[str]
    datamodule: ClassVar[str]
    module_from_data: ClassVar[tuple[str, ...]] = ()
    data_from_model: ClassVar[tuple[str, ...]] = ()
    path_settings: ClassVar[tuple[str, ...]] = ("data_dir",)
    path_prefixes: ClassVar[tuple[str, ...]] = ()
    train_options: ClassVar[tuple[Option, ...]] = ()
    evaluate_options: ClassVar[tuple[Option, ...]] = ()
    predict_options: ClassVar[tuple[Option, ...]] = ()
    score_options: ClassVar[tuple[Option, ...]] = ()
    implementation: ClassVar[str]

    def running(self) -> Task:
        """The task that runs these declarations (:attr:`implementation`; imports its models and data)."""
        return _import(self.implementation)()

    # -- configuration ------------------------------------------------------------------------------------------

    def module_class(self) -> type:
        return _import(self.module)

    def datamodule_class(self) -> type:
        return _import(self.datamodule)

    def settings(self) -> dict[str, Any]:
        """The schema of this task's config: ``{setting: default}`` (:data:`lcnn.config.REQUIRED` where the
        signature has none) from :class:`RunSettings`, the DataModule and the LightningModule."""
        module = {k: v for k, v in signature_defaults(self.module_class()).items() if k not in self.module_from_data}
        data = {k: v for k, v in signature_defaults(self.datamodule_class()).items() if k not in self.data_from_model}
        return {**RunSettings.defaults(), **data, **module}

    def recipe(self, data: str, recipe: str) -> dict[str, Any]:
        """What ``recipe`` sets for ``data`` (its ``default`` entry for data it does not name)."""
        if recipe not in self.recipes:
            raise UserError(f"unknown recipe {recipe!r} for task {self.name}; expected one of "
                            f"{', '.join(self.recipes)}")  # fmt: skip
        recipes = self.recipes[recipe]
        return dict(recipes.get(data.split(":")[0], recipes["default"]))

    def resolve(self, data: str | None = None, recipe: str = "article", **overrides: Any) -> dict[str, Any]:
        """The full config of a run: every setting's default, what ``recipe`` sets for ``data``, then the
        ``overrides`` that are not ``None``. An unknown key (in a recipe or the overrides) is a UserError."""
        schema = self.settings()
        data = data or self.default_data
        chosen = {**self.recipe(data, recipe), **{k: v for k, v in overrides.items() if v is not None}}
        check_keys(chosen, schema, f"task {self.name}")
        cfg = {**schema, "task": self.name, "recipe": recipe, "data": data, **chosen}
        missing = [k for k, v in cfg.items() if v is REQUIRED]
        if missing:
            raise UserError(f"task {self.name}: no value for {', '.join(missing)}")
        return cfg

    def absolute_paths(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """``cfg`` with the :attr:`path_settings` (and ``folder:PATH`` data, ``SPLIT=FILE`` items) that exist
        from the working directory made absolute; the others are left for the data to resolve or refuse."""

        def absolute(value: Any) -> Any:
            if isinstance(value, (list, tuple)):
                return [absolute(v) for v in value]
            if not isinstance(value, str) or not value:
                return value
            split, sep, file = value.partition("=")
            if sep and split in ("train", "dev", "eval"):
                return f"{split}={absolute(file)}"
            kind, sep, rest = value.partition(":")
            if sep and kind in self.path_prefixes:  # KIND:PATH[@options], e.g. --augment noise:DIR@snr=0,15
                path, at, options = rest.partition("@")
                return f"{kind}:{absolute(path)}{at}{options}"
            return str(Path(value).resolve()) if Path(value).exists() else value

        paths = {k: absolute(cfg[k]) for k in self.path_settings if cfg.get(k) is not None}
        data = str(cfg.get("data", ""))
        if data.startswith("folder:"):
            paths["data"] = "folder:" + absolute(data.removeprefix("folder:"))
        return {**cfg, **paths}

    # -- building and training ----------------------------------------------------------------------------------

    def data_settings(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """DataModule arguments that follow from the config's model: the :attr:`data_from_model`, and settings
        the model overrides; none by default."""
        return {}

    def module_settings(self, cfg: Mapping[str, Any], datamodule: Any) -> dict[str, Any]:
        """The :attr:`module_from_data`, read from the set-up DataModule."""
        return {name: getattr(datamodule, name) for name in self.module_from_data}

    def build(self, cfg: Mapping[str, Any]) -> tuple[Any, Any]:
        """``(LightningModule, DataModule)`` for a resolved config. The DataModule is prepared and set up for
        fitting here, so that its facts (classes, input shape) can build the module."""
        from lcnn.models import model_info

        model_info(cfg["model"], task=self.name)  # an unknown model stops before any data is read
        datamodule = build(self.datamodule_class(), cfg, **self.data_settings(cfg))
        datamodule.prepare_data()
        datamodule.setup("fit")
        module = build(self.module_class(), cfg, **self.module_settings(cfg, datamodule))
        return module, datamodule

    def test(self, trainer: Any, module: Any, datamodule: Any, run_dir: Path) -> dict[str, Any]:
        """After fitting: test the best checkpoint (``trainer.test(ckpt_path="best")``), write the task's score
        files and plots into ``run_dir``, and return the metrics for ``metrics.json``."""
        raise NotImplementedError

    # -- using a trained model ----------------------------------------------------------------------------------

    def restore(self, hparams: dict[str, Any], where: str) -> Any:
        """The LightningModule of a checkpoint's ``hyper_parameters`` (weights not loaded)."""
        try:
            return build(self.module_class(), hparams, strict=True)
        except UserError as err:
            raise UserError(f"{where}: its stored hyper_parameters do not build a {self.name} model: {err}") from None

    def restore_extras(self, module: Any, ckpt: Mapping[str, Any], where: str) -> None:
        """Set on a restored ``module`` what its checkpoint dict ``ckpt`` holds beyond the weights; nothing by
        default."""

    def evaluate(self, module: Any, cfg: dict[str, Any], out_dir: Path, **options: Any) -> dict[str, Any]:
        """``lcnn evaluate``: metrics, score files and plots of a trained module in ``out_dir``."""
        raise NotImplementedError

    def predict(self, module: Any, cfg: dict[str, Any], files: list[Path], **options: Any) -> list[str]:
        """``lcnn predict``: one line per input file."""
        raise NotImplementedError

    def score(self, module: Any, cfg: dict[str, Any], input: str, **options: Any) -> Any:
        """``lcnn score``: a list of files scored into a file; only spoof models score audio."""
        raise UserError(f"score scores audio with spoof checkpoints; this is a {self.name} model")

    def verify(self, module: Any, cfg: dict[str, Any], image1: Path, image2: Path,
               threshold: float | None = None) -> str:  # fmt: skip
        """``lcnn verify``: only face models compare two images."""
        raise UserError(f"verify compares two face images; this is a {self.name} model")

    def load_released(self, path: Path, arch: str) -> Any:
        """A released (not lcnn-trained) checkpoint as this task's module: only LightCNN face files."""
        raise UserError(f"--model {arch}: released checkpoints are LightCNN face models, not {self.name} models")

    def example_input(self, module: Any) -> Any:
        """A batch for export."""
        raise NotImplementedError
