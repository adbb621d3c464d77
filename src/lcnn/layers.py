"""Max-Feature-Map layers (Wu et al., "A Light CNN for Deep Face Representation with Noisy Labels",
arXiv 1511.02683) and the blocks the LightCNN family is built from."""

from __future__ import annotations

import torch
from torch import nn

from lcnn.speed import max_feature_map_2to1


class MaxFeatureMap(nn.Module):
    """Max-Feature-Map activation.

    ``kind="2/1"`` splits the channels into two halves and keeps their element-wise maximum: channel ``i``
    of the output is ``max(x[i], x[i + C/2])``, as in every public implementation. In training its backward
    sends the gradient to whichever half won (the first on an exact tie); see :func:`lcnn.speed.max_feature_map_2to1`.

    ``kind="3/2"`` is eq. 4 of the paper: the channels are split into three thirds and, element-wise, the
    largest and the median of the three are kept, so 3k channels become 2k (max first, then median).

    Shape: ``(N, C, *)`` -> ``(N, C/2, *)`` or ``(N, 2C/3, *)`` along ``dim``.
    """

    def __init__(self, kind: str = "2/1", dim: int = 1) -> None:
        super().__init__()
        if kind not in ("2/1", "3/2"):
            raise ValueError(f"MaxFeatureMap kind must be '2/1' or '3/2', got {kind!r}")
        self.kind = kind
        self.dim = dim

    @property
    def parts(self) -> int:
        return 2 if self.kind == "2/1" else 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[self.dim]
        if size % self.parts:
            raise ValueError(
                f"MaxFeatureMap {self.kind} needs a size divisible by {self.parts} along dim {self.dim}, "
                f"got input of shape {tuple(x.shape)}"
            )
        if self.kind == "2/1":
            return max_feature_map_2to1(x, self.dim)
        a, b, c = x.chunk(3, dim=self.dim)
        high = torch.maximum(torch.maximum(a, b), c)
        low = torch.minimum(torch.minimum(a, b), c)
        median = a + b + c - high - low
        return torch.cat([high, median], dim=self.dim)

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
