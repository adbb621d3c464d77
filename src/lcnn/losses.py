"""Losses with their heads: margin softmaxes for face identities (AM-softmax / CosFace, ArcFace), the one-class
softmax of spoofing countermeasures, and the cosine head of NII's countermeasures (AM-softmax, P2SGrad)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MARGIN_DEFAULTS", "CosineHead", "MarginSoftmax", "OCSoftmax", "am_softmax_loss", "p2sgrad_loss"]

# (margin, scale) of the papers: AM-softmax (Wang et al. 2018) m=0.35 s=30; ArcFace (Deng et al. 2019) m=0.5 s=64.
MARGIN_DEFAULTS = {"amsoftmax": (0.35, 30.0), "arcface": (0.5, 64.0)}


class MarginSoftmax(nn.Module):
    """Cosine classifier with an additive margin on the true class, for ``F.cross_entropy``.

    The logits are ``scale * cos(theta_j)`` between the L2-normalised feature and class weight ``j``; with
    labels, the true class's becomes ``scale * (cos(theta_y) - margin)`` (``amsoftmax``) or
    ``scale * cos(theta_y + margin)`` (``arcface``; where ``theta_y + margin`` would pass pi, the
    CosFace-like ``cos(theta_y) - margin * sin(margin)`` is used instead, as in the ArcFace reference code).

    Shape: features ``(N, D)``, labels ``(N,)`` -> logits ``(N, num_classes)``.
    """

    def __init__(
        self, in_features: int, num_classes: int, kind: str = "amsoftmax", margin: float | None = None,
        scale: float | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        if kind not in MARGIN_DEFAULTS:
            raise ValueError(f"unknown margin loss {kind!r}; expected one of {', '.join(MARGIN_DEFAULTS)}")
        default_margin, default_scale = MARGIN_DEFAULTS[kind]
        self.kind = kind
        self.margin = default_margin if margin is None else float(margin)
        self.scale = default_scale if scale is None else float(scale)
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.xavier_uniform_(self.weight)

    def cosine(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, D)`` -> cosine similarities ``(N, num_classes)`` to the class weights."""
        return F.linear(F.normalize(features, dim=1), F.normalize(self.weight, dim=1))

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Scaled cosine logits, with the margin on the true class when ``labels`` are given."""
        cos = self.cosine(features.float())
        if labels is None or self.margin == 0:
            return self.scale * cos
        target = cos.gather(1, labels[:, None])
        if self.kind == "amsoftmax":
            shifted = target - self.margin
        else:
            sin = (1 - target.square()).clamp_min(0).sqrt()
            shifted = target * math.cos(self.margin) - sin * math.sin(self.margin)
            # cos(theta + m) is no longer decreasing in theta once theta + m > pi.
            shifted = torch.where(target > math.cos(math.pi - self.margin), shifted,
                                  target - math.sin(math.pi - self.margin) * self.margin)  # fmt: skip
        return self.scale * cos.scatter(1, labels[:, None], shifted)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]} -> {self.weight.shape[0]}, kind={self.kind}, margin={self.margin}, " \
               f"scale={self.scale}"


class OCSoftmax(nn.Module):
    """One-class softmax (Zhang, Jiang & Li, IEEE SPL 2021): the cosine of an embedding with a learnt bona fide
    direction is the score; the loss is ``softplus(alpha (m_bonafide - cos))`` for bona fide and
    ``softplus(alpha (cos - m_spoof))`` for spoofs (margins 0.9 / 0.2, scale 20 as in the paper).

    Shapes: embedding ``(N, dim)`` -> score ``(N,)`` in [-1, 1]; ``loss(embedding, labels)`` -> scalar.
    """

    def __init__(self, dim: int = 256, m_bonafide: float = 0.9, m_spoof: float = 0.2, alpha: float = 20.0) -> None:
        super().__init__()
        self.center = nn.Parameter(torch.empty(1, dim))
        nn.init.kaiming_uniform_(self.center, a=0.25)
        self.m_bonafide, self.m_spoof, self.alpha = m_bonafide, m_spoof, alpha

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return (F.normalize(embedding, dim=1) * F.normalize(self.center, dim=1)).sum(1)  # per row: batch-free

    def loss(self, embedding: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = self(embedding)
        margin = torch.where(labels == 1, self.m_bonafide - cos, cos - self.m_spoof)
        return F.softplus(self.alpha * margin).mean()


class CosineHead(nn.Module):
    """Cosines between an embedding and one weight column per class, as NII's ``AMAngleLayer`` and
    ``P2SActivationLayer`` compute them (the weight ``(dim, classes)``, each column renormalised to unit length
    as theirs: ``renorm(2, 1, 1e-5) * 1e5``), clamped to [-1, 1].

    Shape: ``(N, dim)`` -> ``(N, classes)``.
    """

    def __init__(self, dim: int, classes: int = 2) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim, classes).uniform_(-1, 1).renorm(2, 1, 1e-5).mul(1e5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.renorm(2, 1, 1e-5).mul(1e5)
        # a product and a sum per row rather than a matrix product, whose rounding depends on the batch size
        return ((x[:, :, None] * w[None]).sum(1) / x.pow(2).sum(1).pow(0.5)[:, None]).clamp(-1, 1)


def am_softmax_loss(cos: torch.Tensor, labels: torch.Tensor, margin: float = 0.9, scale: float = 20.0) -> torch.Tensor:
    """AM-softmax (Wang et al. 2018) on cosines ``(N, classes)``: cross-entropy of ``scale * cos`` with
    ``margin`` taken off the true class's (NII's defaults: 0.9, 20)."""
    shifted = cos - margin * F.one_hot(labels, cos.shape[1]).to(cos.dtype)
    return F.cross_entropy(scale * shifted, labels)


def p2sgrad_loss(cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """P2SGrad (Zhang et al. 2019) as NII trains it: the mean squared error between the cosines ``(N, classes)``
    and the one-hot labels."""
    return F.mse_loss(cos, F.one_hot(labels, cos.shape[1]).to(cos.dtype))
