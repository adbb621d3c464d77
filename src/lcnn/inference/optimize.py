"""The fast inference path of the LightCNN models (and any MFM network): :func:`optimize_for_inference`."""

from __future__ import annotations

import contextlib
import copy
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn

from lcnn.inference.quantize import quantize_int8
from lcnn.inference.winograd import WinogradConv2d
from lcnn.layers import FusedMaxAvgPool2d, MaxAvgPool2d

__all__ = ["InferenceModel", "optimize_for_inference"]

_PRECISIONS = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
_BACKENDS = ("eager", "compile", "script")


class InferenceModel(nn.Module):
    """What :func:`optimize_for_inference` returns: ``forward`` and ``embed`` of the optimised copy, run
    under ``torch.inference_mode`` with channels-last inputs and optional autocast; outputs are fp32.

    With ``workers > 1`` a batch is cut into ``workers`` slices run concurrently, each by a thread doing
    single-threaded operators: no synchronisation inside the operators and each core keeps its own
    data in cache (on 2 cores this beats 2-thread operators by 1.2-1.6x for batches >= 8)."""

    def __init__(self, model: nn.Module, dtype: torch.dtype, channels_last: bool, backend: str, workers: int) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype
        self.channels_last = channels_last
        self.backend = backend
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._seen: set[tuple[str, tuple[int, ...]]] = set()  # (entry, shape) already run: compiled/traced
        self._traced: dict[tuple[str, tuple[int, ...]], torch.jit.ScriptModule] = {}
        self._compiled = {}
        if backend == "compile":
            options = {"freezing": True}  # weights become constants: prepacked for oneDNN, folded
            self._compiled = {
                "forward": torch.compile(model, dynamic=False, options=options),
                "embed": torch.compile(model.embed, dynamic=False, options=options),
            }

    def _autocast(self, x: torch.Tensor):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(x.device.type, dtype=self.dtype)

    def _call(self, entry: str, x: torch.Tensor) -> torch.Tensor:
        key = (entry, tuple(x.shape))
        with torch.inference_mode(), self._autocast(x):  # both thread-local: set in the worker
            if self.backend == "compile":
                fn = self._compiled[entry]
            elif self.backend == "script":
                fn = self._traced.get(key)
                if fn is None:
                    module = self.model if entry == "forward" else _EmbedOf(self.model)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # input checks become constants
                        fn = torch.jit.freeze(torch.jit.trace(module.eval(), x, check_trace=False))
                    self._traced[key] = fn
            else:
                fn = self.model if entry == "forward" else self.model.embed
            out = fn(x)
        self._seen.add(key)
        return out

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            threads = torch.get_num_threads()
            started = threading.Barrier(self.workers)

            def single_threaded() -> None:
                torch.set_num_threads(1)  # this thread's OpenMP/MKL setting
                started.wait()

            self._pool = ThreadPoolExecutor(self.workers, "lightcnn", initializer=single_threaded)
            for future in [self._pool.submit(int) for _ in range(self.workers)]:
                future.result()
            torch.set_num_threads(threads)  # the global default new threads start from, as it was
        return self._pool

    def _run(self, entry: str, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.workers < 2 or x.shape[0] < 2 * self.workers or x.device.type != "cpu":
            return self._call(entry, x).float()
        slices = x.chunk(self.workers)
        if all((entry, tuple(part.shape)) in self._seen for part in slices):
            outs = list(self._executor().map(lambda part: self._call(entry, part), slices))
        else:  # first time for these shapes: one at a time, so that each compiles (or traces) once
            outs = [self._call(entry, part) for part in slices]
        return torch.cat(outs).float()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, 128, 128)`` -> the 256-d feature, fp32."""
        return self._run("embed", x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (the feature for an embedder), fp32."""
        return self._run("forward", x)


class _EmbedOf(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.embed(x)


def optimize_for_inference(
    model: nn.Module,
    precision: str = "fp32",
    backend: str = "eager",
    *,
    channels_last: bool = True,
    fuse_pool: bool = True,
    winograd: bool | None = None,
    winograd_max_size: int = 16,
    inplace: bool = False,
    workers: int | None = None,
    calibration: torch.Tensor | None = None,
) -> InferenceModel:
    """A fast inference copy of a LightCNN model (the model passed in is left as it is).

    - ``precision``: ``"fp32"`` (default) or ``"bf16"`` autocast (outputs come back as fp32). bf16 pays on
      GPUs and on CPUs with AMX; on AVX512-BF16-only CPUs it is *slower* than fp32 (see the benchmark).
      ``"int8"``: :func:`lcnn.inference.quantize_int8`, calibrated on ``calibration`` (a batch of real
      faces), eager on the CPU: the fastest on x86 CPUs with AVX512-VNNI; embeddings within ~2e-2
      relative (cosine > 0.999).
    - ``backend``: ``"eager"``; ``"compile"``: ``torch.compile`` with weight freezing, which fuses the MFM
      maxima, residual adds, pooling and Winograd transforms into few kernels (the fastest on CPU; the
      first call compiles, a minute or more, cached on disk afterwards; each new batch size compiles
      again, so keep it fixed); ``"script"``: TorchScript trace + freeze, once per input shape.
    - ``channels_last``: NHWC tensors (oneDNN's native layout on CPU, tensor cores' on GPU).
    - ``fuse_pool``: 29v2/V4's ``max_pool2d + avg_pool2d`` in one pass.
    - ``winograd``: 3x3 convolutions on maps up to ``winograd_max_size`` by Winograd F(4x4, 3x3)
      (:class:`WinogradConv2d`); default: on for fp32 on CPU.
    - ``workers``: run batches as this many slices in parallel threads of single-threaded operators
      (default on CPU: ``torch.get_num_threads()``; 1 gives plain multi-threaded operators).
    - ``inplace``: optimise ``model`` itself instead of a copy (saves the copy's memory; ``model`` is then
      for inference only).

    Returns an :class:`InferenceModel` with ``forward`` and ``embed`` under ``torch.inference_mode``.
    Embeddings match the model's to ~1e-6 relative in fp32 (cosine 1.0); bf16 to ~1e-2 (cosine > 0.999).
    """
    if precision == "int8":
        if calibration is None or backend != "eager":
            raise ValueError("precision='int8' needs calibration=a batch of real inputs, and backend='eager'")
        model, precision, winograd, fuse_pool, inplace = quantize_int8(model, calibration), "fp32", False, False, True
    try:
        dtype = _PRECISIONS[precision]
    except KeyError:
        raise ValueError(f"precision must be one of {sorted(_PRECISIONS)} or int8, got {precision!r}") from None
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    model = (model if inplace else copy.deepcopy(model)).eval()
    for param in model.parameters():
        param.requires_grad_(False)
    device = next(model.parameters()).device
    if winograd is None:
        winograd = dtype == torch.float32 and device.type == "cpu"
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if fuse_pool and isinstance(child, MaxAvgPool2d):
                setattr(parent, name, FusedMaxAvgPool2d())
            elif winograd and WinogradConv2d.supports(child):
                setattr(parent, name, WinogradConv2d(child, winograd_max_size))
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if workers is None:
        workers = torch.get_num_threads() if device.type == "cpu" else 1
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return InferenceModel(model, dtype, channels_last, backend, workers)
