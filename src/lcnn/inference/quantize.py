"""Int8 inference for MFM networks (the article's LCNN and the LightCNN family) on x86 CPUs.

:func:`quantize_int8` calibrates a copy of a trained model on a batch of real inputs and swaps its MFM
building blocks for int8 ones:

- convolutions run as oneDNN/fbgemm int8 kernels (AVX512-VNNI) with per-channel symmetric int8 weights
  and per-tensor uint8 activations; on the 2-core test machine they reach 4-5x the fp32 multiply rate;
- the Max-Feature-Map runs on the uint8 codes themselves: both halves of a convolution's output share
  one scale and zero point, so the max of the codes is the code of the max, exact;
- a BatchNorm between two MFM convolutions (the article's LCNN) is folded into their weights first, exactly
  (:func:`fold_batchnorms`), so it costs nothing; any other BatchNorm runs as a quantized one;
- a max-pool right after an MFM convolution is taken before the MFM, on the 2C channels (both are maxima,
  so the result is the same), where the quantized pool kernel is faster and the MFM has a quarter of the work;
- residual adds and LightCNN-29v2's ``max_pool2d + avg_pool2d`` are quantized adds;
- fully connected layers stay fp32 (a small share of the work), fed with dequantized features.

The activation ranges are the minimum and maximum seen on the calibration batch (a few dozen real
images is enough; inputs in [0, 1] are quantized exactly at 1/255). Only ``MaxFeatureMap("2/1")`` is
supported. Run the result under ``torch.inference_mode`` (or through
:func:`lcnn.inference.optimize_for_inference` with ``precision="int8"``), on the CPU.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
import torch.ao.nn.quantized as nnq
import torch.nn.functional as F
from torch import nn

from lcnn.layers import FusedMaxAvgPool2d, MaxAvgPool2d, MFMConv2d, MFMGroup, MFMLinear, MFMResBlock

QParams = tuple[float, int]
T = TypeVar("T")

# torch 2.13 flags its quantized tensors as deprecated (pytorch/pytorch#184982) on every creation; the int8
# path is built on them and says so above, so the warning is not repeated to users at each batch.
warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel")


class _Range:
    """Running min/max of what a module emits (or receives); ``qparams()`` for uint8 affine codes."""

    def __init__(self) -> None:
        self.low, self.high = float("inf"), float("-inf")

    def update(self, x: torch.Tensor) -> None:
        self.low = min(self.low, float(x.min()))
        self.high = max(self.high, float(x.max()))

    def hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        """A forward hook recording ``output``."""
        self.update(output)

    def qparams(self) -> QParams:
        return affine_qparams(self.low, self.high)


def affine_qparams(low: float, high: float, levels: int = 255) -> QParams:
    """The scale and zero point of uint8 codes ``0..levels`` spanning ``[low, high]`` and zero, which must be
    exactly representable (zero padding, zeroed frames)."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = max(high - low, 1e-8) / levels
    return scale, int(min(levels, max(0, round(-low / scale))))


def _quantize(x: torch.Tensor, qparams: QParams) -> torch.Tensor:
    return torch.quantize_per_tensor(x, qparams[0], qparams[1], torch.quint8)


def _codes(q: torch.Tensor) -> torch.Tensor:
    """The uint8 codes of a quint8 tensor, sharing its memory (``int_repr`` copies, at 4x the cost of the MFM)."""
    return torch.empty(0, dtype=torch.uint8, device=q.device).set_(q.untyped_storage(), q.storage_offset(),
                                                                   q.size(), q.stride())  # fmt: skip


def _mfm_codes(q: torch.Tensor) -> torch.Tensor:
    """Max-Feature-Map 2/1 over the channels of a quantized ``(N, 2C, H, W)`` tensor, on its uint8 codes."""
    low, high = _codes(q).chunk(2, 1)
    out = torch._empty_affine_quantized(low.shape, scale=q.q_scale(), zero_point=q.q_zero_point(), dtype=torch.quint8,
                                        memory_format=torch.channels_last)  # fmt: skip
    torch.maximum(low, high, out=_codes(out))
    return out


