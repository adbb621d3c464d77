"""Fast inference: :func:`optimize_for_inference` (channels-last, fused pooling, Winograd, ``torch.compile``,
bf16, worker threads) and int8 (:func:`quantize_int8`). Imports the models and layers; never imported by them."""

from lcnn.inference.optimize import InferenceModel, optimize_for_inference
from lcnn.inference.quantize import calibration_subset, fold_batchnorms, quantize_int8
from lcnn.inference.winograd import WinogradConv2d

__all__ = [
    "InferenceModel",
    "WinogradConv2d",
    "calibration_subset",
    "fold_batchnorms",
    "optimize_for_inference",
    "quantize_int8",
]
