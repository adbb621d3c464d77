"""Batched image augmentation on tensors (any device): random affine jitter, flips and cutout."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class BatchAugment(nn.Module):
    """Random per-image affine jitter (shift, rotation, scale), horizontal flip and cutout.

    Works on a whole batch at once with one ``grid_sample``, so it costs little next to the model.
    ``shift`` is in pixels, ``rotate`` in degrees, ``scale`` a relative range (0.1: 0.9 to 1.1),
    ``cutout`` the side of a square zeroed at a random place (0: none).

    Shape: ``(N, C, H, W)`` -> ``(N, C, H, W)``; identity in eval mode.
    """

    def __init__(
        self, shift: float = 0.0, rotate: float = 0.0, scale: float = 0.0, hflip: bool = False, cutout: int = 0
    ) -> None:
        super().__init__()
        self.shift, self.rotate, self.scale, self.hflip, self.cutout = shift, rotate, scale, hflip, cutout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        n, _, h, w = x.shape
        if self.shift or self.rotate or self.scale or self.hflip:
            x = F.grid_sample(x, self._grids(n, h, w, x), mode="bilinear", padding_mode="zeros", align_corners=False)
        if self.cutout:
            x = x * self._cutout_mask(n, h, w, x)
        return x

    def _grids(self, n: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
        def uniform(bound: float) -> torch.Tensor:
            return (torch.rand(n, device=like.device) * 2 - 1) * bound

        angle = uniform(math.radians(self.rotate))
        scale = 1 + uniform(self.scale)
        flip = torch.ones(n, device=like.device)
        if self.hflip:
            flip = torch.where(torch.rand(n, device=like.device) < 0.5, -1.0, 1.0)
        # Whole-pixel shifts keep the bilinear resampling exact when there is no rotation or scaling.
        shift_x = uniform(self.shift).round() * 2 / w
        shift_y = uniform(self.shift).round() * 2 / h
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack(
            [torch.stack([cos * flip, -sin, shift_x], 1), torch.stack([sin * flip, cos, shift_y], 1)], 1
        )
        return F.affine_grid(theta.to(like.dtype), [n, 1, h, w], align_corners=False)

    def _cutout_mask(self, n: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
        cy = torch.randint(0, h, (n, 1, 1), device=like.device)
        cx = torch.randint(0, w, (n, 1, 1), device=like.device)
        ys = torch.arange(h, device=like.device).view(1, h, 1)
        xs = torch.arange(w, device=like.device).view(1, 1, w)
        half = self.cutout // 2
        inside = ((ys - cy).abs() <= half) & ((xs - cx).abs() <= half)
        return (~inside).unsqueeze(1).to(like.dtype)

    def extra_repr(self) -> str:
        return f"shift={self.shift}, rotate={self.rotate}, scale={self.scale}, hflip={self.hflip}, cutout={self.cutout}"
