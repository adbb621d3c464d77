"""The model registry: every architecture is a function registered under a name."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``fn`` under its own name, so that ``create_model(fn.__name__)`` builds it."""
    if fn.__name__ in _MODELS:
        raise ValueError(f"model {fn.__name__!r} is registered twice")
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`, sorted."""
    return sorted(_MODELS)


def create_model(name: str, num_classes: int | None = None, **kwargs) -> nn.Module:
    """Build the architecture registered as ``name``.

    ``num_classes=None`` keeps the architecture's default (2 for ``lcnn``, the released identity counts
    for the LightCNN face models); ``num_classes=0`` gives a feature extractor whose ``forward`` returns the
    embedding. Other keyword arguments go to the architecture (``input_shape`` for ``lcnn``, say).
    """
    try:
        fn = _MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}") from None
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return fn(**kwargs)
