"""lcnn: Light CNN (Max-Feature-Map) models for image classification, spoofed-speech detection and
face verification."""

from lcnn.models import build_lcnn, create_model, list_models
from lcnn.models.lightcnn import load_lightcnn

__version__ = "0.1.0"

__all__ = ["build_lcnn", "create_model", "list_models", "load_lightcnn", "__version__"]
