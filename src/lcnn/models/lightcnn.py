"""The official LightCNN face models (Wu et al., arXiv 1511.02683; github.com/AlfredXiangWu/LightCNN).

``lightcnn9``, ``lightcnn29``, ``lightcnn29v2`` (``light_cnn.py``) and ``lightcnn_v4`` (``light_cnn_v4.py``)
compute what the official networks compute, and their ``state_dict`` keys are the official ones, so the
released checkpoints (``LightCNN_9Layers_checkpoint.pth.tar``, ``LightCNN_29Layers_checkpoint.pth.tar``,
``LightCNN_29Layers_V2_checkpoint.pth.tar``, ``LightCNN-V4_checkpoint.pth.tar``) load with
:func:`lcnn.models.pretrained.load_lightcnn` (``lcnn.load_lightcnn``).

Inputs (what the released weights were trained on):

- ``lightcnn9``, ``lightcnn29``, ``lightcnn29v2``: ``(N, 1, 128, 128)`` grey faces in ``[0, 1]``
  (``ToTensor()`` of an 8-bit grey image), aligned as in the official README (ec_mc_y 48, ec_y 40).
- ``lightcnn_v4``: ``(N, 3, 128, 128)`` colour faces in ``[0, 1]`` with the channels in BGR order (an OpenCV
  ``imread`` divided by 255).

One difference from the official API: the official ``forward`` returns ``(logits, feature)``; here
``model(x)`` returns the logits and ``model.embed(x)`` the 256-d feature (with ``num_classes=0`` ``forward``
returns the feature). In training mode the official 9- and 29-layer networks hand back the feature *after*
the dropout that precedes the classifier; ``embed`` always returns it before dropout. The logits are the
official ones in both modes (dropout p=0.5 before ``fc2`` while training; none for V4).

:func:`lcnn.inference.optimize_for_inference` gives the fast inference path (channels-last memory, fused
pooling, Winograd 3x3 convolutions, ``torch.compile``, batch slices on single-threaded workers, bf16 or int8);
``benchmarks/bench_lightcnn.py`` measures it against the official way of running the models.
"""

from __future__ import annotations

import torch
from torch import nn

from lcnn.layers import MaxAvgPool2d, MFMConv2d, MFMGroup, MFMLinear, MFMResBlock
from lcnn.models.registry import register_model

__all__ = ["LightCNN9", "LightCNN29", "LightCNN29v2", "LightCNNv4"]

# Identities of the released classifiers (official README): 79077 for LightCNN-9/-29 (MS-Celeb-1M clean
# list), 80013 for LightCNN-29v2 (CASIA-WebFace + MS-Celeb-1M). The V4 release has no classifier.
_MS_CELEB_1M_CLEAN = 79077
_CASIA_MS_CELEB_1M = 80013

_FLAT = 8 * 8 * 128  # the official fc layers take the 128 x 8 x 8 map of a 128 x 128 input


