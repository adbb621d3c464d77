"""How fast each precision trains, and each path infers, on the machine at hand: measured and cached.

"bf16 pays on CPUs only with AMX" held on one Xeon and was wrong on an AMD EPYC with AVX512_BF16 and no
AMX, where bf16 autocast trains the article's LCNN 1.9x faster than fp32 (issue 17). So it is measured:
on first use per machine (:func:`machine_key`) and model input, :func:`probe` times a training step in
fp32 and bf16 autocast and an inference batch in fp32, bf16 autocast and int8, on the model's own layer
shapes, each candidate for a fraction of a second, in turn (a burst of load from other processes hits all
alike), each keeping its fastest step (the least disturbed): on a shared machine the ranking holds. The
table is cached as JSON in ``cache_dir()/probe/<machine>/``; ``lcnn benchmark --probe`` shows it.

The probe only measures: which precision runs where, from its table and the accuracy guard, is
:mod:`lcnn.precision`'s policy (``choose``, ``KEEPS_RESULT``, ``MARGIN``, still readable here under the names
they had).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lcnn.data.download import cache_dir
from lcnn.inference import quantize_int8, quantize_int8_dynamic
from lcnn.io import write_json
from lcnn.models import count_macs, create_model, model_info
from lcnn.speed import _cpu_flag, prepare_input, prepare_model

__all__ = ["cpu_flags", "interleaved", "machine_key", "measure", "probe", "probe_shape"]

log = logging.getLogger(__name__)

#: Timed seconds per candidate (a candidate stops after this, once it has run MIN_ROUNDS steps).
BUDGET_S = 0.3
MIN_ROUNDS, MAX_ROUNDS = 3, 20
#: A table is cached only where every candidate's median step is within this factor of its fastest: a probe
#: disturbed more than that by other processes decides its own run only, and the next run measures again.
STEADY = 1.5
#: Frames a variable-length model (lcnn_lstm) is probed on: 3 s of LFCC frames at a 10 ms hop.
PROBE_FRAMES = 300
#: The probe's batch holds about this many forward multiply-accumulates (2 to 64 examples): the article's
#: LCNN gets 64, lcnn_lstm on 3 s 8, LightCNN-9 2; a training step then takes a few tens of milliseconds
#: to a few hundred.
BATCH_MACS = 2e9
#: CPU flags that decide bf16 and int8 speed (``/proc/cpuinfo`` names).
FLAGS = ("avx512_bf16", "amx_tile", "avx512_vnni", "avx_vnni")
#: The names of ``torch.cpu._is_<name>_supported`` where they are not those of :data:`FLAGS`.
_TORCH_FLAG = {"avx512_vnni": "vnni"}

def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of ``/proc/cpuinfo`` (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.split("\n\n")[0].splitlines():
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    return fields


def cpu_flags() -> dict[str, bool]:
    """The flags of :data:`FLAGS`, from ``/proc/cpuinfo``; elsewhere torch's own checks of them (False for a
    flag torch does not check: ``avx_vnni``)."""
    listed = _cpuinfo().get("flags")
    if listed is not None:
        present = set(listed.split())
        return {flag: flag in present for flag in FLAGS}
    return {flag: _cpu_flag(_TORCH_FLAG.get(flag, flag)) for flag in FLAGS}


#: What the probe measures, in its version: a cached table of another version is measured again (2: int8 of the
#: variable-length spoof family through per-input ranges, where it was left out).
PROBE_VERSION = 2


def machine_key() -> dict[str, Any]:
    """What decides which precision is fastest here: CPU model, logical CPUs, torch threads, torch version,
    oneDNN's instruction set and the bf16 / AMX / VNNI flags. A probe's table holds for one key."""
    info = _cpuinfo()
    return {
        "cpu": info.get("model name") or platform.processor() or platform.machine() or "unknown",
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "capability": torch.backends.cpu.get_cpu_capability(),
        "flags": cpu_flags(),
        "probe": PROBE_VERSION,
    }


def _machine_id(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def probe_shape(name: str, input_shape: Sequence[int | None] | None = None) -> tuple[int, ...]:
    """The example ``(C, H, W)`` model ``name`` is probed on: ``input_shape`` or the registry's, with the time
    axis of a variable-length model at :data:`PROBE_FRAMES`."""
    info = model_info(name)
    shape = tuple(input_shape or info.input_shape)
    if info.variable_length:
        shape = (shape[0], PROBE_FRAMES, *shape[2:])
    return tuple(int(s) for s in shape)


def _build(name: str, shape: tuple[int, ...]) -> nn.Module:
    kwargs = {} if shape == model_info(name).input_shape else {"input_shape": shape}
    return create_model(name, num_classes=2, **kwargs)


def interleaved(steps: dict[str, Callable[[], Any]], budget_s: float, clock: Callable[[], float]) -> dict[str, list]:
    """The seconds of each call of each step (sorted): one call of each in turn, round after round, until a
    step has been timed for ``budget_s`` (at least :data:`MIN_ROUNDS`, at most :data:`MAX_ROUNDS` rounds). A
    burst of load then slows every step alike, and each step's fastest call is its least disturbed one."""
    times: dict[str, list] = {name: [] for name in steps}
    for done in range(1, MAX_ROUNDS + 1):
        for name, step in steps.items():
            started = clock()
            step()
            times[name].append(clock() - started)
        if done >= MIN_ROUNDS and max(map(sum, times.values())) >= budget_s:
            break
    return {name: sorted(seconds) for name, seconds in times.items()}


