"""The official LightCNN face models (Wu et al., arXiv 1511.02683; github.com/AlfredXiangWu/LightCNN).

``lightcnn9``, ``lightcnn29``, ``lightcnn29v2`` (``light_cnn.py``) and ``lightcnn_v4`` (``light_cnn_v4.py``)
compute what the official networks compute, and their ``state_dict`` keys are the official ones, so the
released checkpoints (``LightCNN_9Layers_checkpoint.pth.tar``, ``LightCNN_29Layers_checkpoint.pth.tar``,
``LightCNN_29Layers_V2_checkpoint.pth.tar``, ``LightCNN-V4_checkpoint.pth.tar``) load with
:func:`load_lightcnn`.

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

:func:`optimize_for_inference` gives the fast inference path (channels-last memory, fused pooling, Winograd
3x3 convolutions, ``torch.compile``, batch slices on single-threaded workers, optional bf16);
``benchmarks/bench_lightcnn.py`` measures it against the official way of running the models.
"""

from __future__ import annotations

import contextlib
import copy
import re
import threading
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lcnn.errors import UserError
from lcnn.layers import MFMConv2d, MFMGroup, MFMLinear, MFMResBlock
from lcnn.models.registry import register_model

__all__ = [
    "CheckpointError",
    "LightCNN9",
    "LightCNN29",
    "LightCNN29v2",
    "LightCNNv4",
    "load_lightcnn",
    "optimize_for_inference",
    "InferenceModel",
    "WinogradConv2d",
]

# Identities of the released classifiers (official README): 79077 for LightCNN-9/-29 (MS-Celeb-1M clean
# list), 80013 for LightCNN-29v2 (CASIA-WebFace + MS-Celeb-1M). The V4 release has no classifier.
RELEASED_CLASSES = {"lightcnn9": 79077, "lightcnn29": 79077, "lightcnn29v2": 80013, "lightcnn_v4": 0}

_FLAT = 8 * 8 * 128  # the official fc layers take the 128 x 8 x 8 map of a 128 x 128 input


def _max_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """29v2 / V4 downsampling, as official: ``max_pool2d(x, 2) + avg_pool2d(x, 2)`` (a sum, floor mode)."""
    return F.max_pool2d(x, 2) + F.avg_pool2d(x, 2)


