"""Model inventory (parameters, MACs) and throughput measurements for ``lcnn models`` / ``lcnn benchmark``."""

from __future__ import annotations

import time

import torch
from torch import nn

from lcnn.models import count_macs, create_model, list_models


def input_shape_of(model: nn.Module) -> tuple[int, ...]:
    """The shape of one input example (without the batch dimension) that ``model`` is built for."""
    shape = getattr(model, "input_shape", None)
    if shape is None:
        raise ValueError(f"{type(model).__name__} does not declare an input_shape")
    return tuple(shape)


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


def _images_per_second(step, batch_size: int, steps: int) -> float:
    step()  # warm-up: oneDNN picks and caches its kernels on the first calls
    step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return batch_size * steps / (time.perf_counter() - started)


def measure(model: nn.Module, shape: tuple[int, ...], batch_size: int, steps: int, fast: bool) -> dict[str, float]:
    """Training (forward, backward, Adam step) and inference throughput of ``model`` on random inputs,
    eager fp32 in PyTorch's default layout, or with the fast defaults of :mod:`lcnn.speed`."""
    from lcnn.speed import prepare_input, prepare_model

    x = torch.rand(batch_size, *shape)
    if fast:
        model, x = prepare_model(model), prepare_input(x)
    num_classes = getattr(model, "num_classes", 0) or 2
    y = torch.randint(0, num_classes, (batch_size,))
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)

    def train_step() -> None:
        out = model(x)
        loss = nn.functional.cross_entropy(out, y) if out.shape[-1] == num_classes else out.float().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def infer_step() -> None:
        with torch.inference_mode():
            model(x)

    model.train()
    train = _images_per_second(train_step, batch_size, steps)
    model.eval()
    infer = _images_per_second(infer_step, batch_size, steps)
    return {"train": train, "infer": infer}


def throughput_table(name: str, input_shape: list[int] | None, batch_size: int, steps: int) -> str:
    """Throughput of model ``name``: eager fp32 NCHW against the fast defaults, in one table."""
    kwargs = {"input_shape": tuple(input_shape)} if input_shape else {}
    lines = [f"{name}, batch {batch_size}, {torch.get_num_threads()} threads",
             f"{'config':<22}{'train /s':>12}{'infer /s':>12}"]
    results = {}
    for label, fast in (("eager fp32 NCHW", False), ("fast defaults", True)):
        torch.manual_seed(0)
        model = create_model(name, num_classes=10, **kwargs)
        shape = input_shape_of(model)
        results[label] = measure(model, shape, batch_size, steps, fast)
        lines.append(f"{label:<22}{results[label]['train']:>12.1f}{results[label]['infer']:>12.1f}")
    base, fast = results["eager fp32 NCHW"], results["fast defaults"]
    lines.append(f"{'speed-up':<22}{fast['train'] / base['train']:>11.2f}x{fast['infer'] / base['infer']:>11.2f}x")
    return "\n".join(lines)
