"""Int8 inference with per-input activation ranges, for models whose score must not depend on anything but
their input: the LCNN spoof family (``lcnn_lstm``, ``lcnn_attention``, ``lcnn_fixed``).

:func:`quantize_int8_dynamic` swaps each MFM convolution with a kernel larger than 1x1 and more than one input
channel for :class:`DynamicInt8MFMConv2d`, which quantizes its own input with that input's range, measured as it
runs, item by item: an utterance's score depends on the utterance and the weights only, never on its batch mates
or on which files a calibration saw (:func:`lcnn.inference.quantize_int8` calibrates ranges once, on given inputs).

- the convolution runs as a oneDNN int8 kernel (uint8 activations, per-channel symmetric int8 weights, VNNI
  where the CPU has it) that writes fp32: nothing is clipped, only the input and the weights are rounded;
- BatchNorms between MFM convolutions are folded into their weights first (:func:`fold_batchnorms`);
- 1x1 convolutions stay fp32: they are memory-bound, and quantizing their input costs more than it saves;
- a convolution on one input channel (the first, on the features themselves) stays fp32: features span wide
  ranges (a log floor far below the speech's values) that one 8-bit step size per utterance resolves badly, and
  on a trained model it caused most of the score error; one channel is also int8 kernels' weakest case;
- LSTMs and linear layers stay fp32: a small share of the work, and torch's dynamic int8 LSTM and Linear
  were measured no faster on these models;
- torch's own dynamic ``Conv2d`` (``torch.ao.nn.quantized.dynamic``) is not used: its fbgemm kernel requantizes
  the convolution's output with the input's scale, clipping every output outside the input's range.

On CPUs without VNNI the activations take 7 bits (0-127): the older int8 instructions sum pairs of products
in 16 bits, which 8-bit activations can overflow. Run the result in eval mode under ``torch.inference_mode``,
on the CPU.
"""

from __future__ import annotations

import copy
import platform

import torch
from torch import nn

from lcnn.inference.quantize import _codes, affine_qparams, fold_batchnorms
from lcnn.layers import MFMConv2d

__all__ = ["DynamicInt8MFMConv2d", "int8_dynamic_unavailable", "quantize_int8_dynamic"]


def int8_dynamic_unavailable() -> str | None:
    """Why :func:`quantize_int8_dynamic` cannot run here (no oneDNN in this torch, not an x86 CPU), or ``None``."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return f"int8 runs on x86 CPUs, this is {platform.machine()}"
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.onednn, "qconv2d_pointwise"):
        return "this torch build has no oneDNN int8 convolutions"
    return None


class DynamicInt8MFMConv2d(nn.Module):
    """:class:`~lcnn.layers.MFMConv2d` with an int8 convolution whose input range is that of each input item:
    fp32 ``(N, C, H, W)`` in and out. The int8 weights, their scales and the bias are buffers (a checkpoint's
    digest covers them); the oneDNN packing of the weights is rebuilt from them."""

    def __init__(self, layer: MFMConv2d) -> None:
        super().__init__()
        conv = layer.filter
        weight = conv.weight.detach().float()
        scales = weight.abs().amax(dim=(1, 2, 3)).clamp(min=1e-8) / 127
        self.register_buffer("qweight", torch.round(weight / scales.view(-1, 1, 1, 1)).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scales", scales)
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().float().clone())
        self.geometry = ([*conv.stride], [*conv.padding], [*conv.dilation], conv.groups)
        self.mfm = layer.mfm
        self.levels = 255 if torch.cpu._is_vnni_supported() else 127  # see the module's docstring
        self._packed: torch.Tensor | None = None

    def packed(self) -> torch.Tensor:
        if self._packed is None:  # oneDNN reads the input's scale at run time: the one given here is a placeholder
            self._packed = torch.ops.onednn.qconv_prepack(self.qweight, self.scales, 1.0, 0, *self.geometry, None)
        return self._packed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != 1:  # each item its own range: its output does not depend on its batch mates
            return torch.cat([self(x[i : i + 1]) for i in range(x.shape[0])])
        low, high = torch.aminmax(x)
        scale, zero = affine_qparams(float(low), float(high), self.levels)
        codes = _codes(torch.quantize_per_tensor(x.float().contiguous(memory_format=torch.channels_last), scale, zero,
                                                 torch.quint8))  # fmt: skip
        zeros = torch.zeros(len(self.scales), dtype=torch.long)
        y = torch.ops.onednn.qconv2d_pointwise(codes, scale, zero, self.packed(), self.scales, zeros, self.bias,
                                               *self.geometry, 1.0, 0, torch.float32, "none", [], "")  # fmt: skip
        return self.mfm(y)

    def __deepcopy__(self, memo: dict) -> DynamicInt8MFMConv2d:
        clone = memo[id(self)] = type(self).__new__(type(self))  # oneDNN's packed weights do not copy: repacked
        clone.__dict__.update(copy.deepcopy({k: v for k, v in self.__dict__.items() if k != "_packed"}, memo))
        clone._packed = None
        return clone


def quantize_int8_dynamic(model: nn.Module) -> nn.Module:
    """An int8 copy of ``model`` (left as it is; the copy in eval mode, channels-last): each MFM convolution with
    a kernel larger than 1x1 and more than one input channel a :class:`DynamicInt8MFMConv2d`, after folding
    BatchNorms (module docstring). No calibration: the ranges are each input's. Raises ``RuntimeError`` where
    :func:`int8_dynamic_unavailable` says why."""
    why = int8_dynamic_unavailable()
    if why:
        raise RuntimeError(why)
    # channels-last throughout: the int8 kernels write it, and an fp32 convolution fed it with weights of the
    # other layout falls to a slow path
    model = fold_batchnorms(copy.deepcopy(model).eval()).to(memory_format=torch.channels_last)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, MFMConv2d) and max(child.filter.kernel_size) > 1 and child.filter.in_channels > 1:
                setattr(parent, name, DynamicInt8MFMConv2d(child))
    return model
