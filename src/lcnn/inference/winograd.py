"""Winograd F(4x4, 3x3) convolutions for inference (Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks", 2016): 4x fewer multiplies for the 3x3 convolutions of the LightCNN trunks on small maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["WinogradConv2d"]

# Points 0, +-1, +-2, inf: Y = A^T [(G g G^T) * (B^T d B)] A for a 6x6 input tile d and a 3x3 kernel g.
_WINO_BT = ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
            (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1))  # fmt: skip
_WINO_G = ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6),
           (1 / 24, 1 / 12, 1 / 6), (1 / 24, -1 / 12, 1 / 6), (0, 0, 1))  # fmt: skip
_WINO_AT = ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))


def _combine_rows(t: torch.Tensor, matrix: tuple[tuple[float, ...], ...], dim: int) -> torch.Tensor:
    """``stack_r sum_j matrix[r][j] * t.select(dim, j)`` on a new leading dim, written as plain arithmetic
    so that ``torch.compile`` fuses it with what follows."""
    parts = [t.select(dim, j) for j in range(len(matrix[0]))]
    rows = []
    for row in matrix:
        acc = None
        for coef, part in zip(row, parts):
            if coef:
                term = part if coef == 1 else -part if coef == -1 else part * coef
                acc = term if acc is None else acc + term
        rows.append(acc)
    return torch.stack(rows, 0)


class WinogradConv2d(nn.Module):
    """Inference-only 3x3 convolution (stride 1, padding 1) by Winograd F(4x4, 3x3): 4x fewer multiplies,
    done as one batched matrix product over 36 transformed tile positions (kernels transformed once, in
    float64). Worth it where the channels are many and the map small: maps up to ``max_size`` (and a
    multiple of 4) take this path, others the wrapped convolution. Error vs direct fp32: ~1e-5 relative.

    Shape: ``(N, C_in, H, W)`` -> ``(N, C_out, H, W)``, channels-last output.
    """

    def __init__(self, conv: nn.Conv2d, max_size: int = 16) -> None:
        super().__init__()
        if not self.supports(conv):
            raise ValueError(f"WinogradConv2d needs a 3x3, stride 1, padding 1, ungrouped Conv2d, got {conv}")
        self.conv = conv
        self.max_size = max_size
        dtype = conv.weight.dtype
        g = torch.tensor(_WINO_G, dtype=torch.float64, device=conv.weight.device)
        w = conv.weight.detach().double()
        kernel = torch.einsum("ai,oxij,bj->abxo", g, w, g).reshape(36, w.shape[1], w.shape[0])
        bt = torch.tensor(_WINO_BT, dtype=torch.float64, device=conv.weight.device)
        at = torch.tensor(_WINO_AT, dtype=torch.float64, device=conv.weight.device)
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(w.shape[0], device=w.device)
        self.register_buffer("kernel", kernel.to(dtype).contiguous(), persistent=False)  # (36, C_in, C_out)
        self.register_buffer("bias", bias.to(dtype).clone(), persistent=False)
        self.register_buffer("input_transform", torch.kron(bt, bt).to(dtype), persistent=False)  # (36, 36)
        self.register_buffer("output_transform", torch.kron(at, at).to(dtype), persistent=False)  # (16, 36)

    @staticmethod
    def supports(conv: nn.Module) -> bool:
        return (
            type(conv) is nn.Conv2d
            and conv.kernel_size == (3, 3)
            and conv.stride == (1, 1)
            and conv.padding == (1, 1)
            and conv.dilation == (1, 1)
            and conv.groups == 1
            and conv.padding_mode == "zeros"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if h % 4 or w % 4 or max(h, w) > self.max_size or x.dtype != self.kernel.dtype:
            return self.conv(x)
        c_out = self.kernel.shape[2]
        th, tw = h // 4, w // 4
        tiles = n * th * tw
        padded = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 1, 1, 1))  # (N, H+2, W+2, C)
        d = padded.unfold(1, 6, 4).unfold(2, 6, 4)  # (N, th, tw, C, 6, 6) overlapping tiles
        d = d.permute(4, 5, 0, 1, 2, 3).reshape(36, tiles * c)
        v = (self.input_transform @ d).view(36, tiles, c)  # B^T d B for every tile and channel
        m = torch.bmm(v, self.kernel)  # (36, tiles, C_out)
        if torch.compiler.is_compiling():  # fused with the bias, MFM and residual add that follow
            y = _combine_rows(m.view(6, 6, n, th, tw, c_out), _WINO_AT, 0)
            y = _combine_rows(y, _WINO_AT, 1).transpose(0, 1)  # (4, 4, N, th, tw, C_out)
            out = (y.permute(2, 3, 0, 4, 1, 5) + self.bias).reshape(n, h, w, c_out)
        else:
            y = (self.output_transform @ m.view(36, tiles * c_out)).view(4, 4, n, th, tw, c_out)
            out = torch.empty((n, th, 4, tw, 4, c_out), dtype=x.dtype, device=x.device)
            torch.add(y.permute(2, 3, 0, 4, 1, 5), self.bias, out=out)
            out = out.view(n, h, w, c_out)
        return out.permute(0, 3, 1, 2)