class MaxAvgPool2d(nn.Module):
    """``max_pool2d(x, 2) + avg_pool2d(x, 2)``: the pooling of LightCNN-29v2 and LightCNN-V4.

    Shape: ``(N, C, H, W)`` -> ``(N, C, H // 2, W // 2)``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _max_avg_pool(x)


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


@register_model
def lightcnn9(num_classes: int = RELEASED_CLASSES["lightcnn9"], dropout: float = 0.5) -> LightCNN9:
    """LightCNN-9; input ``(N, 1, 128, 128)`` grey in ``[0, 1]``; 79077 classes as released."""
    return LightCNN9(num_classes, dropout)


@register_model
def lightcnn29(num_classes: int = RELEASED_CLASSES["lightcnn29"], dropout: float = 0.5) -> LightCNN29:
    """LightCNN-29; input ``(N, 1, 128, 128)`` grey in ``[0, 1]``; 79077 classes as released."""
    return LightCNN29(num_classes, dropout)


@register_model
def lightcnn29v2(num_classes: int = RELEASED_CLASSES["lightcnn29v2"], dropout: float = 0.5) -> LightCNN29v2:
    """LightCNN-29 v2; input ``(N, 1, 128, 128)`` grey in ``[0, 1]``; 80013 classes as released."""
    return LightCNN29v2(num_classes, dropout)


@register_model
def lightcnn_v4(num_classes: int = RELEASED_CLASSES["lightcnn_v4"], dropout: float = 0.0) -> LightCNNv4:
    """LightCNN-V4; input ``(N, 3, 128, 128)`` BGR in ``[0, 1]``; no classifier as released."""
    return LightCNNv4(num_classes, dropout)


_ARCHS = {"lightcnn9": lightcnn9, "lightcnn29": lightcnn29, "lightcnn29v2": lightcnn29v2, "lightcnn_v4": lightcnn_v4}
# Names the official code and release files use.
_ALIASES = {
    "lightcnn-9": "lightcnn9", "lightcnn_9layers": "lightcnn9",
    "lightcnn-29": "lightcnn29", "lightcnn_29layers": "lightcnn29",
    "lightcnn-29v2": "lightcnn29v2", "lightcnn_29layers_v2": "lightcnn29v2", "lightcnn29_v2": "lightcnn29v2",
    "lightcnn-v4": "lightcnn_v4", "lightcnnv4": "lightcnn_v4", "lightcnn-4": "lightcnn_v4",
}  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Released checkpoints
# --------------------------------------------------------------------------------------------------


class CheckpointError(UserError):
    """A checkpoint that does not fit the requested architecture, or is no PyTorch checkpoint at all."""


def _arch_name(arch: str) -> str:
    key = arch.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _ARCHS:
        raise ValueError(f"unknown LightCNN architecture {arch!r}; choose one of: {', '.join(_ARCHS)}")
    return key


def _load_failure(path: Path, err: Exception) -> str:
    """One line saying why ``torch.load(path, weights_only=True)`` failed."""
    text = str(err)
    refused = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if refused:
        return (
            f"{path}: torch.load(weights_only=True) refuses to unpickle the {refused.group(1).rstrip('.')} object it "
            "holds; save the state_dict alone (or load it only if you trust the file)"
        )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Check the documentation")]
    detail = (lines[-1] if "Weights only load failed" in text else lines[0]) if lines else ""
    return f"{path}: not a PyTorch checkpoint ({type(err).__name__}{': ' + detail if detail else ''})"


def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of a checkpoint file: bare or under ``state_dict``, ``module.`` prefixes removed."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # the unpickler raises anything (IndexError, KeyError...) on foreign bytes
        raise CheckpointError(_load_failure(path, err)) from None
    state = obj.get("state_dict", obj) if isinstance(obj, Mapping) else obj
    if (
        not isinstance(state, Mapping)
        or not state
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    ):
        raise CheckpointError(
            f"{path}: holds no state dict (expected a mapping of parameter names to tensors, bare or under "
            f"'state_dict'; got {type(state).__name__})"
        )
    prefix = "module."
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in state.items()}


def _key_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    """Every state_dict key of ``arch`` without classifier, with its shape (built on the meta device)."""
    with torch.device("meta"):
        model = _ARCHS[arch](num_classes=0)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _guess_arch(keys: set[str]) -> str | None:
    for name in _ARCHS:
        if set(_key_shapes(name)) == {k for k in keys if not k.startswith("fc2.")}:
            return name
    return None


def _listing(label: str, items: list[str], limit: int = 40) -> str:
    shown = ", ".join(items[:limit])
    more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
    return f"\n  {label} ({len(items)}): {shown}{more}"


def load_lightcnn(path: str | Path, arch: str, num_classes: int | None = None) -> nn.Module:
    """Build ``arch`` and load a released LightCNN checkpoint (``.pth.tar``) into it, on the CPU, in eval mode.

    ``arch`` is a registered name (``lightcnn9``, ``lightcnn29``, ``lightcnn29v2``, ``lightcnn_v4``) or an
    official one (``LightCNN-9``, ``LightCNN_29Layers_v2``, ...). The file is read with
    ``torch.load(weights_only=True)``; its state dict may be bare or under ``state_dict``, with or without
    the ``module.`` prefix of ``DataParallel``.

    ``num_classes=None`` keeps the checkpoint's classifier ``fc2`` (its size read from the checkpoint; no
    classifier in the file gives an embedder); ``num_classes=N`` drops it and puts a fresh ``N``-way
    classifier in its place (for fine-tuning); ``num_classes=0`` gives an embedder whose ``forward`` returns
    the 256-d feature.

    Everything except the classifier must fit exactly: otherwise :class:`CheckpointError` lists the missing
    and unexpected keys and the shape mismatches, naming the file. A file that is not a PyTorch checkpoint
    also raises :class:`CheckpointError`.
    """
    path = Path(path)
    name = _arch_name(arch)
    state = _read_checkpoint(path)
    classifier = {k: v for k, v in state.items() if k.startswith("fc2.")}
    if num_classes is None:
        weight = classifier.get("fc2.weight")
        num_classes = int(weight.shape[0]) if weight is not None and weight.dim() == 2 else 0
        keep_classifier = bool(classifier)
    else:
        if num_classes < 0:
            raise ValueError(f"num_classes must be None or >= 0, got {num_classes}")
        keep_classifier = False
    model = _ARCHS[name](num_classes=num_classes)
    expected = model.state_dict()
    if not keep_classifier:
        state = {k: v for k, v in state.items() if not k.startswith("fc2.")}
        expected_fit = {k: v for k, v in expected.items() if not k.startswith("fc2.")}
    else:
        expected_fit = expected
    missing = sorted(k for k in expected_fit if k not in state)
    unexpected = sorted(k for k in state if k not in expected_fit)
    mismatched = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected_fit[k].shape)}"
        for k in expected_fit
        if k in state and state[k].shape != expected_fit[k].shape
    )
    if missing or unexpected or mismatched:
        guess = _guess_arch(set(state) | set(classifier))
        hint = f"\n  the keys are those of {guess!r}" if guess and guess != name else ""
        raise CheckpointError(
            f"{path}: does not fit {name}"
            + (_listing("missing keys", missing) if missing else "")
            + (_listing("unexpected keys", unexpected) if unexpected else "")
            + (_listing("shape mismatches", mismatched) if mismatched else "")
            + hint
        )
    if not keep_classifier:  # the fresh classifier keeps its own initialisation
        state = {**state, **{k: v for k, v in expected.items() if k.startswith("fc2.")}}
    model.load_state_dict(state, strict=True)
    return model.eval()


# --------------------------------------------------------------------------------------------------
# Fast inference
# --------------------------------------------------------------------------------------------------

_PRECISIONS = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
_BACKENDS = ("eager", "compile", "script")


def _fused_max_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """``max_pool2d(x, 2) + avg_pool2d(x, 2)`` from one read of the four 2x2 neighbours (even H and W).

    Works on any memory format; the result keeps the input's (channels-last stays channels-last).
    """
    a = x[:, :, 0::2, 0::2]
    b = x[:, :, 0::2, 1::2]
    c = x[:, :, 1::2, 0::2]
    d = x[:, :, 1::2, 1::2]
    return torch.maximum(torch.maximum(a, b), torch.maximum(c, d)) + (a + b + c + d) * 0.25


class FusedMaxAvgPool2d(nn.Module):
    """``MaxAvgPool2d`` for inference: one pass, no intermediate pooled maps (odd sizes fall back)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            return _max_avg_pool(x)
        return _fused_max_avg_pool(x)


