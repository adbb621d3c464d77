"""lcnn: Light CNN (Max-Feature-Map) models for image classification, spoofed-speech detection and
face verification.

The names below are imported on first use, so that ``import lcnn`` (and the ``lcnn`` command's ``--help``)
does not load PyTorch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load": "lcnn.api",
    "build_lcnn": "lcnn.models",
    "create_model": "lcnn.models",
    "list_models": "lcnn.models",
    "load_lightcnn": "lcnn.models",
    "model_info": "lcnn.models",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lcnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
