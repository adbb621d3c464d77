"""LCNN-LSTM: the ASVspoof 2021 LFCC-LCNN baseline's classifier (Wang & Yamagishi, NII), for inputs of any
length.

Layer for layer as the baseline: nine MFM convolutions with four 2x2 max-pools and BatchNorm without affine
parameters, dropout 0.7, then two bidirectional LSTM layers whose output is added to their input (a skip
connection), the mean over time, and the output layer. One difference: the baseline averages over every
frame of a zero-padded batch, so that an utterance's score changes with the length of its batch mates.
Here, given the lengths, the padded frames are set back to zero after every layer of the CNN (as the
convolutions' own zero padding of a lone utterance), left out of the LSTMs (packed sequences) and out of
the mean: in eval mode a score is the same alone or in any batch, up to float rounding. (In training,
BatchNorm's batch statistics still include the padding; batches grouped by length keep it small.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lcnn.layers import MFMConv2d
from lcnn.models.registry import register_model

POOLING = 16  # four 2x2 max-pools: frames and features shrink by 16


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, affine=False)


def _time_mask(lengths: Tensor, h: Tensor) -> Tensor:
    """``(N, 1, T, 1)`` of 1 on the first ``lengths[n]`` frames of ``h (N, C, T, F)``, 0 after."""
    keep = torch.arange(h.shape[2], device=h.device)[None, :] < lengths[:, None]
    return keep[:, None, :, None].to(h.dtype)


class LCNNLSTM(nn.Module):
    """LCNN stack + 2 bidirectional LSTM layers (skip-connected) + masked mean over time + output layer.

    Shapes: ``x (N, 1, T, F)`` (frames along H, features along W; ``T, F >= 16``) and optional
    ``lengths (N,)`` valid frames per item -> logits ``(N, num_classes)``; ``embed`` gives the pooled
    ``(N, 32 * (F // 16))`` embedding (96-d for 60 LFCCs). With ``num_classes=0`` ``forward`` returns the
    embedding.
    """

    def __init__(self, n_features: int = 60, num_classes: int = 2, dropout: float = 0.7) -> None:
        super().__init__()
        if n_features < POOLING:
            raise ValueError(f"LCNN-LSTM needs at least {POOLING} features per frame, got {n_features}")
        self.n_features = n_features
        self.num_classes = num_classes
        pool = nn.MaxPool2d(2, 2)
        self.features = nn.Sequential(
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
        )
        self.embedding_dim = 32 * (n_features // POOLING)
        self.lstm = nn.LSTM(self.embedding_dim, self.embedding_dim // 2, num_layers=2, bidirectional=True,
                            batch_first=True)
        self.classifier = nn.Linear(self.embedding_dim, num_classes) if num_classes else None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """An example input: 750 frames (7.5 s at a 10 ms hop) of ``n_features``; any length works."""
        return (1, 750, self.n_features)

    def embed(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``(N, 1, T, F)`` (+ ``lengths (N,)``) -> the mean over valid time steps ``(N, embedding_dim)``."""
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[3] != self.n_features or x.shape[2] < POOLING:
            raise ValueError(f"LCNN-LSTM expects (N, 1, T>={POOLING}, {self.n_features}), got {tuple(x.shape)}")
        if lengths is None:
            h = self.features(x).permute(0, 2, 1, 3).flatten(2)   # (N, T/16, 32 * F/16)
            out, _ = self.lstm(h)
            return (out + h).mean(1)
        # Frames up to a multiple of 16, so that no valid frame falls off a pooling window; then every
        # layer's output is zeroed past each item's valid length (a pooling window that straddles the end
        # counts as valid: ceil). An item's result then does not depend on the padding of its batch.
        x = F.pad(x, (0, 0, 0, -x.shape[2] % POOLING))
        valid = lengths.to(x.device).clamp(1, x.shape[2])
        h = x * _time_mask(valid, x)
        for layer in self.features:                            # -> (N, 32, T/16, F/16)
            h = layer(h)
            if isinstance(layer, nn.MaxPool2d):
                valid = (valid + 1) // 2
            if not isinstance(layer, nn.Dropout):
                h = h * _time_mask(valid, h)
        h = h.permute(0, 2, 1, 3).flatten(2)                   # (N, T/16, 32 * F/16)
        steps = h.shape[1]
        packed = pack_padded_sequence(h, valid.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=steps)
        mask = (torch.arange(steps, device=h.device)[None, :] < valid[:, None]).to(h.dtype)
        return ((out + h) * mask.unsqueeze(-1)).sum(1) / valid[:, None].to(h.dtype)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        feature = self.embed(x, lengths)
        return feature if self.classifier is None else self.classifier(feature)


@register_model(family="lcnn", input_shape=(1, None, 60), tasks=("spoof",), variable_length=True)
def lcnn_lstm(
    num_classes: int = 2, input_shape: tuple[int, int | None, int] = (1, None, 60), dropout: float = 0.7
) -> LCNNLSTM:
    """The ASVspoof 2021 LFCC-LCNN baseline network; ``input_shape = (1, frames or None, n_features)``,
    only ``n_features`` matters (any number of frames >= 16)."""
    return LCNNLSTM(int(input_shape[-1]), num_classes, dropout)