# Winograd F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016), points
# 0, +-1, +-2, inf: Y = A^T [(G g G^T) * (B^T d B)] A for a 6x6 input tile d and a 3x3 kernel g.
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


class InferenceModel(nn.Module):
    """What :func:`optimize_for_inference` returns: ``forward`` and ``embed`` of the optimised copy, run
    under ``torch.inference_mode`` with channels-last inputs and optional autocast; outputs are fp32.

    With ``workers > 1`` a batch is cut into ``workers`` slices run concurrently, each by a thread doing
    single-threaded operators: no synchronisation inside the operators and each core keeps its own
    data in cache (on 2 cores this beats 2-thread operators by 1.2-1.6x for batches >= 8)."""

    def __init__(self, model: nn.Module, dtype: torch.dtype, channels_last: bool, backend: str, workers: int) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype
        self.channels_last = channels_last
        self.backend = backend
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._seen: set[tuple[str, tuple[int, ...]]] = set()  # (entry, shape) already run: compiled/traced
        self._traced: dict[tuple[str, tuple[int, ...]], torch.jit.ScriptModule] = {}
        self._compiled = {}
        if backend == "compile":
            options = {"freezing": True}  # weights become constants: prepacked for oneDNN, folded
            self._compiled = {
                "forward": torch.compile(model, dynamic=False, options=options),
                "embed": torch.compile(model.embed, dynamic=False, options=options),
            }

    def _autocast(self, x: torch.Tensor):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(x.device.type, dtype=self.dtype)

    def _call(self, entry: str, x: torch.Tensor) -> torch.Tensor:
        key = (entry, tuple(x.shape))
        with torch.inference_mode(), self._autocast(x):  # both thread-local: set in the worker
            if self.backend == "compile":
                fn = self._compiled[entry]
            elif self.backend == "script":
                fn = self._traced.get(key)
                if fn is None:
                    module = self.model if entry == "forward" else _EmbedOf(self.model)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # input checks become constants
                        fn = torch.jit.freeze(torch.jit.trace(module.eval(), x, check_trace=False))
                    self._traced[key] = fn
            else:
                fn = self.model if entry == "forward" else self.model.embed
            out = fn(x)
        self._seen.add(key)
        return out

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            threads = torch.get_num_threads()
            started = threading.Barrier(self.workers)

            def single_threaded() -> None:
                torch.set_num_threads(1)  # this thread's OpenMP/MKL setting
                started.wait()

            self._pool = ThreadPoolExecutor(self.workers, "lightcnn", initializer=single_threaded)
            for future in [self._pool.submit(int) for _ in range(self.workers)]:
                future.result()
            torch.set_num_threads(threads)  # the global default new threads start from, as it was
        return self._pool

    def _run(self, entry: str, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.workers < 2 or x.shape[0] < 2 * self.workers or x.device.type != "cpu":
            return self._call(entry, x).float()
        slices = x.chunk(self.workers)
        if all((entry, tuple(part.shape)) in self._seen for part in slices):
            outs = list(self._executor().map(lambda part: self._call(entry, part), slices))
        else:  # first time for these shapes: one at a time, so that each compiles (or traces) once
            outs = [self._call(entry, part) for part in slices]
        return torch.cat(outs).float()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, 128, 128)`` -> the 256-d feature, fp32."""
        return self._run("embed", x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (the feature for an embedder), fp32."""
        return self._run("forward", x)