def default_clock() -> Callable[[], float]:
    """The process's CPU time where torch computes on one thread (time other processes take the core from
    it does not count: steady on a shared machine), else wall time (CPU time would count the spinning of
    OpenMP threads that wait)."""
    return time.process_time if torch.get_num_threads() == 1 else time.perf_counter


def _why(err: Exception) -> str:
    """An exception in one short line (torch's errors run to pages)."""
    first = next(iter(str(err).splitlines()), "").split(". ")[0]
    return f"{type(err).__name__}: {first[:160]}"


def _warm(steps: dict[str, Callable[[], Any]], skipped: dict[str, str]) -> dict[str, Callable[[], Any]]:
    """The steps that run (once, untimed: oneDNN creates its kernels on the first call); the others go to
    ``skipped`` with the reason. The first (fp32) must run."""
    ready = {}
    for i, (name, step) in enumerate(steps.items()):
        try:
            step()
        except Exception as err:  # noqa: BLE001 - a candidate this build cannot run is left out, and said so
            if i == 0:
                raise
            skipped[name] = _why(err)
            continue
        ready[name] = step
    return ready


Table = dict[str, dict[str, float]]  # {"train": {precision: examples/s}, "infer": {path: examples/s}}


def measure(name: str, shape: tuple[int, ...], batch: int, budget_s: float = BUDGET_S,
            clock: Callable[[], float] | None = None) -> tuple[Table, dict[str, str], dict[str, float]]:  # fmt: skip
    """Examples per second of model ``name`` on random ``(batch, *shape)`` inputs, channels-last: a training
    step (forward, backward, Adam) in fp32 and in bf16 autocast, and an inference batch in fp32, bf16
    autocast and int8, each its fastest step (:func:`interleaved`, on ``clock``, default
    :func:`default_clock`). Returns ``({"train": {precision: ex/s}, "infer": {...}}, {candidate: why it was
    left out}, {candidate: its median step over its fastest})``."""
    clock = clock or default_clock()
    torch.manual_seed(0)
    model = prepare_model(_build(name, shape))
    x = prepare_input(torch.rand(batch, *shape))
    y = torch.randint(0, 2, (batch,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def train(bf16: bool) -> Callable[[], None]:
        def step() -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(model(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return step

    def infer(net: Callable[[torch.Tensor], torch.Tensor], bf16: bool = False) -> Callable[[], None]:
        def step() -> None:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                net(x)

        return step

    skipped: dict[str, str] = {}
    table: Table = {}
    spread: dict[str, float] = {}

    def time_them(part: str, steps: dict[str, Callable[[], None]]) -> None:
        for candidate, seconds in interleaved(_warm(steps, skipped), budget_s, clock).items():
            table.setdefault(part, {})[candidate] = batch / max(seconds[0], 1e-9)
            spread[candidate] = seconds[len(seconds) // 2] / max(seconds[0], 1e-9)

    model.train()
    time_them("train", {"32-true": train(False), "bf16-mixed": train(True)})
    model.eval()
    infers = {"fp32": infer(model), "bf16": infer(model, bf16=True)}
    try:
        # The int8 its tasks run: per-input ranges for the variable-length spoof family (a score depends on its
        # utterance alone), ranges calibrated on real inputs for the others.
        if model_info(name).variable_length:
            int8 = quantize_int8_dynamic(model)
        else:
            int8 = quantize_int8(model, x, run=lambda m, batch: m(batch))
        infers["int8"] = infer(int8)
    except Exception as err:  # noqa: BLE001 - models int8 does not support (the LSTMs), builds without fbgemm
        skipped["int8"] = _why(err)
    time_them("infer", infers)
    return table, skipped, spread


def _cache_file(key: dict[str, Any], name: str, shape: tuple[int, ...], batch: int | None) -> Path:
    size = "x".join(map(str, shape)) + (f"-b{batch}" if batch else "")
    return cache_dir() / "probe" / _machine_id(key) / f"{name}-{size}.json"


#: Tables this process has measured, by cache file: a disturbed table is not written, but it still answers
#: every later question of this process, so that the seeds of one run train alike.
_MEASURED: dict[Path, dict[str, Any]] = {}


def probe(model: str, input_shape: Sequence[int | None] | None = None, batch: int | None = None,
          budget_s: float = BUDGET_S, refresh: bool = False) -> dict[str, Any]:  # fmt: skip
    """The probe's table for ``model`` on this machine, measured once (or again with ``refresh``) and
    cached: ``{"table": {"train": {...}, "infer": {...}}, "skipped", "spread", "machine", "model",
    "input_shape", "batch", "measured", "cache" (None: too disturbed to cache, see :data:`STEADY`)}``.
    ``batch``: default about :data:`BATCH_MACS` multiply-accumulates."""
    shape = probe_shape(model, input_shape)
    key = machine_key()
    path = _cache_file(key, model, shape, batch)
    if not refresh and path in _MEASURED:
        return _MEASURED[path]
    if not refresh:
        try:
            cached = json.loads(path.read_text())
            if cached.get("machine") == key:
                return cached
        except (OSError, ValueError, AttributeError):
            pass  # absent, torn by hand or from another version: measured again
    log.info("lcnn: timing the precisions of %s %s on this machine (once; cached in %s)", model, shape, path)
    with torch.random.fork_rng(devices=[]):  # the caller's random stream (a seeded run's) is left as it was
        if batch is None:
            macs = count_macs(_build(model, shape), torch.zeros(2, *shape))
            batch = max(2, min(64, 2 ** int(math.log2(max(BATCH_MACS / max(macs, 1), 1)))))
        table, skipped, spread = measure(model, shape, batch, budget_s)
    result = {
        "machine": key, "model": model, "input_shape": list(shape), "batch": batch, "budget_s": budget_s,
        "measured": time.strftime("%Y-%m-%d %H:%M:%S"), "table": table, "skipped": skipped, "spread": spread,
        "cache": str(path),
    }  # fmt: skip
    if max(spread.values(), default=1.0) > STEADY:
        log.info("lcnn: the precision probe was disturbed by other processes (median %.2fx the fastest step): "
                 "this process uses it, the next one measures again", max(spread.values()))  # fmt: skip
        result["cache"] = None
    else:
        try:
            write_json(path, result)
        except OSError as err:
            log.warning("lcnn: warning: cannot cache the precision probe in %s (%s)", path.parent, err)
    _MEASURED[path] = result
    return result


_POLICY = ("KEEPS_RESULT", "MARGIN", "choose")


def __getattr__(name: str) -> Any:
    """The public names of the policy this module held before :mod:`lcnn.precision` (the same objects, imported
    on use: the policy imports the probe)."""
    if name in _POLICY:
        import lcnn.precision

        return getattr(lcnn.precision, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
