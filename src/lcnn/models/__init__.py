"""Model registry and the model families (one file each)."""

from lcnn.models import lcnn as _lcnn  # noqa: F401  (registers its models)
from lcnn.models import lcnn_lstm as _lcnn_lstm  # noqa: F401  (registers its models)
from lcnn.models import lightcnn as _lightcnn  # noqa: F401  (registers its models)
from lcnn.models.lcnn import LCNN, build_lcnn
from lcnn.models.registry import create_model, list_models, register_model

__all__ = ["LCNN", "build_lcnn", "create_model", "list_models", "register_model"]
