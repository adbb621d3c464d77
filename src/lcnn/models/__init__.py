"""The model registry and the model families (one file each); released LightCNN checkpoints in ``pretrained``."""

from lcnn.models import lcnn as _lcnn  # noqa: F401  (registers its models)
from lcnn.models import lcnn_lstm as _lcnn_lstm  # noqa: F401  (registers its models)
from lcnn.models import lcnn_study as _lcnn_study  # noqa: F401  (registers its models)
from lcnn.models import lightcnn as _lightcnn  # noqa: F401  (registers its models)
from lcnn.models.lcnn import LCNN, build_lcnn
from lcnn.models.macs import count_macs
from lcnn.models.pretrained import CheckpointError, load_lightcnn
from lcnn.models.registry import ModelInfo, create_model, list_models, model_info, register_model

__all__ = [
    "LCNN",
    "CheckpointError",
    "ModelInfo",
    "build_lcnn",
    "count_macs",
    "create_model",
    "list_models",
    "load_lightcnn",
    "model_info",
    "register_model",
]
