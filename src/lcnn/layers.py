"""Max-Feature-Map layers (Wu et al., "A Light CNN for Deep Face Representation with Noisy Labels",
arXiv 1511.02683), the blocks the LightCNN family is built from, its pooling, and an initialiser.

As in ``torch.nn``, each module is a thin wrapper over a functional kernel: :func:`max_feature_map`,
:func:`max_avg_pool2d`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FusedMaxAvgPool2d",
    "MFMConv2d",
    "MFMGroup",
    "MFMLinear",
    "MFMResBlock",
    "MaxAvgPool2d",
    "MaxFeatureMap",
    "max_avg_pool2d",
    "max_feature_map",
    "mfm_init",
]


class _MaxFeatureMap2to1(torch.autograd.Function):
    """``max(a, b)`` of the two channel halves with a lean backward: the forward keeps a mask of where ``a``
    won, and the backward writes ``grad * mask`` and ``grad - grad * mask`` straight into the two halves of
    the input gradient. ``torch.maximum``'s own backward (which splits ties 0.5/0.5) runs a dozen full-size
    passes (eq, where, masked_fill, gt, lt, div, cat) and was half the training step of the article's LCNN
    on CPU.

    On CPU the mask is kept in the input's dtype: writing a bool mask and multiplying by one each cost twice
    a float one there (the bool values are converted element by element). GPUs convert for free, so there the
    mask stays 1-byte bool and saves memory."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, dim: int) -> torch.Tensor:
        a, b = x.chunk(2, dim)
        if x.device.type == "cpu":
            mask = torch.ge(a, b, out=torch.empty_like(a))
        else:
            mask = torch.ge(a, b)
        ctx.save_for_backward(mask)
        ctx.dim = dim
        ctx.shape = x.shape
        ctx.channels_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(
            memory_format=torch.channels_last
        )
        return torch.maximum(a, b)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (mask,) = ctx.saved_tensors
        layout = torch.channels_last if ctx.channels_last else torch.contiguous_format
        grad_x = torch.empty(ctx.shape, dtype=grad.dtype, device=grad.device, memory_format=layout)
        grad_a, grad_b = grad_x.chunk(2, ctx.dim)
        torch.mul(grad, mask, out=grad_a)
        torch.sub(grad, grad_a, out=grad_b)
        return grad_x, None


def _max_feature_map_2to1(x: torch.Tensor, dim: int) -> torch.Tensor:
    # The lean backward only where a gradient is needed; inference, TorchScript and tracing get plain maximum.
    if not torch.jit.is_scripting() and torch.is_grad_enabled() and x.requires_grad and not torch.jit.is_tracing():
        return _MaxFeatureMap2to1.apply(x, dim)
    # The half as a Python int: a trace records constant slices, so that exporters know the channels of each
    # half (ONNX's BatchNorm after an MFM needs them) while the other dimensions stay dynamic.
    half = int(x.shape[dim]) // 2
    return torch.maximum(x.narrow(dim, 0, half), x.narrow(dim, half, half))


def max_feature_map(x: torch.Tensor, kind: str = "2/1", dim: int = 1) -> torch.Tensor:
    """Max-Feature-Map along ``dim``.

    ``kind="2/1"``: ``max(x[:C/2], x[C/2:])``, the same values as ``torch.maximum(*x.chunk(2, dim))``. Its
    backward sends the whole gradient to the half that won (the first on an exact tie, where
    ``torch.maximum`` splits it; both are valid subgradients) and is about 3x faster on CPU.

    ``kind="3/2"`` is eq. 4 of the paper: the channels are split into three thirds and, element-wise, the
    largest and the median of the three are kept, so 3k channels become 2k (max first, then median).

    Shape: ``(N, C, *)`` -> ``(N, C/2, *)`` or ``(N, 2C/3, *)`` along ``dim``.
    """
    if kind not in ("2/1", "3/2"):
        raise ValueError(f"MaxFeatureMap kind must be '2/1' or '3/2', got {kind!r}")
    parts = 2 if kind == "2/1" else 3
    if x.shape[dim] % parts:
        raise ValueError(
            f"MaxFeatureMap {kind} needs a size divisible by {parts} along dim {dim}, got input of shape "
            f"{tuple(x.shape)}"
        )
    if kind == "2/1":
        return _max_feature_map_2to1(x, dim)
    a, b, c = x.chunk(3, dim=dim)
    high = torch.maximum(torch.maximum(a, b), c)
    low = torch.minimum(torch.minimum(a, b), c)
    return torch.cat([high, a + b + c - high - low], dim=dim)


