"""Speed defaults: what the hardware supports and which settings make the models fastest.

Measured with ``benchmarks/bench_classify.py`` (the article's LCNN, batch 256, 2 threads, on an idle 2-core
Xeon with AVX-512 and AVX512_BF16 but no AMX; table in ``benchmarks/RESULTS-classify.md``):

- channels-last memory (:func:`prepare_model`, :func:`prepare_input`): oneDNN convolutions run in NHWC
  without reorders; 2.5x the NCHW inference throughput (3,033 -> 7,664 img/s), +11 % training.
- :func:`max_feature_map_2to1` and :func:`tune_cpu_allocator` together: 2.2x the channels-last training
  throughput (938 -> 2,050 img/s). ``torch.maximum``'s autograd formula was half of the CPU training step,
  and glibc re-mapped and faulted in each step's activations; inference is unchanged.
- bf16 autocast is *supported* by any CPU with AVX512_BF16, but only *fast* with AMX tiles (or a GPU with
  bf16): on AVX512_BF16 alone oneDNN's bf16 convolutions are no faster than fp32 and the casts cost extra,
  so :func:`default_precision` picks ``"bf16-mixed"`` only where it pays (AMX CPUs, bf16 GPUs).
- ``torch.inference_mode`` for inference.
- ``torch.compile`` is not a default: on this CPU it took 1-2 minutes to compile under load, was slower than
  eager for fp32 training and no faster for inference.
"""

from __future__ import annotations

import ctypes
import platform
import sys

import torch
from torch import nn

__all__ = [
    "cpu_has_amx",
    "cpu_supports_bf16",
    "default_precision",
    "max_feature_map_2to1",
    "prepare_input",
    "prepare_model",
    "tune_cpu_allocator",
    "uses_channels_last",
]


def _cpu_flag(name: str) -> bool:
    """``torch.cpu._is_<name>_supported()`` (private helpers, present in torch >= 2.3); False if absent."""
    check = getattr(torch.cpu, f"_is_{name}_supported", None)
    try:
        return bool(check()) if check is not None else False
    except Exception:  # noqa: BLE001 - a probe must never break the caller
        return False


def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512_BF16 or AMX), so bf16 autocast runs through oneDNN
    bf16 kernels instead of an emulation. Support is not speed: see :func:`cpu_has_amx`."""
    if not torch.backends.mkldnn.is_available():
        return False
    native = _cpu_flag("avx512_bf16") or _cpu_flag("amx_tile")
    mkldnn_check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    if mkldnn_check is not None:
        try:
            return native and bool(mkldnn_check())
        except Exception:  # noqa: BLE001
            return native
    return native


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles (Sapphire Rapids and later), where bf16 matmuls and convolutions run
    several times faster than fp32."""
    return _cpu_flag("amx_tile")


def default_precision(device: str | torch.device = "cpu") -> str:
    """The Lightning ``precision`` that trains fastest on ``device`` without hurting accuracy:
    ``"bf16-mixed"`` on CUDA devices with bf16 and on AMX CPUs, else ``"32-true"``."""
    kind = torch.device(device).type
    if kind == "cuda":
        return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"
    if kind == "cpu":
        return "bf16-mixed" if cpu_supports_bf16() and cpu_has_amx() else "32-true"
    return "32-true"


def uses_channels_last(model: nn.Module) -> bool:
    """Whether ``model`` has 2-d convolutions, the layers channels-last memory speeds up."""
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def prepare_model(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """Put ``model`` in its fast memory layout (in place; returns it): channels-last for convolutional
    models. Inputs must then be passed through :func:`prepare_input` (or be channels-last already)."""
    if channels_last and uses_channels_last(model):
        model.to(memory_format=torch.channels_last)
    return model


def prepare_input(x: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    """A 4-d batch ``(N, C, H, W)`` in channels-last memory (same shape; no copy when it already is)."""
    if channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


class _MaxFeatureMap2to1(torch.autograd.Function):
    """``max(a, b)`` of the two channel halves with a lean backward: the forward keeps a mask of where ``a``
    won, and the backward writes ``grad * mask`` and ``grad - grad * mask`` straight into the two halves of
    the input gradient. ``torch.maximum``'s own backward (which splits ties 0.5/0.5) runs a dozen full-size
    passes (eq, where, masked_fill, gt, lt, div, cat) and was half the training step of the article's LCNN
    on CPU.

    On CPU the mask is kept in the input's dtype: writing a bool mask and multiplying by one each cost twice
    a float one there (the bool values are converted element by element), which made the MFM 28 % of the
    LCNN's training step. GPUs convert for free, so there the mask stays 1-byte bool and saves memory."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, dim: int) -> torch.Tensor:
        a, b = x.chunk(2, dim)
        if x.device.type == "cpu":
            mask = torch.ge(a, b, out=torch.empty_like(a))
        else:
            mask = torch.ge(a, b)
        ctx.save_for_backward(mask)
        ctx.dim = dim
        ctx.shape = x.shape
        ctx.channels_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(
            memory_format=torch.channels_last
        )
        return torch.maximum(a, b)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (mask,) = ctx.saved_tensors
        layout = torch.channels_last if ctx.channels_last else torch.contiguous_format
        grad_x = torch.empty(ctx.shape, dtype=grad.dtype, device=grad.device, memory_format=layout)
        grad_a, grad_b = grad_x.chunk(2, ctx.dim)
        torch.mul(grad, mask, out=grad_a)
        torch.sub(grad, grad_a, out=grad_b)
        return grad_x, None


def max_feature_map_2to1(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Max-Feature-Map 2/1: ``max(x[:C/2], x[C/2:])`` along ``dim``, the same values as
    ``torch.maximum(*x.chunk(2, dim))`` with a backward about 3x faster on CPU (the whole gradient goes to
    the first half on an exact tie, where ``torch.maximum`` splits it; both are valid subgradients).

    The fast path is taken only when a gradient is needed; inference, TorchScript and tracing get plain
    ``torch.maximum``. Meant for ``lcnn.layers.MaxFeatureMap`` (``kind="2/1"``)."""
    if not torch.jit.is_scripting() and torch.is_grad_enabled() and x.requires_grad and not torch.jit.is_tracing():
        return _MaxFeatureMap2to1.apply(x, dim)
    a, b = x.chunk(2, dim)
    return torch.maximum(a, b)


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc <malloc.h> mallopt parameters
_allocator_tuned = False


def tune_cpu_allocator(trim_threshold: int = 1 << 30) -> bool:
    """Stop glibc malloc from handing the large, short-lived tensors of each step back to the kernel.

    By default glibc serves big blocks with ``mmap`` and trims the heap as soon as its top is free, so every
    training step maps, faults in and unmaps its activations again: 1.5 million page faults and a quarter
    of the CPU time in the kernel for the article's LCNN at batch 256. With ``mmap`` off for malloc
    (``M_MMAP_MAX=0``) and up to ``trim_threshold`` bytes of free heap kept (``M_TRIM_THRESHOLD``) the
    memory is reused instead (on a busy 2-core machine about +25 % training throughput). The process then
    keeps its peak memory until it exits. Process-wide, idempotent; call it once at the start of a CPU run.
    (jemalloc or tcmalloc through ``LD_PRELOAD`` do the same job.)

    Returns True when applied, False where the C library is not glibc (macOS, Windows, musl).
    """
    global _allocator_tuned
    if _allocator_tuned:
        return True
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)) == 1
    except (OSError, AttributeError):
        return False
    _allocator_tuned = ok
    return ok
