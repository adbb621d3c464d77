"""Model inventory (parameters, MACs) and throughput measurements for ``lcnn models`` / ``lcnn benchmark``."""

from __future__ import annotations

import torch
from torch import nn

from lcnn.models import create_model, list_models


def input_shape_of(model: nn.Module) -> tuple[int, ...]:
    """The shape of one input example (without the batch dimension) that ``model`` is built for."""
    shape = getattr(model, "input_shape", None)
    if shape is None:
        raise ValueError(f"{type(model).__name__} does not declare an input_shape")
    return tuple(shape)


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


def model_table(num_classes: int = 10) -> str:
    """Every registered architecture with its input, parameters and MACs per example."""
    lines = [f"{'model':<14}{'input':<16}{'parameters':>14}{'MACs':>16}"]
    for name in list_models():
        model = create_model(name, num_classes=num_classes)
        shape = input_shape_of(model)
        params = sum(p.numel() for p in model.parameters())
        macs = count_macs(model, torch.zeros(2, *shape))
        lines.append(f"{name:<14}{'x'.join(map(str, shape)):<16}{params:>14,}{macs:>16,}")
    lines.append(f"(classifier of {num_classes} classes; MACs per example: convolutions, linear and LSTM layers)")
    return "\n".join(lines)
