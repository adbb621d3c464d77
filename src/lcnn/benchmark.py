"""Model inventory (parameters, MACs) and throughput measurements for ``lcnn models`` / ``lcnn benchmark``, and
what says where figures were measured (:func:`machine_report`, :func:`probe_text`)."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lcnn.models import count_macs, create_model, list_models, model_info
from lcnn.precision import MARGIN, ORDER, choose, decide
from lcnn.probe import interleaved, machine_key, probe
from lcnn.speed import prepare_input, prepare_model


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


def matmul_peaks(threads: int | None = None, size: int = 2048) -> dict[str, float]:
    """GMAC/s of a large square matmul in fp32, bf16 and int8 (``torch._int_mm``, the rate int8 convolutions
    draw on) on ``threads`` (default: torch's): what this CPU computes at best; the fastest of 3 calls."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    operands = {"fp32": [torch.rand(size, size) for _ in range(2)],
                "bf16": [torch.rand(size, size, dtype=torch.bfloat16) for _ in range(2)],
                "int8": [torch.randint(-128, 128, (size, size), dtype=torch.int8) for _ in range(2)]}  # fmt: skip
    calls = {k: functools.partial(torch._int_mm if k == "int8" else torch.mm, *ab) for k, ab in operands.items()}
    try:
        for call in calls.values():
            call()  # warm-up
        return {k: size**3 / s[0] / 1e9 for k, s in interleaved(calls, 0.0, time.perf_counter).items()}
    finally:
        torch.set_num_threads(before)


def probe_text(result: dict[str, Any], tasks: Sequence[str] = ()) -> str:
    """The probe's table (examples/s, the ratio to fp32, and each candidate's median step over its fastest),
    its choice before the accuracy guard, and :func:`lcnn.precision.choose`'s for each of ``tasks``."""
    shape = "x".join(map(str, result["input_shape"]))
    lines = [f"{result['model']} {shape}, batch {result['batch']}, measured {result['measured']}",
             f"{'':<7}{'candidate':<12}{'ex/s':>10}{'vs fp32':>9}{'spread':>8}"]  # fmt: skip
    for part in ORDER:
        speeds = result["table"][part]
        for candidate in ORDER[part]:
            if candidate in speeds:
                ratio = speeds[candidate] / speeds[ORDER[part][0]]
                spread = result.get("spread", {}).get(candidate, math.nan)
                lines.append(f"{part:<7}{candidate:<12}{speeds[candidate]:>10,.0f}{ratio:>8.2f}x{spread:>7.2f}x")
            else:
                lines.append(f"{part:<7}{candidate:<12}{'-':>10}  left out: {result['skipped'].get(candidate, '?')}")
    fastest = {part: decide(result["table"][part], ORDER[part]) for part in ORDER}
    lines.append(f"fastest (margin {MARGIN:.2f}x): train {fastest['train']}, infer {fastest['infer']}")
    for task in tasks:
        choice = choose(task, result["model"], result["input_shape"], result=result)
        lines.append(f"chosen for {task}: train {choice['train']}, infer {choice['infer']} ({choice['note']})")
    return "\n".join(lines)


Shape = Sequence[int | None] | None


def machine_report(threads: int | None = None, peaks: dict[str, float] | None = None,
                   models: Sequence[tuple[str, Shape]] = (("lcnn", (1, 28, 28)),)) -> str:  # fmt: skip
    """A Markdown block saying where a benchmark ran, to print above its tables: CPU model, logical CPUs and
    torch threads, the flags that decide bf16 / int8 speed, torch, the matmul peaks on these threads
    (``peaks`` where already measured, else :func:`matmul_peaks`) and, for each ``(model, input shape)`` of
    ``models``, the precision probe's table and choice (measured now where not cached)."""
    key = machine_key()
    threads = threads or key["torch_threads"]
    peaks = peaks or matmul_peaks(threads)
    flags = ", ".join(f"{flag} {'yes' if on else 'no'}" for flag, on in key["flags"].items())
    lines = [
        f"**Machine:** {key['cpu']}, {key['logical_cpus']} logical CPUs, torch {key['torch']} on {threads} threads "
        f"(oneDNN {key['capability']}); flags: {flags}",
        f"- matmul peak on {threads} threads: {peaks['fp32']:.0f} GMAC/s fp32, {peaks['bf16']:.0f} bf16, "
        f"{peaks['int8']:.0f} int8",
    ]  # fmt: skip
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for name, shape in models:
            result = probe(name, shape)
            speeds = {part: ", ".join(f"{c} {v:,.0f}" for c, v in result["table"][part].items()) for part in ORDER}
            size = "x".join(map(str, result["input_shape"]))
            lines.append(f"- precision probe, {name} {size} (batch {result['batch']}, examples/s): "
                         f"train {speeds['train']}; infer {speeds['infer']}")  # fmt: skip
            for task in model_info(name).tasks:
                choice = choose(task, name, shape, result=result)
                lines.append(f"  - chosen for {task}: train {choice['train']}, infer {choice['infer']} "
                             f"({choice['note']})")  # fmt: skip
    finally:
        torch.set_num_threads(before)
    return "\n".join(lines)
