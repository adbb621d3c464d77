"""Which precision trains, and which path infers, fastest on the machine at hand: measured, cached, guarded.

"bf16 pays on CPUs only with AMX" held on one Xeon and was wrong on an AMD EPYC with AVX512_BF16 and no
AMX, where bf16 autocast trains the article's LCNN 1.9x faster than fp32 (issue 17). So it is measured:
on first use per machine (:func:`machine_key`) and model input, :func:`probe` times a training step in
fp32 and bf16 autocast and an inference batch in fp32, bf16 autocast and int8, on the model's own layer
shapes, each candidate for a fraction of a second, in turn (a burst of load from other processes hits all
alike), each keeping its fastest step (the least disturbed): on a shared machine the ranking holds. The
table is cached as JSON in ``cache_dir()/probe/<machine>/``; ``lcnn benchmark --probe`` shows it.

:func:`choose` reads it for a task: a less exact candidate wins where it is :data:`MARGIN` times as fast as
the more exact one and known to keep the task's result (:data:`KEEPS_RESULT`, from the accuracy runs in
``benchmarks/RESULTS-*.md``). ``$LCNN_PRECISION`` pins the training precision (inference: fp32) without
probing. A failing probe gives fp32 and a one-line warning: it never stops a run.
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

from lcnn.config import PRECISIONS
from lcnn.data.download import cache_dir
from lcnn.errors import UserError
from lcnn.inference import quantize_int8
from lcnn.io import write_json
from lcnn.models import count_macs, create_model, model_info
from lcnn.speed import _cpu_flag, prepare_input, prepare_model

__all__ = ["KEEPS_RESULT", "MARGIN", "ORDER", "checked_int8", "choose", "cpu_flags", "decide", "interleaved",
           "machine_key", "measure", "min_cosine", "pinned_precision", "probe", "probe_shape", "top1_agreement"]

log = logging.getLogger(__name__)

#: A less exact candidate must run at least this many times as fast as the more exact one it would replace.
#: 10 %: a smaller gain is within what a short probe on a shared machine can tell apart and not worth a change
#: of numerics; a larger margin could leave the default more than 10 % behind the best (issue 17's bound:
#: with this margin the choice is always within 1/1.10 of the fastest candidate allowed).
MARGIN = 1.10
#: The candidates, most exact first: training precisions (Lightning's names) and inference paths.
ORDER = {"train": ("32-true", "bf16-mixed"), "infer": ("fp32", "bf16", "int8")}
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
#: Least agreement of int8 with fp32 on the first batch of a prediction: the share of equal top-1 classes
#: (classify), the smallest cosine of the embeddings (face); as ``lcnn serve --int8``.
INT8_AGREEMENT = 0.99
#: CPU flags that decide bf16 and int8 speed (``/proc/cpuinfo`` names).
FLAGS = ("avx512_bf16", "amx_tile", "avx512_vnni", "avx_vnni")
#: The names of ``torch.cpu._is_<name>_supported`` where they are not those of :data:`FLAGS`.
_TORCH_FLAG = {"avx512_vnni": "vnni"}

#: The accuracy guard, as data: (task, model) -> {precision: the evidence that it keeps the task's result
#: against fp32}. fp32 needs no entry. ``"bf16-mixed"``: bf16 autocast training, entered only after fp32
#: and bf16 runs of 3 seeds agree within the fp32 seeds' spread (issue 17: the article's LCNN on MNIST-5k,
#: lcnn_lstm on MiniSpoof); a (task, model) without one trains in fp32 on CPUs. ``"bf16"`` / ``"int8"``:
#: inference; predict also checks int8 against fp32 on its first batch.
KEEPS_RESULT: dict[tuple[str, str], dict[str, str]] = {
    ("classify", "lcnn"): {
        "bf16-mixed": "MNIST-5k, 3 seeds of the article recipe: 97.19 ± 0.16 % trained in bf16 against 97.21 ± 0.17 % "
                      "in fp32 (benchmarks/RESULTS-classify.md, bf16_accuracy.py)",
        "int8": "MNIST-5k, 3 seeds of the article recipe: 97.38 % in int8 against 97.40 % in fp32, the same class "
                "for 99.74-99.88 % of the 10,000 test digits (benchmarks/RESULTS-classify.md)",
    },
    ("face", "lightcnn9"): {
        "int8": "ORL, 3 seeds: EER 12.22 / 13.33 / 11.78 % in int8 against 12.22 / 13.56 / 11.78 % in fp32, "
                "embeddings within cosine 0.9993 (benchmarks/RESULTS-face.md)",
    },
}  # fmt: skip


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
        int8 = quantize_int8(model, x, run=lambda m, batch: m(batch))
        infers["int8"] = infer(int8)
    except Exception as err:  # noqa: BLE001 - models int8 does not support (the LSTMs), builds without fbgemm
        skipped["int8"] = _why(err)
    time_them("infer", infers)
    return table, skipped, spread


def decide(speeds: dict[str, float], order: Sequence[str], allowed: set[str] | None = None,
           margin: float = MARGIN) -> str:  # fmt: skip
    """The candidate to run, from ``speeds`` (examples/s) of the candidates of ``order`` (most exact first):
    each less exact one that is ``allowed`` (default: all) replaces the pick so far where it is at least
    ``margin`` times as fast. The pick is then within ``1/margin`` of the fastest allowed candidate."""
    pick = order[0]
    for candidate in order[1:]:
        fast = speeds.get(candidate, 0.0) >= margin * speeds.get(pick, math.inf)
        if fast and (allowed is None or candidate in allowed):
            pick = candidate
    return pick


def _cache_file(key: dict[str, Any], name: str, shape: tuple[int, ...], batch: int | None) -> Path:
    size = "x".join(map(str, shape)) + (f"-b{batch}" if batch else "")
    return cache_dir() / "probe" / _machine_id(key) / f"{name}-{size}.json"


#: Tables this process has measured, by cache file: a disturbed table is not written, but it still answers
#: every later question of this process, so that the seeds of one run train alike.
_MEASURED: dict[Path, dict[str, Any]] = {}


def probe(model: str, input_shape: Sequence[int | None] | None = None, batch: int | None = None,
          budget_s: float = BUDGET_S, refresh: bool = False) -> dict[str, Any]:  # fmt: skip
    """The probe's table for ``model`` on this machine, measured once (or again with ``refresh``) and
    cached: ``{"table": {"train": {...}, "infer": {...}}, "skipped", "spread", "train", "infer" (the fastest
    by :data:`MARGIN`, before the accuracy guard), "machine", "model", "input_shape", "batch", "measured",
    "cache" (None: too disturbed to cache, see :data:`STEADY`)}``. ``batch``: default about
    :data:`BATCH_MACS` multiply-accumulates."""
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
        "train": decide(table["train"], ORDER["train"]), "infer": decide(table["infer"], ORDER["infer"]),
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


def pinned_precision() -> str | None:
    """``$LCNN_PRECISION`` (a Lightning precision; unset, empty or ``auto``: ``None``)."""
    value = os.environ.get("LCNN_PRECISION", "").strip()
    if value in ("", "auto"):
        return None
    if value not in PRECISIONS:
        raise UserError(f"LCNN_PRECISION={value!r}: must be one of {', '.join(PRECISIONS)}")
    return value


def choose(task: str, model: str, input_shape: Sequence[int | None] | None = None, parts: Sequence[str] = ORDER,
           result: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """What ``model`` of ``task`` should train and infer in on this CPU: ``{"train": "32-true" |
    "bf16-mixed", "infer": "fp32" | "bf16" | "int8", "note": why, "probe": the table or None}``.

    Only candidates :data:`KEEPS_RESULT` lists for ``(task, model)`` compete with fp32, each where it is
    :data:`MARGIN` times as fast (:func:`decide`); nothing is measured for ``parts`` without such a
    candidate; ``result``: a :func:`probe` result to decide from. ``$LCNN_PRECISION`` pins training to it
    and inference to fp32. Never raises for a failing probe: fp32, with a one-line warning."""
    pinned = pinned_precision()
    if pinned:
        return {"train": pinned, "infer": "fp32", "note": f"LCNN_PRECISION={pinned}", "probe": None}
    known = set(KEEPS_RESULT.get((task, model), {}))
    fp32 = {"train": "32-true", "infer": "fp32", "probe": None}
    if not any(known & set(ORDER[part][1:]) for part in parts):
        return {**fp32, "note": f"only fp32 is known to keep the result of {task} / {model}"}
    try:
        result = result or probe(model, input_shape)
    except Exception as err:  # noqa: BLE001 - the probe must never break a run
        note = f"the precision probe failed ({type(err).__name__}: {err}); running fp32"
        log.warning("lcnn: warning: %s", note)
        return {**fp32, "note": note}
    table = result["table"]
    picks = {part: decide(table[part], ORDER[part], known) for part in ORDER}
    held = [f"{fastest} ({table[part][fastest] / table[part][picks[part]]:.2f}x {picks[part]})" for part in parts
            if (fastest := decide(table[part], ORDER[part])) != picks[part]]  # fmt: skip
    note = (f"not yet known to keep the result of {task} / {model}: " + ", ".join(held) if held
            else f"the fastest of what keeps the result of {task} / {model}")  # fmt: skip
    return {**picks, "note": note, "probe": result}


def top1_agreement(reference: torch.Tensor, other: torch.Tensor) -> float:
    """The share of rows whose largest entry is in the same place (classes)."""
    return float((reference.argmax(1) == other.argmax(1)).float().mean())


def min_cosine(reference: torch.Tensor, other: torch.Tensor) -> float:
    """The smallest cosine similarity of matching rows (embeddings)."""
    return float(F.cosine_similarity(reference.float(), other.float()).min())


Run = Callable[[nn.Module, torch.Tensor], torch.Tensor]


def checked_int8(model: nn.Module, calibration: torch.Tensor, batch: torch.Tensor,
                 agreement: Callable[[torch.Tensor, torch.Tensor], float],
                 run: Run | None = None) -> tuple[nn.Module, str]:  # fmt: skip
    """``(int8 model, "int8")`` where :func:`lcnn.inference.quantize_int8` of ``model``, calibrated on
    ``calibration``, agrees with fp32 on ``batch`` (``agreement(fp32 outputs, int8 outputs)`` at least
    :data:`INT8_AGREEMENT`; ``run(model, x)`` the computation, default ``model.embed`` or ``model``), else
    ``(model, "fp32")`` with a one-line warning."""
    run = run or (lambda m, x: m.embed(x) if hasattr(m, "embed") else m(x))
    try:
        int8 = quantize_int8(model, calibration, run)
        with torch.inference_mode():
            score = agreement(run(model.eval(), batch), run(int8, batch))
    except Exception as err:  # noqa: BLE001 - int8 is an optimisation: fp32 always works
        log.warning("lcnn: warning: int8 failed (%s: %s); running fp32", type(err).__name__, err)
        return model, "fp32"
    if not score >= INT8_AGREEMENT:
        log.warning("lcnn: warning: int8 agrees with fp32 at %.4f < %s on the first %d inputs; running fp32",
                    score, INT8_AGREEMENT, len(batch))  # fmt: skip
        return model, "fp32"
    return int8, "int8"