class MaxFeatureMap(nn.Module):
    """Max-Feature-Map activation (:func:`max_feature_map`): ``kind="2/1"`` or ``"3/2"``.

    Shape: ``(N, C, *)`` -> ``(N, C/2, *)`` or ``(N, 2C/3, *)`` along ``dim``.
    """

    def __init__(self, kind: str = "2/1", dim: int = 1) -> None:
        super().__init__()
        if kind not in ("2/1", "3/2"):
            raise ValueError(f"MaxFeatureMap kind must be '2/1' or '3/2', got {kind!r}")
        self.kind = kind
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_feature_map(x, self.kind, self.dim)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, dim={self.dim}"


def _mfm_width(out_channels: int, kind: str) -> int:
    """Channels the inner layer must emit for MFM ``kind`` to leave ``out_channels``."""
    if kind == "2/1":
        return 2 * out_channels
    if out_channels % 2:
        raise ValueError(f"MFM 3/2 keeps 2k channels; out_channels={out_channels} is odd")
    return 3 * out_channels // 2


class MFMConv2d(nn.Module):
    """A convolution emitting twice (or 3/2 times) ``out_channels``, then Max-Feature-Map.

    The convolution is the attribute ``filter``, as in the official LightCNN code, so official state_dict
    keys (``conv1.filter.weight``) load unchanged.

    Shape: ``(N, in_channels, H, W)`` -> ``(N, out_channels, H', W')``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | str = 1,
        bias: bool = True,
        kind: str = "2/1",
    ) -> None:
        super().__init__()
        self.filter = nn.Conv2d(
            in_channels, _mfm_width(out_channels, kind), kernel_size, stride, padding, bias=bias
        )
        self.mfm = MaxFeatureMap(kind, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mfm(self.filter(x))


class MFMLinear(nn.Module):
    """A linear layer emitting twice (or 3/2 times) ``out_features``, then Max-Feature-Map.

    Shape: ``(N, in_features)`` -> ``(N, out_features)``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, kind: str = "2/1") -> None:
        super().__init__()
        self.filter = nn.Linear(in_features, _mfm_width(out_features, kind), bias=bias)
        self.mfm = MaxFeatureMap(kind, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mfm(self.filter(x))


class MFMGroup(nn.Module):
    """LightCNN's ``group``: a 1x1 MFM convolution then a kxk MFM convolution.

    Shape: ``(N, in_channels, H, W)`` -> ``(N, out_channels, H', W')``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int) -> None:
        super().__init__()
        self.conv_a = MFMConv2d(in_channels, in_channels, 1, 1, 0)
        self.conv = MFMConv2d(in_channels, out_channels, kernel_size, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.conv_a(x))


class MFMResBlock(nn.Module):
    """LightCNN-29's residual block: two 3x3 MFM convolutions and an identity shortcut.

    Shape: ``(N, C, H, W)`` -> ``(N, C, H, W)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = MFMConv2d(channels, channels, 3, 1, 1)
        self.conv2 = MFMConv2d(channels, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + x


def max_avg_pool2d(x: torch.Tensor, fused: bool = False) -> torch.Tensor:
    """``max_pool2d(x, 2) + avg_pool2d(x, 2)`` (a sum, floor mode), the pooling of LightCNN-29v2 and -V4.

    ``fused=True`` computes both from one read of the four 2x2 neighbours (even sizes; odd ones take the
    two-pass path), for inference: no intermediate pooled maps, and the input's memory format is kept.

    Shape: ``(N, C, H, W)`` -> ``(N, C, H // 2, W // 2)``.
    """
    if not fused or x.shape[-1] % 2 or x.shape[-2] % 2:
        return F.max_pool2d(x, 2) + F.avg_pool2d(x, 2)
    a = x[:, :, 0::2, 0::2]
    b = x[:, :, 0::2, 1::2]
    c = x[:, :, 1::2, 0::2]
    d = x[:, :, 1::2, 1::2]
    return torch.maximum(torch.maximum(a, b), torch.maximum(c, d)) + (a + b + c + d) * 0.25


class MaxAvgPool2d(nn.Module):
    """:func:`max_avg_pool2d`: the pooling of LightCNN-29v2 and LightCNN-V4.

    Shape: ``(N, C, H, W)`` -> ``(N, C, H // 2, W // 2)``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_avg_pool2d(x)


class FusedMaxAvgPool2d(nn.Module):
    """:class:`MaxAvgPool2d` for inference, in one pass (``max_avg_pool2d(x, fused=True)``).

    Shape: ``(N, C, H, W)`` -> ``(N, C, H // 2, W // 2)``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_avg_pool2d(x, fused=True)


def mfm_init(model: nn.Module) -> None:
    """Weights ``N(0, 1 / fan_in)`` and zero biases for every convolution and linear layer of ``model``.

    The max of two such outputs keeps their second moment, so the signal keeps its scale through the MFM
    layers. PyTorch's default (uniform, variance ``1 / (3 fan_in)``) shrinks it layer after layer until the
    biases dominate: at initialisation LightCNN-9 gives faces of different people embeddings with cosine
    close to 1, and training takes several epochs to leave that state.
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="linear")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