class _LightCNN(nn.Module):
    """What the four official networks share: a convolutional trunk, a 256-d fc feature and an optional
    classifier ``fc2`` (applied after dropout while training)."""

    embedding_dim = 256
    in_chans = 1

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """One input image: ``(C, 128, 128)``."""
        return (self.in_chans, 128, 128)

    def __init__(self, num_classes: int, dropout: float) -> None:
        super().__init__()
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0 (0 gives an embedder), got {num_classes}")
        self.num_classes = num_classes
        self.dropout = nn.Dropout(dropout)
        self.fc2: nn.Linear | None = None  # set last by each network, as in the official module order

    def _classifier(self, bias: bool) -> nn.Linear | None:
        return nn.Linear(self.embedding_dim, self.num_classes, bias=bias) if self.num_classes else None

    def trunk(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"{type(self).__name__} expects (N, {self.in_chans}, 128, 128) images, got shape {tuple(x.shape)}"
            )

    def _flatten(self, x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        if x.shape[1:].numel() != _FLAT:
            raise ValueError(
                f"{type(self).__name__} expects 128x128 inputs (its fc takes a 128x8x8 map), got shape {shape}"
            )
        return torch.flatten(x, 1)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened ``(N, 8192)`` map -> the 256-d feature."""
        raise NotImplementedError  # pragma: no cover - overridden

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, 128, 128)`` -> the 256-d face feature ``(N, 256)`` (before any dropout)."""
        self._check(x)
        return self.head(self._flatten(self.trunk(x), tuple(x.shape)))

    def classify(self, feature: torch.Tensor) -> torch.Tensor:
        """The 256-d feature -> logits: ``fc2(dropout(feature))``, dropout active only while training."""
        if self.fc2 is None:
            return feature
        return self.fc2(self.dropout(feature))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)``; with ``num_classes=0`` the feature ``(N, 256)``."""
        return self.classify(self.embed(x))


class LightCNN9(_LightCNN):
    """LightCNN-9 (official ``network_9layers``): five MFM conv stages with four ceil-mode 2x2 max-pools,
    an MFM fc to 256, dropout 0.5 (training only) and ``fc2``.

    Input ``(N, 1, 128, 128)`` grey in ``[0, 1]``. Output: logits ``(N, num_classes)``; ``embed``: ``(N, 256)``.
    """

    def __init__(self, num_classes: int = 79077, dropout: float = 0.5) -> None:
        super().__init__(num_classes, dropout)
        self.features = nn.Sequential(
            MFMConv2d(1, 48, 5, 1, 2),
            nn.MaxPool2d(2, 2, ceil_mode=True),
            MFMGroup(48, 96, 3, 1, 1),
            nn.MaxPool2d(2, 2, ceil_mode=True),
            MFMGroup(96, 192, 3, 1, 1),
            nn.MaxPool2d(2, 2, ceil_mode=True),
            MFMGroup(192, 128, 3, 1, 1),
            MFMGroup(128, 128, 3, 1, 1),
            nn.MaxPool2d(2, 2, ceil_mode=True),
        )
        self.fc1 = MFMLinear(_FLAT, 256)
        self.fc2 = self._classifier(bias=True)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc1(x)


def _res_stage(num_blocks: int, channels: int) -> nn.Sequential:
    return nn.Sequential(*(MFMResBlock(channels) for _ in range(num_blocks)))


class _LightCNN29Trunk(_LightCNN):
    """The 29-layer trunk: ``conv1``, residual stages ``block1..4`` of 1, 2, 3, 4 blocks, ``group1..4``."""

    def __init__(self, num_classes: int, dropout: float) -> None:
        super().__init__(num_classes, dropout)
        self.conv1 = MFMConv2d(1, 48, 5, 1, 2)
        self.block1 = _res_stage(1, 48)
        self.group1 = MFMGroup(48, 96, 3, 1, 1)
        self.block2 = _res_stage(2, 96)
        self.group2 = MFMGroup(96, 192, 3, 1, 1)
        self.block3 = _res_stage(3, 192)
        self.group3 = MFMGroup(192, 128, 3, 1, 1)
        self.block4 = _res_stage(4, 128)
        self.group4 = MFMGroup(128, 128, 3, 1, 1)

    def pool(self, index: int, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover - overridden

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(1, self.conv1(x))
        x = self.pool(2, self.group1(self.block1(x)))
        x = self.pool(3, self.group2(self.block2(x)))
        x = self.group4(self.block4(self.group3(self.block3(x))))
        return self.pool(4, x)


class LightCNN29(_LightCNN29Trunk):
    """LightCNN-29 (official ``network_29layers``): the 29-layer residual MFM trunk with ceil-mode 2x2
    max-pools, an MFM fc to 256, dropout 0.5 (training only) and ``fc2``.

    Input ``(N, 1, 128, 128)`` grey in ``[0, 1]``. Output: logits ``(N, num_classes)``; ``embed``: ``(N, 256)``.
    """

    def __init__(self, num_classes: int = 79077, dropout: float = 0.5) -> None:
        super().__init__(num_classes, dropout)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.pool2 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.pool4 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.fc = MFMLinear(_FLAT, 256)
        self.fc2 = self._classifier(bias=True)

    def pool(self, index: int, x: torch.Tensor) -> torch.Tensor:
        return (self.pool1, self.pool2, self.pool3, self.pool4)[index - 1](x)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class LightCNN29v2(_LightCNN29Trunk):
    """LightCNN-29 v2 (official ``network_29layers_v2``): the 29-layer trunk pooled with
    ``max_pool2d(x, 2) + avg_pool2d(x, 2)``, a plain (no MFM) fc to 256, dropout 0.5 (training only) and a
    bias-free ``fc2``.

    Input ``(N, 1, 128, 128)`` grey in ``[0, 1]``. Output: logits ``(N, num_classes)``; ``embed``: ``(N, 256)``.
    """

    def __init__(self, num_classes: int = 80013, dropout: float = 0.5) -> None:
        super().__init__(num_classes, dropout)
        self.fc = nn.Linear(_FLAT, 256)
        self.fc2 = self._classifier(bias=False)
        self.downsample = nn.ModuleList(MaxAvgPool2d() for _ in range(4))  # one per use: int8 calibrates each

    def pool(self, index: int, x: torch.Tensor) -> torch.Tensor:
        return self.downsample[index - 1](x)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class LightCNNv4(_LightCNN):
    """LightCNN-V4 (official ``light_cnn_v4.network``): a 3x3 MFM stem on colour input, residual stages of
    1, 2, 3, 4 blocks separated by 3x3 MFM convolutions (``conv2..5``), ``max + avg`` 2x2 pooling and a plain
    fc to 256. The official network has no classifier: ``num_classes=0`` (the default) reproduces it; any
    other value adds a fresh bias-free ``fc2`` (not part of the release) for fine-tuning.

    Input ``(N, 3, 128, 128)`` BGR in ``[0, 1]``. Output: ``(N, 256)`` (or logits with a classifier).
    """

    in_chans = 3

    def __init__(self, num_classes: int = 0, dropout: float = 0.0) -> None:
        super().__init__(num_classes, dropout)
        self.conv1 = MFMConv2d(3, 48, 3, 1, 1)
        self.block1 = _res_stage(1, 48)
        self.conv2 = MFMConv2d(48, 96, 3, 1, 1)
        self.block2 = _res_stage(2, 96)
        self.conv3 = MFMConv2d(96, 192, 3, 1, 1)
        self.block3 = _res_stage(3, 192)
        self.conv4 = MFMConv2d(192, 128, 3, 1, 1)
        self.block4 = _res_stage(4, 128)
        self.conv5 = MFMConv2d(128, 128, 3, 1, 1)
        self.fc = nn.Linear(_FLAT, 256)
        nn.init.normal_(self.fc.weight, std=0.001)  # as official
        self.fc2 = self._classifier(bias=False)
        self.downsample = nn.ModuleList(MaxAvgPool2d() for _ in range(4))  # one per use: int8 calibrates each

    def pool(self, index: int, x: torch.Tensor) -> torch.Tensor:
        return self.downsample[index - 1](x)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(1, self.conv1(x))
        x = self.pool(2, self.conv2(self.block1(x)))
        x = self.pool(3, self.conv3(self.block2(x)))
        x = self.conv5(self.block4(self.conv4(self.block3(x))))
        return self.pool(4, x)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


_FACE = {"family": "lightcnn", "tasks": ("face",)}


@register_model(input_shape=(1, 128, 128), released_classes=_MS_CELEB_1M_CLEAN, **_FACE)
def lightcnn9(num_classes: int = _MS_CELEB_1M_CLEAN, dropout: float = 0.5) -> LightCNN9:
    """LightCNN-9; input ``(N, 1, 128, 128)`` grey in ``[0, 1]``; 79077 classes as released."""
    return LightCNN9(num_classes, dropout)


@register_model(input_shape=(1, 128, 128), released_classes=_MS_CELEB_1M_CLEAN, **_FACE)
def lightcnn29(num_classes: int = _MS_CELEB_1M_CLEAN, dropout: float = 0.5) -> LightCNN29:
    """LightCNN-29; input ``(N, 1, 128, 128)`` grey in ``[0, 1]``; 79077 classes as released."""
    return LightCNN29(num_classes, dropout)


@register_model(input_shape=(1, 128, 128), released_classes=_CASIA_MS_CELEB_1M, **_FACE)
def lightcnn29v2(num_classes: int = _CASIA_MS_CELEB_1M, dropout: float = 0.5) -> LightCNN29v2:
    """LightCNN-29 v2; input ``(N, 1, 128, 128)`` grey in ``[0, 1]``; 80013 classes as released."""
    return LightCNN29v2(num_classes, dropout)


@register_model(input_shape=(3, 128, 128), released_classes=0, **_FACE)
def lightcnn_v4(num_classes: int = 0, dropout: float = 0.0) -> LightCNNv4:
    """LightCNN-V4; input ``(N, 3, 128, 128)`` BGR in ``[0, 1]``; no classifier as released."""
    return LightCNNv4(num_classes, dropout)
