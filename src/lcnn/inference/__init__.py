"""Fast inference: :func:`optimize_for_inference` (channels-last, fused pooling, Winograd, ``torch.compile``,
bf16, worker threads) and int8 (:func:`quantize_int8`, calibrated; :func:`quantize_int8_dynamic`, each input's
own ranges). Imports the models and layers; never imported by them."""

from lcnn.inference.dynamic import int8_dynamic_unavailable, quantize_int8_dynamic
from lcnn.inference.optimize import InferenceModel, optimize_for_inference
from lcnn.inference.quantize import calibration_subset, fold_batchnorms, quantize_int8
from lcnn.inference.winograd import WinogradConv2d

__all__ = [
    "InferenceModel",
    "WinogradConv2d",
    "calibration_subset",
    "fold_batchnorms",
    "int8_dynamic_unavailable",
    "optimize_for_inference",
    "quantize_int8",
    "quantize_int8_dynamic",
]