def _int8_conv(conv: nn.Conv2d, out: QParams) -> nnq.Conv2d:
    weight = conv.weight.detach().float()
    scales = weight.abs().amax(dim=(1, 2, 3)).clamp(min=1e-8) / 127
    qweight = torch.quantize_per_channel(weight, scales.double(), torch.zeros_like(scales, dtype=torch.long), 0,
                                         torch.qint8)  # fmt: skip
    qconv = nnq.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                       conv.dilation, conv.groups, bias=conv.bias is not None)  # fmt: skip
    qconv.set_weight_bias(qweight, None if conv.bias is None else conv.bias.detach().float())
    qconv.scale, qconv.zero_point = out
    return qconv


class Int8MFMConv2d(nn.Module):
    """:class:`~lcnn.layers.MFMConv2d` in int8: quantized ``(N, C, H, W)`` in and out (a float input is
    quantized with the input range seen in calibration).

    ``pool``, a max-pool that follows the layer, is taken before the MFM: both are maxima, so the order does
    not change the result, and the MFM then runs on a quarter of the data. The quantized pool kernel is also
    slow on channel counts that are not a multiple of 32: a 2x2 pool of 32x48x128x128 took 11.0 ms on one
    thread, of 32x96x128x128 (the ``2C`` channels) 3.2 ms."""

    def __init__(self, layer: MFMConv2d, inputs: QParams, conv_out: QParams) -> None:
        super().__init__()
        self.inputs = inputs
        self.conv = _int8_conv(layer.filter, conv_out)
        self.pool: nn.MaxPool2d | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_quantized:
            x = _quantize(x.contiguous(memory_format=torch.channels_last), self.inputs)
        x = self.conv(x)
        return _mfm_codes(x if self.pool is None else self.pool(x))


class Int8ResBlock(nn.Module):
    """:class:`~lcnn.layers.MFMResBlock` in int8: two int8 MFM convolutions and a quantized add."""

    def __init__(self, conv1: Int8MFMConv2d, conv2: Int8MFMConv2d, out: QParams) -> None:
        super().__init__()
        self.conv1, self.conv2, self.out = conv1, conv2, out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.add(self.conv2(self.conv1(x)), x, *self.out)


class Int8MaxAvgPool2d(nn.Module):
    """``max_pool2d(x, 2) + avg_pool2d(x, 2)`` (LightCNN-29v2, V4) on quantized tensors."""

    def __init__(self, out: QParams) -> None:
        super().__init__()
        self.out = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.add(F.max_pool2d(x, 2), F.avg_pool2d(x, 2), *self.out)


