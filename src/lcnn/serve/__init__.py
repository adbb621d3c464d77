"""``lcnn serve``: trained countermeasures, face embedders and classifiers behind a small HTTP service
(FastAPI on uvicorn) with a web page, installed with the ``serve`` extra (``pip install lcnn[serve]``).

- :func:`create_app` (:mod:`lcnn.serve.app`): the app, from loaded models and :class:`Settings`
  (:mod:`lcnn.serve.settings`);
- :func:`load_models` (:mod:`lcnn.serve.models`): checkpoints as served models, one class per task kind;
- :mod:`lcnn.serve.routes`: the ``/v1`` endpoints; :mod:`lcnn.serve.batcher`: the micro-batcher;
- :mod:`lcnn.serve.decode`: uploads to model input; :mod:`lcnn.serve.limits`: body limits, the API key;
- :mod:`lcnn.serve.metrics`: Prometheus metrics; ``static/``: the page.

Names are imported on first use, so that ``lcnn.serve.settings`` (the command line's defaults) is light.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"create_app": "lcnn.serve.app", "load_models": "lcnn.serve.models", "Settings": "lcnn.serve.settings"}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lcnn.serve' has no attribute {name!r}")