class _EmbedOf(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.embed(x)


def optimize_for_inference(
    model: nn.Module,
    precision: str = "fp32",
    backend: str = "eager",
    *,
    channels_last: bool = True,
    fuse_pool: bool = True,
    winograd: bool | None = None,
    winograd_max_size: int = 16,
    inplace: bool = False,
    workers: int | None = None,
    calibration: torch.Tensor | None = None,
) -> InferenceModel:
    """A fast inference copy of a LightCNN model (the model passed in is left as it is).

    - ``precision``: ``"fp32"`` (default) or ``"bf16"`` autocast (outputs come back as fp32). bf16 pays on
      GPUs and on CPUs with AMX; on AVX512-BF16-only CPUs it is *slower* than fp32 (see the benchmark).
      ``"int8"``: :func:`lcnn.quantize.quantize_int8`, calibrated on ``calibration`` (a batch of real
      faces), eager on the CPU: the fastest on x86 CPUs with AVX512-VNNI; embeddings within ~2e-2
      relative (cosine > 0.999).
    - ``backend``: ``"eager"``; ``"compile"``: ``torch.compile`` with weight freezing, which fuses the MFM
      maxima, residual adds, pooling and Winograd transforms into few kernels (the fastest on CPU; the
      first call compiles, a minute or more, cached on disk afterwards; each new batch size compiles
      again, so keep it fixed); ``"script"``: TorchScript trace + freeze, once per input shape.
    - ``channels_last``: NHWC tensors (oneDNN's native layout on CPU, tensor cores' on GPU).
    - ``fuse_pool``: 29v2/V4's ``max_pool2d + avg_pool2d`` in one pass.
    - ``winograd``: 3x3 convolutions on maps up to ``winograd_max_size`` by Winograd F(4x4, 3x3)
      (:class:`WinogradConv2d`); default: on for fp32 on CPU.
    - ``workers``: run batches as this many slices in parallel threads of single-threaded operators
      (default on CPU: ``torch.get_num_threads()``; 1 gives plain multi-threaded operators).
    - ``inplace``: optimise ``model`` itself instead of a copy (saves the copy's memory; ``model`` is then
      for inference only).

    Returns an :class:`InferenceModel` with ``forward`` and ``embed`` under ``torch.inference_mode``.
    Embeddings match the model's to ~1e-6 relative in fp32 (cosine 1.0); bf16 to ~1e-2 (cosine > 0.999).
    """
    if precision == "int8":
        if calibration is None or backend != "eager":
            raise ValueError("precision='int8' needs calibration=a batch of real inputs, and backend='eager'")
        from lcnn.quantize import quantize_int8

        model, precision, winograd, fuse_pool, inplace = quantize_int8(model, calibration), "fp32", False, False, True
    try:
        dtype = _PRECISIONS[precision]
    except KeyError:
        raise ValueError(f"precision must be one of {sorted(_PRECISIONS)} or int8, got {precision!r}") from None
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    model = (model if inplace else copy.deepcopy(model)).eval()
    for param in model.parameters():
        param.requires_grad_(False)
    device = next(model.parameters()).device
    if winograd is None:
        winograd = dtype == torch.float32 and device.type == "cpu"
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if fuse_pool and isinstance(child, MaxAvgPool2d):
                setattr(parent, name, FusedMaxAvgPool2d())
            elif winograd and WinogradConv2d.supports(child):
                setattr(parent, name, WinogradConv2d(child, winograd_max_size))
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if workers is None:
        workers = torch.get_num_threads() if device.type == "cpu" else 1
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return InferenceModel(model, dtype, channels_last, backend, workers)