class FloatInput(nn.Module):
    """Runs ``module`` (a layer kept in fp32) on the dequantized input."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.dequantize() if x.is_quantized else x)


def _int8_batchnorm(bn: nn.BatchNorm2d, out: QParams) -> nnq.BatchNorm2d:
    qbn = nnq.BatchNorm2d(bn.num_features, bn.eps)
    qbn.load_state_dict({k: v for k, v in bn.state_dict().items() if k != "num_batches_tracked"}, strict=False)
    qbn.scale, qbn.zero_point = torch.tensor(out[0]), torch.tensor(out[1])
    return qbn


def fold_batchnorms(model: nn.Module) -> nn.Module:
    """Fold each BatchNorm that sits between two 2/1 MFM convolutions of an ``nn.Sequential`` (``conv, bn, conv``
    or ``conv, max-pool, bn, conv``) into their weights, in place; returns ``model``, which must be in eval mode.

    The BatchNorm ``y = a * m + b`` of the MFM output ``m = max(c, c')`` commutes with the max when ``a > 0``:
    the first convolution's channel pair is scaled by ``a`` and shifted by ``b``. For ``a < 0`` it takes ``|a|``
    and ``-b`` and the sign goes into the next convolution's input weights, where the zero padding is unchanged
    by it. Max-pooling commutes the same way. Exact up to float rounding.
    """
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        layers = list(seq)
        for i, bn in enumerate(layers):
            if not isinstance(bn, nn.BatchNorm2d) or bn.running_var is None or not 0 < i < len(layers) - 1:
                continue
            before = layers[i - 2] if isinstance(layers[i - 1], nn.MaxPool2d) and i >= 2 else layers[i - 1]
            after = layers[i + 1]
            if not all(isinstance(m, MFMConv2d) and m.mfm.kind == "2/1" for m in (before, after)):
                continue
            _fold_batchnorm(bn, before.filter, after.filter)
            seq[i] = nn.Identity()
    return model


@torch.no_grad()
def _fold_batchnorm(bn: nn.BatchNorm2d, before: nn.Conv2d, after: nn.Conv2d) -> None:
    scale = bn.running_var.add(bn.eps).rsqrt()
    scale = scale * bn.weight if bn.affine else scale
    shift = -bn.running_mean * scale + (bn.bias if bn.affine else 0)
    sign = torch.where(scale < 0, -1.0, 1.0)
    pair_scale, pair_shift = scale.abs().repeat(2), (sign * shift).repeat(2)  # channel i meets i + C
    if before.bias is None:
        before.bias = nn.Parameter(torch.zeros_like(pair_shift))
    before.weight.mul_(pair_scale.view(-1, 1, 1, 1))
    before.bias.mul_(pair_scale).add_(pair_shift)
    after.weight.mul_(sign.view(1, -1, 1, 1))


def calibration_subset(items: Sequence[T], count: int) -> list[T]:
    """At most ``count`` of ``items``, spread evenly over them (a calibration batch that sees the whole set)."""
    return list(items[:: max(1, len(items) // count)][:count])


def quantize_int8(
    model: nn.Module, calibration: torch.Tensor, run: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None
) -> nn.Module:
    """An int8 copy of ``model`` (left as it is), calibrated on ``calibration`` (real inputs, ``(N, C, H, W)``).

    ``run(model, x)`` is the computation to calibrate (default: ``model.embed`` where the model has one,
    else ``model``); the copy has the same ``forward`` and ``embed``, taking and returning fp32 tensors.
    Raises ``ValueError`` for an MFM other than 2/1 or a block that is called twice in one pass (one
    range would then serve two places).
    """
    model = fold_batchnorms(copy.deepcopy(model).eval())
    run = run or (lambda m, x: m.embed(x) if hasattr(m, "embed") else m(x))
    converted = (MFMConv2d, MFMResBlock, nn.BatchNorm2d, MaxAvgPool2d, FusedMaxAvgPool2d)
    blocks = [m for m in model.modules() if isinstance(m, converted)]
    ranges = {m: {"in": _Range(), "out": _Range(), "conv": _Range()} for m in blocks}  # conv: before the MFM
    calls = dict.fromkeys(blocks, 0)

    def record(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        ranges[module]["in"].update(args[0])
        ranges[module]["out"].update(output)
        calls[module] += 1

    hooks = [m.register_forward_hook(record) for m in blocks]
    hooks += [m.filter.register_forward_hook(ranges[m]["conv"].hook) for m in blocks if isinstance(m, MFMConv2d)]
    try:
        with torch.inference_mode():
            run(model, calibration.float())
    finally:
        for hook in hooks:
            hook.remove()

    for module in blocks:
        if calls[module] > 1:
            raise ValueError(f"{type(module).__name__} is called more than once per pass; give each use its own")
    swapped: dict[nn.Module, nn.Module] = {}
    for module in reversed(blocks):  # modules() lists parents first: the convolutions before their blocks
        seen = ranges[module]
        if calls[module] == 0:
            continue  # not on the calibrated path (a classifier-only branch, say): left in fp32
        if isinstance(module, MFMConv2d):
            if module.mfm.kind != "2/1":
                raise ValueError(f"int8 supports MaxFeatureMap 2/1 only, got {module.mfm.kind}")
            swapped[module] = Int8MFMConv2d(module, seen["in"].qparams(), seen["conv"].qparams())
        elif isinstance(module, MFMResBlock):
            swapped[module] = Int8ResBlock(swapped[module.conv1], swapped[module.conv2], seen["out"].qparams())
        elif isinstance(module, nn.BatchNorm2d):
            swapped[module] = _int8_batchnorm(module, seen["out"].qparams())
        else:
            swapped[module] = Int8MaxAvgPool2d(seen["out"].qparams())
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if child in swapped:
                setattr(parent, name, swapped[child])
            elif isinstance(child, (nn.Linear, MFMLinear)) and not isinstance(parent, MFMLinear):
                setattr(parent, name, FloatInput(child))
    _pool_before_mfm(model)
    return model


def _pool_before_mfm(model: nn.Module) -> None:
    """Hand each max-pool that follows an int8 MFM convolution (or an ``MFMGroup`` ending in one) in an
    ``nn.Sequential`` to that convolution, which pools before its MFM (:class:`Int8MFMConv2d`)."""
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, pool = seq[i].conv if isinstance(seq[i], MFMGroup) else seq[i], seq[i + 1]
            if isinstance(conv, Int8MFMConv2d) and isinstance(pool, nn.MaxPool2d) and not pool.return_indices:
                conv.pool, seq[i + 1] = pool, nn.Identity()
