"""Multiply-accumulates of a model's forward pass, counted on its own layers (``lcnn models``, the probe's
batch size)."""

from __future__ import annotations

import torch
from torch import nn


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass on ``example`` (convolutions, linear and LSTM layers)."""
    total = 0

    def conv(module: nn.Conv2d, inputs, output) -> None:
        nonlocal total
        kernel = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        total += output.numel() * kernel

    def linear(module: nn.Linear, inputs, output) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    def lstm(module: nn.LSTM, inputs, output) -> None:
        nonlocal total
        steps = output[0].numel() // (module.hidden_size * (2 if module.bidirectional else 1))
        per_layer = 4 * module.hidden_size * (module.input_size + module.hidden_size)
        deeper = 4 * module.hidden_size * (module.hidden_size * (2 if module.bidirectional else 1) + module.hidden_size)
        directions = 2 if module.bidirectional else 1
        total += steps * directions * (per_layer + deeper * (module.num_layers - 1))

    hooks = {nn.Conv2d: conv, nn.Linear: linear, nn.LSTM: lstm}
    handles = [m.register_forward_hook(hooks[type(m)]) for m in model.modules() if type(m) in hooks]
    try:
        with torch.inference_mode():
            model.eval()(example)
    finally:
        for handle in handles:
            handle.remove()
    return total // len(example)
