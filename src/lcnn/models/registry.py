"""The model registry: every architecture is a function registered under its name, with the facts about it
that tasks, loaders and exporters need (timm's ``default_cfgs`` idea), so that none of them tests a name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from lcnn.errors import UserError


@dataclass(frozen=True)
class ModelInfo:
    """What a registered architecture takes and gives.

    Attributes:
        name: the registered name (``create_model(name)``).
        family: ``lcnn`` (the article's / ASVspoof LCNNs) or ``lightcnn`` (the face models).
        input_shape: one example ``(C, H, W)``; ``None`` where any size works (variable-length time axis).
        variable_length: ``forward(x, lengths)`` takes utterances of any number of frames.
        tasks: the tasks the architecture is built for (``classify``, ``spoof``, ``face``).
        released_classes: classes of the officially released classifier (LightCNN), ``None`` where there is
            no release.
        exports: the export formats checked for it (``onnx``, ``torchscript``).
        build: the registered function.
    """

    name: str
    family: str
    input_shape: tuple[int | None, ...]
    variable_length: bool
    tasks: tuple[str, ...]
    released_classes: int | None
    exports: tuple[str, ...]
    build: Callable[..., nn.Module]

    @property
    def input_channels(self) -> int:
        return int(self.input_shape[0])


_MODELS: dict[str, ModelInfo] = {}


def register_model(
    *,
    family: str,
    input_shape: tuple[int | None, ...],
    tasks: tuple[str, ...],
    variable_length: bool = False,
    released_classes: int | None = None,
    exports: tuple[str, ...] = ("onnx", "torchscript"),
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register the decorated function under its own name, so that ``create_model(fn.__name__)`` builds it
    and ``model_info(fn.__name__)`` describes it."""

    def register(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if fn.__name__ in _MODELS:
            raise ValueError(f"model {fn.__name__!r} is registered twice")
        _MODELS[fn.__name__] = ModelInfo(fn.__name__, family, tuple(input_shape), variable_length, tuple(tasks),
                                         released_classes, tuple(exports), fn)  # fmt: skip
        return fn

    return register


def list_models(task: str | None = None) -> list[str]:
    """Names accepted by :func:`create_model`, sorted; with ``task``, those built for it."""
    return sorted(name for name, info in _MODELS.items() if task is None or task in info.tasks)


def model_info(name: str, task: str | None = None) -> ModelInfo:
    """The :class:`ModelInfo` of ``name``; a :class:`~lcnn.errors.UserError` naming the choices for an unknown
    name, or (with ``task``) for a model not built for that task."""
    info = _MODELS.get(name)
    if info is None:
        raise UserError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    if task is not None and task not in info.tasks:
        raise UserError(f"model {name!r} is not built for the {task} task; choose one of: "
                        f"{', '.join(list_models(task))}")  # fmt: skip
    return info


def create_model(name: str, num_classes: int | None = None, **kwargs) -> nn.Module:
    """Build the architecture registered as ``name``.

    ``num_classes=None`` keeps the architecture's default (2 for ``lcnn``, the released identity counts
    for the LightCNN face models); ``num_classes=0`` gives a feature extractor whose ``forward`` returns the
    embedding. Other keyword arguments go to the architecture (``input_shape`` for ``lcnn``, say).
    """
    info = model_info(name)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return info.build(**kwargs)
