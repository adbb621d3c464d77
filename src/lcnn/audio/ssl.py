"""Self-supervised speech front-ends (wav2vec 2.0, HuBERT, WavLM, XLS-R) through Hugging Face ``transformers``,
in front of an LCNN / LCNN-LSTM back-end: a learnable weighted sum of the model's hidden layers (the embedding
output and every transformer layer), projected to the back-end's features. Frozen by default
(``finetune=False``: the SSL weights stay as loaded and its dropout off), or fine-tuned with the back-end.

The optional extra ``ssl`` (``pip install 'lcnn[ssl]'``). A model is a name on the Hugging Face hub (e.g.
``facebook/wav2vec2-xls-r-300m``, the usual choice for spoofing) or a local folder written by
``save_pretrained``; offline, only the latter loads.

The data side of an SSL front-end is the waveform itself (:class:`RawWaveform`: one "feature" per sample),
which the spoof module hands to :class:`SSLFrontend`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lcnn.errors import UserError

__all__ = ["RawWaveform", "SSLFrontend"]


class RawWaveform(nn.Module):
    """The waveform as the data pipeline's output for an SSL front-end: ``(batch, samples)`` ->
    ``(batch, samples, 1)``, one frame per sample, zero past ``lengths``."""

    n_features = 1

    def num_frames(self, num_samples: int | Tensor) -> int | Tensor:
        return num_samples

    def forward(self, waveform: Tensor, lengths: Tensor | None = None) -> Tensor:
        x = waveform.float()
        if lengths is not None:
            x = x * (torch.arange(x.shape[-1], device=x.device) < lengths[:, None]).to(x.dtype)
        return x.unsqueeze(-1)


class SSLFrontend(nn.Module):
    """A pretrained self-supervised speech model, its hidden layers mixed by learnt weights, projected.

    Args:
        name_or_path: a hub name or a ``save_pretrained`` folder (any ``AutoModel`` speech encoder).
        finetune: train the SSL model's weights too (else they are frozen and it runs in eval mode).
        out_features: the back-end's features per frame.

    Shapes: ``wave (N, samples)`` (+ ``lengths (N,)``) -> ``(features (N, frames, out_features), frames (N,))``.
    """

    def __init__(self, name_or_path: str, finetune: bool = False, out_features: int = 128) -> None:
        super().__init__()
        try:
            from transformers import AutoModel
        except ImportError:
            raise UserError("SSL front-ends need Hugging Face transformers: pip install 'lcnn[ssl]'") from None
        try:
            self.ssl = AutoModel.from_pretrained(name_or_path)
        except (OSError, ValueError) as err:
            raise UserError(f"cannot load the SSL model {name_or_path!r} ({str(err).splitlines()[0]}); without a "
                            "connection to the model hub give a local folder written by save_pretrained") from None
        config = self.ssl.config
        if not hasattr(self.ssl, "_get_feat_extract_output_lengths"):
            raise UserError(f"{name_or_path}: a {type(self.ssl).__name__}, not a speech encoder (wav2vec 2.0, "
                            "HuBERT, WavLM, XLS-R)")  # fmt: skip
        self.finetune = finetune
        self.out_features = out_features
        # Layer-normalised encoders (large, XLS-R) expect an attention mask; group-normalised ones (base) are
        # trained on zero padding and must not get one (the transformers documentation's advice).
        self.uses_mask = getattr(config, "feat_extract_norm", "layer") == "layer"
        self.layer_weights = nn.Parameter(torch.zeros(config.num_hidden_layers + 1))
        self.project = nn.Linear(config.hidden_size, out_features)
        if not finetune:
            self.ssl.requires_grad_(False)

    def train(self, mode: bool = True) -> SSLFrontend:
        super().train(mode)
        if not self.finetune:
            self.ssl.eval()  # frozen: no dropout or layer drop in its forward
        return self

    def forward(self, wave: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        full = torch.full((wave.shape[0],), wave.shape[1], dtype=torch.long, device=wave.device)
        lengths = full if lengths is None else lengths.to(wave.device)
        mask = None
        if self.uses_mask:
            mask = (torch.arange(wave.shape[1], device=wave.device) < lengths[:, None]).long()
        with torch.set_grad_enabled(self.finetune and torch.is_grad_enabled()):
            hidden = self.ssl(wave, attention_mask=mask, output_hidden_states=True).hidden_states
        weights = self.layer_weights.softmax(0)
        mixed = (weights[:, None, None, None] * torch.stack(hidden, 0)).sum(0)
        frames = self.ssl._get_feat_extract_output_lengths(lengths).clamp(1, mixed.shape[1])
        return self.project(mixed), frames
