"""LCNN-LSTM: the ASVspoof 2021 LFCC-LCNN baseline's classifier (Wang & Yamagishi, NII), for inputs of any
length, and the trunk it shares with the other back-ends of NII's LCNN study (:mod:`lcnn.models.lcnn_study`).

Layer for layer as the baseline: nine MFM convolutions with four 2x2 max-pools and BatchNorm without affine
parameters, dropout 0.7, then two bidirectional LSTM layers whose output is added to their input (a skip
connection), pooling over time (the mean; the sum in the study's angular-margin systems), and the output layer.
Pooled lengths are the official network's: each 2x2 pool floors, so an utterance of T frames gives T // 16
steps (a frame that does not fill a pooling window is dropped, as the baseline drops it).

One difference: the baseline averages over every frame of a zero-padded batch, so that an utterance's score
changes with the length of its batch mates. Here, given the lengths, in eval mode each utterance runs alone
on its own frames (as the official inference, one file per batch): its score is the same, to the bit, alone
or in any batch; convolutions of a larger batch round otherwise, by ~1e-6, which a two-step standard deviation
(attention pooling) turns into 1e-5. In training, the padded frames are set back to zero after every layer
of the CNN (as the convolutions' own zero padding of a lone utterance), left out of the LSTMs (packed
sequences) and out of the pooling; BatchNorm's batch statistics still include the padding (batches grouped
by length keep it small).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lcnn.layers import MFMConv2d
from lcnn.models.registry import register_model

POOLING = 16  # four 2x2 max-pools: frames and features shrink by 16
POOLINGS = ("mean", "sum")
_F32_EPS = torch.finfo(torch.float32).eps  # NII's floor inside log10, whatever the compute dtype


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, affine=False)


def _time_mask(lengths: Tensor, h: Tensor) -> Tensor:
    """``(N, 1, T, 1)`` of 1 on the first ``lengths[n]`` frames of ``h (N, C, T, F)``, 0 after."""
    keep = torch.arange(h.shape[2], device=h.device)[None, :] < lengths[:, None]
    return keep[:, None, :, None].to(h.dtype)


def step_mask(lengths: Tensor, steps: int, dtype: torch.dtype) -> Tensor:
    """``(N, steps)`` of 1 on each item's first ``lengths[n]`` steps, 0 after."""
    return (torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]).to(dtype)


def lcnn_trunk(dropout: float) -> nn.Sequential:
    """The LCNN of the 2021 baseline and of NII's study: ``(N, 1, T, F) -> (N, 32, T // 16, F // 16)``."""
    pool = nn.MaxPool2d(2, 2)
    return nn.Sequential(
        MFMConv2d(1, 32, 5, padding=2), pool,
        MFMConv2d(32, 32, 1, padding=0), _bn(32),
        MFMConv2d(32, 48, 3, padding=1), pool, _bn(48),
        MFMConv2d(48, 48, 1, padding=0), _bn(48),
        MFMConv2d(48, 64, 3, padding=1), pool,
        MFMConv2d(64, 64, 1, padding=0), _bn(64),
        MFMConv2d(64, 32, 3, padding=1), _bn(32),
        MFMConv2d(32, 32, 1, padding=0), _bn(32),
        MFMConv2d(32, 32, 3, padding=1), pool,
        nn.Dropout(dropout),
    )  # fmt: skip


def run_trunk(trunk: nn.Sequential, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """``(N, 1, T, F)`` -> ``(N, T // 16, 32 * (F // 16))`` steps and, with ``lengths``, each item's valid
    steps ``lengths // 16`` (at least 1). Every layer's output is zeroed past an item's valid frames, so that
    an item's steps do not depend on its batch mates."""
    if lengths is None:
        return trunk(x).permute(0, 2, 1, 3).flatten(2), None
    valid = lengths.to(x.device).clamp(1, x.shape[2])
    h = x * _time_mask(valid, x)
    for layer in trunk:
        h = layer(h)
        if isinstance(layer, nn.MaxPool2d):
            valid = valid // 2  # the pool floors: a frame left without a partner is dropped
        if not isinstance(layer, nn.Dropout):
            h = h * _time_mask(valid, h)
    return h.permute(0, 2, 1, 3).flatten(2), valid.clamp(min=1)


def one_by_one(embed, x: Tensor, lengths: Tensor) -> Tensor:
    """``embed`` (or ``forward``) of each item of ``x (N, 1, T, F)`` alone, on its first ``lengths[n]`` frames
    (zero-padded to 16 where fewer)."""
    frames = lengths.clamp(1, x.shape[2]).tolist()
    return torch.cat([embed(F.pad(x[i : i + 1, :, : int(n)], (0, 0, 0, max(0, POOLING - int(n)))).contiguous())
                      for i, n in enumerate(frames)])  # fmt: skip


class TrainableFilterbank(nn.Module):
    """The first layer of NII's ``spec2`` systems: a trainable filterbank on a power spectrum,
    ``log10((power @ weight) ** 2 + eps)`` (the square of the filterbank output, as theirs), ``weight
    (bins, filters)`` initialised to linear triangular filters over the whole band.

    Shape: ``(..., bins) -> (..., filters)``.
    """

    def __init__(self, bins: int = 257, filters: int = 60) -> None:
        super().__init__()
        f = torch.linspace(0, 1, bins)
        edges = torch.linspace(0, 1, filters + 2)
        a, b, c = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
        rising, falling = (f[:, None] - a) / (b - a), (c - f[:, None]) / (c - b)
        self.weight = nn.Parameter(torch.minimum(rising, falling).clamp(min=0))

    def forward(self, power: Tensor) -> Tensor:
        return torch.log10((power @ self.weight).square() + _F32_EPS)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]} -> {self.weight.shape[1]}"


