"""Configuration from signatures: the ``__init__`` parameters of a task's LightningModule and DataModule, with
:class:`RunSettings` for the trainer, are the schema of a run's config. Each setting has its default in one
place (the signature), recipes override some, the command line others; an unknown key is an error.

This module is light (no torch): the command line imports it to build its help.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from lcnn.errors import UserError

__all__ = ["REQUIRED", "RunSettings", "build", "check_keys", "check_run_settings", "signature_defaults"]

REQUIRED = inspect.Parameter.empty  # the default of a parameter that has none


@dataclass
class RunSettings:
    """The settings of a training run that belong to the trainer, not to the model or the data.

    Attributes:
        task: ``classify``, ``spoof`` or ``face``.
        recipe: the task's recipe the other defaults come from (``article`` by default).
        seeds: one training run per seed (``seed-N/`` folders and ``summary.json`` for several).
        epochs: maximum number of epochs.
        patience: early-stopping patience in epochs on the task's monitored metric (0: off).
        best_by: ``[metric, mode]`` the kept checkpoint is chosen by (default: the monitored metric).
        accelerator, devices, strategy, precision: Lightning's (``precision="auto"``: see :mod:`lcnn.precision`).
        deterministic: Lightning's ``deterministic`` (reproducible kernels where torch has them).
        out: the run folder (default ``runs/TASK-DATA-MODEL-TIME``).
        resume: continue the run in ``out`` from its last checkpoint.
        overwrite: replace the run in ``out``.
        force: take over a run folder whose lock another process left (or holds, on another host).
    """

    task: str = "classify"
    recipe: str = "article"
    seeds: list[int] = field(default_factory=lambda: [0])
    epochs: int = 10
    patience: int = 0
    best_by: list[str] | None = None
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    precision: str = "auto"
    deterministic: bool = False
    out: str | None = None
    resume: bool = False
    overwrite: bool = False
    force: bool = False

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return asdict(cls())


ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu", "hpu")
PRECISIONS = ("auto", "32-true", "32", "bf16-mixed", "bf16-true", "16-mixed", "16-true", "64-true", "64",
              "transformer-engine")  # fmt: skip


def check_run_settings(settings: Mapping[str, Any]) -> None:
    """A :class:`~lcnn.errors.UserError` for a :class:`RunSettings` value out of range, before anything runs."""
    if not isinstance(settings.get("epochs"), int) or settings["epochs"] < 1:
        raise UserError(f"epochs must be a whole number of at least 1, got {settings.get('epochs')!r}")
    if not isinstance(settings.get("patience"), int) or settings["patience"] < 0:
        raise UserError(f"patience must be a whole number of at least 0 (0: no early stopping), got "
                        f"{settings.get('patience')!r}")  # fmt: skip
    seeds = settings.get("seeds")
    whole = seeds and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    if not whole or len(set(seeds)) < len(seeds):
        raise UserError(f"seeds must be distinct whole numbers, got {seeds!r}")
    if settings.get("accelerator") not in ACCELERATORS:
        raise UserError(f"accelerator must be one of {', '.join(ACCELERATORS)}, got {settings.get('accelerator')!r}")
    if str(settings.get("precision")) not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {settings.get('precision')!r}")
    devices = settings.get("devices")
    if not (isinstance(devices, int) and devices >= 1 or isinstance(devices, str) and devices):
        raise UserError(f"devices must be a number of at least 1 (or a Lightning device list), got {devices!r}")
    best_by = settings.get("best_by")
    if best_by is not None and not (len(best_by) == 2 and best_by[1] in ("min", "max")):
        raise UserError(f"best_by must be [metric, 'min' or 'max'], got {best_by!r}")


def signature_defaults(cls: type) -> dict[str, Any]:
    """``{parameter: default}`` of ``cls.__init__`` (:data:`REQUIRED` where there is none), without ``self``,
    ``*args`` and ``**kwargs``."""
    params = inspect.signature(cls.__init__).parameters.values()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name: p.default for p in params if p.name != "self" and p.kind in kinds}


def build(cls: type, settings: Mapping[str, Any], strict: bool = False, **derived: Any) -> Any:
    """``cls(**kwargs)`` with the keys of ``settings`` that its signature takes (``strict``: all of them must
    be), and ``derived`` values (set from the data, they win over ``settings``). A signature value that is still
    missing, or a value the class refuses (``ValueError``, ``TypeError``), is a :class:`~lcnn.errors.UserError`
    naming the class."""
    params = signature_defaults(cls)
    if strict:
        check_keys(settings, params, cls.__name__)
    kwargs = {k: v for k, v in settings.items() if k in params}
    kwargs.update({k: v for k, v in derived.items() if k in params})
    missing = [k for k, default in params.items() if default is REQUIRED and k not in kwargs]
    if missing:
        raise UserError(f"{cls.__name__} needs the setting(s) {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        if isinstance(err, UserError):
            raise
        raise UserError(f"{cls.__name__}: {err}") from None


def check_keys(settings: Iterable[str], schema: Iterable[str], where: str) -> None:
    """Raise a :class:`~lcnn.errors.UserError` for the first key of ``settings`` not in ``schema``, with the
    closest known key as a suggestion."""
    known = sorted(schema)
    for key in settings:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UserError(f"{where}: unknown setting {key!r}{hint}; known settings: {', '.join(known)}")
