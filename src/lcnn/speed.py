"""Speed defaults: what the hardware supports and which settings make the models fastest.

Measured with ``benchmarks/bench_classify.py`` (the article's LCNN, batch 256, 2 threads, on an idle 2-core
Xeon with AVX-512 and AVX512_BF16 but no AMX; table in ``benchmarks/RESULTS-classify.md``):

- channels-last memory (:func:`prepare_model`, :func:`prepare_input`): oneDNN convolutions run in NHWC
  without reorders; 2.5x the NCHW inference throughput (3,033 -> 7,664 img/s), +11 % training.
- :func:`tune_cpu_allocator` with the MFM's lean backward (:func:`lcnn.layers.max_feature_map`) together:
  2.2x the channels-last training throughput (938 -> 2,050 img/s). ``torch.maximum``'s autograd formula was
  half of the CPU training step, and glibc re-mapped and faulted in each step's activations.
- bf16 autocast: on this Xeon (AVX512_BF16 alone) oneDNN's bf16 convolutions were no faster than fp32 and
  the casts cost extra, while on an AMD EPYC with the same flags bf16 trains 1.9x faster (issue 17). So on
  CPUs ``--precision auto`` is measured per machine (:mod:`lcnn.probe`); which precision runs where is
  :mod:`lcnn.precision`'s to say.
- ``torch.inference_mode`` for inference.
- ``torch.compile`` is not a default: on this CPU it took 1-2 minutes to compile under load, was slower than
  eager for fp32 training and no faster for inference.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = [
    "cpu_cores",
    "cpu_has_amx",
    "cpu_supports_bf16",
    "cuda_supports_bf16",
    "intra_op_threads",
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


def cuda_supports_bf16() -> bool:
    """Whether there is a CUDA device and torch supports bf16 on it (``torch.cuda.is_bf16_supported``)."""
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


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


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@contextmanager
def intra_op_threads(count: int) -> Iterator[int]:
    """torch's intra-op (OpenMP) threads set to ``count`` inside the block, restored after; yields the count in
    force. ``$OMP_NUM_THREADS``, where set, is the user's choice and wins.

    Why: a model's many small operators (one utterance at a time, an LSTM's steps) wait at an OpenMP barrier
    after each, for every thread; a thread that shares its core with a DataLoader worker or another job
    arrives late at each one. Threads that each own a core keep the model at its speed.
    """
    before = torch.get_num_threads()
    if not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(max(1, count))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