def input_layer(n_features: int, filterbank: int) -> tuple[nn.Module | None, int]:
    """The optional trainable filterbank and the number of features the trunk then sees."""
    trunk_features = filterbank or n_features
    if trunk_features < POOLING:
        raise ValueError(f"the LCNN needs at least {POOLING} features per frame, got {trunk_features}")
    return (TrainableFilterbank(n_features, filterbank) if filterbank else None), trunk_features


class LCNNLSTM(nn.Module):
    """LCNN stack + 2 bidirectional LSTM layers (skip-connected) + masked pooling over time + output layer.

    Shapes: ``x (N, 1, T, F)`` (frames along H, features along W; ``T, F >= 16``) and optional
    ``lengths (N,)`` valid frames per item -> logits ``(N, num_classes)``; ``embed`` gives the pooled
    ``(N, 32 * (F // 16))`` embedding (96-d for 60 LFCCs). With ``num_classes=0`` ``forward`` returns the
    embedding. ``pooling``: ``mean`` (the 2021 baseline) or ``sum`` over the valid steps; ``filterbank``: a
    :class:`TrainableFilterbank` of that many filters first (NII's ``spec2``; ``F`` is then the power
    spectrum's bins).
    """

    def __init__(self, n_features: int = 60, num_classes: int = 2, dropout: float = 0.7, pooling: str = "mean",
                 filterbank: int = 0) -> None:  # fmt: skip
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.filterbank, trunk_features = input_layer(n_features, filterbank)
        self.n_features = n_features
        self.num_classes = num_classes
        self.pooling = pooling
        self.features = lcnn_trunk(dropout)
        self.embedding_dim = 32 * (trunk_features // POOLING)
        self.lstm = nn.LSTM(self.embedding_dim, self.embedding_dim // 2, num_layers=2, bidirectional=True,
                            batch_first=True)
        self.classifier = nn.Linear(self.embedding_dim, num_classes) if num_classes else None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """An example input: 750 frames (7.5 s at a 10 ms hop) of ``n_features``; any length works."""
        return (1, 750, self.n_features)

    def check(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[3] != self.n_features or x.shape[2] < POOLING:
            raise ValueError(f"{type(self).__name__} expects (N, 1, T>={POOLING}, {self.n_features}), "
                             f"got {tuple(x.shape)}")  # fmt: skip
        return x if self.filterbank is None else self.filterbank(x)

    def embed(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``(N, 1, T, F)`` (+ ``lengths (N,)``) -> the pooled valid time steps ``(N, embedding_dim)``."""
        if lengths is not None and not self.training:
            return one_by_one(self.embed, x, lengths)
        h, valid = run_trunk(self.features, self.check(x), lengths)   # (N, T // 16, 32 * F // 16)
        if valid is None:
            out, _ = self.lstm(h)
            return (out + h).mean(1) if self.pooling == "mean" else (out + h).sum(1)
        steps = h.shape[1]
        packed = pack_padded_sequence(h, valid.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=steps)
        total = ((out + h) * step_mask(valid, steps, h.dtype).unsqueeze(-1)).sum(1)
        return total / valid[:, None].to(h.dtype) if self.pooling == "mean" else total

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if lengths is not None and not self.training:  # the output layer too rounds by the batch's size
            return one_by_one(self.forward, x, lengths)
        feature = self.embed(x, lengths)
        return feature if self.classifier is None else self.classifier(feature)


@register_model(family="lcnn", input_shape=(1, None, 60), tasks=("spoof",), variable_length=True)
def lcnn_lstm(
    num_classes: int = 2, input_shape: tuple[int, int | None, int] = (1, None, 60), dropout: float = 0.7,
    pooling: str = "mean", filterbank: int = 0,
) -> LCNNLSTM:  # fmt: skip
    """The ASVspoof 2021 LFCC-LCNN baseline network, NII's ``lstmsum`` back-end; ``input_shape = (1, frames or
    None, n_features)``, only ``n_features`` matters (any number of frames >= 16)."""
    return LCNNLSTM(int(input_shape[-1]), num_classes, dropout, pooling, filterbank)
