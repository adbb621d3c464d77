"""The other two back-ends of NII's comparative study of LCNN countermeasures (Wang & Yamagishi, Interspeech
2021, arXiv 2103.11326), on the trunk of :mod:`lcnn.models.lcnn_lstm` (whose ``lcnn_lstm`` is the third,
``lstmsum``):

- ``lcnn_attention``: self-weighted (attention) pooling of the trunk's steps, their weighted sum and standard
  deviation, then the output layer;
- ``lcnn_fixed``: the utterance trimmed or tiled to 750 frames, the trunk, flattened, then
  ``Linear -> MaxFeatureMap -> Linear``.

Where the official inference is random, these are deterministic: attention pooling adds no noise to the
weighted steps (the official adds ``1e-5 * randn`` before the standard deviation, in eval too: its
expectation is none), and ``lcnn_fixed`` scores the first 750 frames of a longer utterance (the official
draws the window's start at random in eval too). Training draws the window at random, as the official does.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lcnn.layers import MFMLinear
from lcnn.models.lcnn_lstm import LCNNLSTM, POOLING, input_layer, lcnn_trunk, one_by_one, run_trunk
from lcnn.models.registry import register_model


class SelfWeightedPooling(nn.Module):
    """Attention pooling over the valid steps of ``(N, T, D)``: ``a = softmax_t(tanh(x . weight))``, then
    ``[sum_t a x, std_t(a x)]`` ``(N, 2D)`` (the unbiased standard deviation; 0 for a single step, where the
    official's is NaN)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(1, dim))
        nn.init.kaiming_uniform_(self.weight)

    def forward(self, h: Tensor, valid: Tensor | None = None) -> Tensor:
        if valid is None:
            return self.pool(h)
        return torch.cat([self.pool(h[i : i + 1, : int(n)]) for i, n in enumerate(valid.tolist())])

    def pool(self, h: Tensor) -> Tensor:
        weighted = h * torch.softmax(torch.tanh(h @ self.weight.T), dim=1)   # (N, T, D) * (N, T, 1)
        # one step: 0 (the unbiased deviation would be NaN, and its gradient too)
        std = weighted.std(1) if h.shape[1] > 1 else torch.zeros_like(weighted[:, 0])
        return torch.cat([weighted.sum(1), std], 1)


class LCNNAttention(LCNNLSTM):
    """LCNN trunk + attention pooling + output layer (NII's ``attention`` back-end).

    Shapes: ``x (N, 1, T, F)``, optional ``lengths (N,)`` -> ``(N, num_classes)``; ``embed``: the pooled
    ``(N, 2 * 32 * (F // 16))`` (192-d for 60 features). ``filterbank`` as :class:`LCNNLSTM`.
    """

    def __init__(self, n_features: int = 60, num_classes: int = 2, dropout: float = 0.7, filterbank: int = 0) -> None:
        nn.Module.__init__(self)
        self.filterbank, trunk_features = input_layer(n_features, filterbank)
        self.n_features, self.num_classes = n_features, num_classes
        self.features = lcnn_trunk(dropout)
        self.attention = SelfWeightedPooling(32 * (trunk_features // POOLING))
        self.embedding_dim = 2 * 32 * (trunk_features // POOLING)
        self.classifier = nn.Linear(self.embedding_dim, num_classes) if num_classes else None

    def embed(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if lengths is not None and not self.training:
            return one_by_one(self.embed, x, lengths)
        return self.attention(*run_trunk(self.features, self.check(x), lengths))


class LCNNFixed(LCNNLSTM):
    """The utterance trimmed or tiled to ``frames`` frames + LCNN trunk + ``Linear -> MFM -> Linear`` (NII's
    ``fixed`` back-end, their trim-pad).

    An utterance of ``T`` front-end frames counts ``T - 1`` (the official counts ``samples // hop``, one fewer
    than the centred STFT gives). Longer than ``frames``: a window of ``frames`` from the start (in training:
    from a random start); shorter: its frames repeated until ``frames``. Shapes: ``x (N, 1, T, F)``, optional
    ``lengths (N,)`` -> ``(N, num_classes)``; ``embed``: the MFM output ``(N, hidden // 2)``.
    """

    def __init__(self, n_features: int = 60, num_classes: int = 2, dropout: float = 0.7, frames: int = 750,
                 hidden: int = 160, filterbank: int = 0) -> None:  # fmt: skip
        nn.Module.__init__(self)
        self.filterbank, trunk_features = input_layer(n_features, filterbank)
        if frames < POOLING or hidden < 2 or hidden % 2:
            raise ValueError(f"need frames >= {POOLING} and an even hidden size, got {frames}, {hidden}")
        self.n_features, self.num_classes, self.frames = n_features, num_classes, frames
        self.features = lcnn_trunk(dropout)
        self.hidden = MFMLinear(32 * (frames // POOLING) * (trunk_features // POOLING), hidden // 2)
        self.embedding_dim = hidden // 2
        self.classifier = nn.Linear(self.embedding_dim, num_classes) if num_classes else None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (1, self.frames + 1, self.n_features)

    def trim_or_tile(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        """``(N, 1, T, F)`` -> ``(N, 1, frames, F)``: each item's window (see the class)."""
        t = x.shape[2]
        n = (torch.full((x.shape[0],), t, device=x.device) if lengths is None else lengths.to(x.device))
        n = (n - 1).clamp(1, t)
        start = torch.zeros_like(n)
        if self.training:
            start = (torch.rand(n.shape, device=x.device) * (n - self.frames).clamp(min=0)).floor().long()
        step = torch.arange(self.frames, device=x.device)[None, :]
        index = torch.where(n[:, None] > self.frames, start[:, None] + step, step % n[:, None])
        return x.gather(2, index[:, None, :, None].expand(-1, 1, -1, x.shape[3]))

    def embed(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if lengths is not None and not self.training:
            return one_by_one(self.embed, x, lengths)
        x = self.trim_or_tile(x, lengths)
        x = x if self.filterbank is None else self.filterbank(x)
        return self.hidden(self.features(x).flatten(1))      # (C, T, F) order, as the official


@register_model(family="lcnn", input_shape=(1, None, 60), tasks=("spoof",), variable_length=True,
                exports=())  # a trace would fix the one-step case of the pooling for every length
def lcnn_attention(
    num_classes: int = 2, input_shape: tuple[int, int | None, int] = (1, None, 60), dropout: float = 0.7,
    filterbank: int = 0,
) -> LCNNAttention:  # fmt: skip
    """NII's ``attention`` back-end; any number of frames >= 32 (two pooled steps)."""
    return LCNNAttention(int(input_shape[-1]), num_classes, dropout, filterbank)


@register_model(family="lcnn", input_shape=(1, None, 60), tasks=("spoof",), variable_length=True,
                exports=("torchscript",))  # ONNX refuses the per-item window's gather
def lcnn_fixed(
    num_classes: int = 2, input_shape: tuple[int, int | None, int] = (1, None, 60), dropout: float = 0.7,
    hidden: int = 160, filterbank: int = 0, window: int = 750,
) -> LCNNFixed:  # fmt: skip
    """NII's ``fixed`` back-end (trim / tile to ``window`` frames: 750 in the study); ``hidden`` 160 (sigmoid,
    P2SGrad) or 512 (AM- and OC-softmax, in the study)."""
    return LCNNFixed(int(input_shape[-1]), num_classes, dropout, window, hidden, filterbank)
