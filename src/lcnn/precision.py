"""The precision policy: what trains, infers and evaluates in which precision on which device. One rule, here:

=========================  ===============================  ==========================  ============
part                       CPU                              CUDA                        other (MPS)
=========================  ===============================  ==========================  ============
train (``--precision       the probe's fastest of what the  bf16-mixed where the GPU    32-true
auto``)                    guard lists (bf16-mixed)         supports it, else 32-true
infer (predict, score)     the probe's fastest of what the  bf16 where the GPU          fp32
                           guard lists (bf16, int8)         supports it and the guard
                                                            lists it, else fp32
evaluate                   fp32 (TF32 off on CUDA)          fp32                        fp32
=========================  ===============================  ==========================  ============

An explicit setting (``--precision``, ``--int8`` / ``--no-int8``) beats everything; ``$LCNN_PRECISION``
pins training to it and inference to fp32, without a probe. "Fastest": a less exact candidate replaces a
more exact one where it is :data:`MARGIN` times as fast (:func:`decide`) on the probe's timings
(:mod:`lcnn.probe`, which only measures). "The guard": :data:`KEEPS_RESULT`, what accuracy runs showed to
keep a task's result against fp32. On GPUs bf16 is taken untimed (their bf16 units are the fast path) and
int8 never (CPU kernels); training there takes bf16 without the guard, the documented default of bf16 GPUs,
while inference, whose scores users compare, keeps the guard (it lists bf16 inference for no model yet).
Evaluate is fp32 everywhere: the reference the guard's figures are measured against. A chosen int8 must
also agree with fp32 on real inputs (:func:`check_int8`, :data:`INT8_AGREEMENT`).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lcnn.config import PRECISIONS
from lcnn.errors import UserError
from lcnn.inference import quantize_int8
from lcnn.probe import probe
from lcnn.speed import cuda_supports_bf16

__all__ = ["EVIDENCE_FILE", "INT8_AGREEMENT", "KEEPS_RESULT", "LIGHTNING", "MARGIN", "ORDER", "SCORING_RULE",
           "check_int8", "choose", "decide", "device_type", "evaluate_precision", "infer_precision", "min_cosine",
           "pinned_precision", "scoring_verdict", "top1_agreement", "train_precision"]  # fmt: skip

log = logging.getLogger(__name__)

#: A less exact candidate must run at least this many times as fast as the more exact one it would replace.
#: 10 %: a smaller gain is within what a short probe on a shared machine can tell apart and not worth a change
#: of numerics; a larger margin could leave the default more than 10 % behind the best (issue 17's bound:
#: with this margin the choice is always within 1/1.10 of the fastest candidate allowed).
MARGIN = 1.10
#: The candidates, most exact first: training precisions (Lightning's names) and inference paths.
ORDER = {"train": ("32-true", "bf16-mixed"), "infer": ("fp32", "bf16", "int8")}
#: The Lightning precision of an inference path run by a Trainer (int8: a quantized model, in fp32 around it).
LIGHTNING = {"fp32": "32-true", "bf16": "bf16-mixed", "int8": "32-true"}
#: Least agreement of int8 with fp32 on real inputs (predict's first batch, serve's calibration images): the
#: share of equal top-1 classes (classify), the smallest cosine of the embeddings (face).
INT8_AGREEMENT = 0.99

#: The accuracy guard, as data: (task, model) -> {precision: the evidence that it keeps the task's result
#: against fp32}. fp32 needs no entry. ``"bf16-mixed"``: bf16 autocast training, entered only after fp32
#: and bf16 runs of 3 seeds agree within the fp32 seeds' spread (issue 17: the article's LCNN on MNIST-5k,
#: lcnn_lstm on MiniSpoof); a (task, model) without one trains in fp32 on CPUs. ``"bf16"`` / ``"int8"``:
#: inference; int8 is also checked against fp32 on real inputs (:func:`check_int8`).
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

#: The accuracy evidence of inference precisions on trained spoof models, as data: one row per (precision, run,
#: set) with the scores' correlation with fp32's and the EER / minDCF of both (benchmarks/precision_evidence.py
#: writes it). :data:`KEEPS_RESULT` takes a precision from it where :data:`SCORING_RULE` holds.
EVIDENCE_FILE = Path(__file__).with_name("precision_evidence.json")
#: What a faster precision must show to score spoof trials by default (issue 27): at least ``runs`` trained
#: runs on at least ``sets`` sets (clean and degraded), and on every one its EER less than ``eer_points`` from
#: fp32's and its scores correlated with fp32's at ``correlation`` or more. Otherwise it stays an opt-in.
SCORING_RULE = {"runs": 3, "sets": 2, "eer_points": 0.2, "correlation": 0.999}


def scoring_verdict(rows: Sequence[dict[str, Any]]) -> tuple[bool, str]:
    """``(keeps the result, why)`` of one precision's evidence rows by :data:`SCORING_RULE`."""
    if not rows:
        return False, "no evidence"
    runs, sets = len({r["run"] for r in rows}), sorted({r["set"] for r in rows})
    eer = max(abs(r["eer"] - r["eer_fp32"]) for r in rows)
    corr = min(r["correlation"] for r in rows)
    rule = SCORING_RULE
    ok = runs >= rule["runs"] and len(sets) >= rule["sets"] and eer < rule["eer_points"] and corr >= rule["correlation"]
    return ok, (f"{runs} trained runs on {' and '.join(sets)}: EER at most {eer:.2f} points from fp32's, scores "
                f"correlated with fp32's at {corr:.6f} or more ({'keeps' if ok else 'does not keep'} the result: "
                f"the rule asks {rule['runs']} runs, {rule['sets']} sets, < {rule['eer_points']} points, "
                f">= {rule['correlation']})")  # fmt: skip


def _measured() -> dict[tuple[str, str], dict[str, str]]:
    """The inference precisions :data:`EVIDENCE_FILE` shows to keep a (task, model)'s result."""
    rows = json.loads(EVIDENCE_FILE.read_text()) if EVIDENCE_FILE.exists() else []
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["model"], row["precision"]), []).append(row)
    kept: dict[tuple[str, str], dict[str, str]] = {}
    for (task, model, precision), group in groups.items():
        ok, why = scoring_verdict(group)
        if ok:
            kept.setdefault((task, model), {})[precision] = f"{why}; {EVIDENCE_FILE.name}"
    return kept


for _key, _entries in _measured().items():
    KEEPS_RESULT.setdefault(_key, {}).update(_entries)

Shape = Sequence[int | None] | None


def pinned_precision() -> str | None:
    """``$LCNN_PRECISION`` (a Lightning precision; unset, empty or ``auto``: ``None``)."""
    value = os.environ.get("LCNN_PRECISION", "").strip()
    if value in ("", "auto"):
        return None
    if value not in PRECISIONS:
        raise UserError(f"LCNN_PRECISION={value!r}: must be one of {', '.join(PRECISIONS)}")
    return value


def device_type(accelerator: str | None = "auto") -> str:
    """The device ``accelerator`` runs on, as Lightning picks it: ``auto`` / ``gpu`` are CUDA where there is
    one, else Apple's GPU (``auto`` and ``gpu`` only), else the CPU; any other name is itself."""
    accelerator = accelerator or "auto"
    if accelerator in ("auto", "gpu", "cuda"):
        mps = accelerator != "cuda" and torch.backends.mps.is_available()
        return "cuda" if torch.cuda.is_available() else "mps" if mps else "cpu"
    return accelerator


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


def choose(task: str, model: str, input_shape: Shape = None, parts: Sequence[str] = ORDER,
           result: dict[str, Any] | None = None, runs: Sequence[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """What ``model`` of ``task`` should train and infer in on this CPU: ``{"train": "32-true" |
    "bf16-mixed", "infer": "fp32" | "bf16" | "int8", "note": why, "probe": the table or None}``.

    Only candidates :data:`KEEPS_RESULT` lists for ``(task, model)`` (and, for inference, that the caller
    ``runs``: default all) compete with fp32, each where it is :data:`MARGIN` times as fast (:func:`decide`);
    nothing is measured for ``parts`` without such a candidate; ``result``: a :func:`lcnn.probe.probe` result
    to decide from. ``$LCNN_PRECISION`` pins training to it and inference to fp32. Never raises for a
    failing probe: fp32, with a one-line warning."""
    pinned = pinned_precision()
    if pinned:
        return {"train": pinned, "infer": "fp32", "note": f"LCNN_PRECISION={pinned}", "probe": None}
    known = set(KEEPS_RESULT.get((task, model), {}))
    allowed = {"train": known, "infer": known & set(ORDER["infer"] if runs is None else runs)}
    fp32 = {"train": "32-true", "infer": "fp32", "probe": None}
    if not any(allowed[part] & set(ORDER[part][1:]) for part in parts):
        return {**fp32, "note": f"only fp32 is known to keep the result of {task} / {model}"}
    try:
        result = result or probe(model, input_shape)
    except Exception as err:  # noqa: BLE001 - the probe must never break a run
        note = f"the precision probe failed ({type(err).__name__}: {err}); running fp32"
        log.warning("lcnn: warning: %s", note)
        return {**fp32, "note": note}
    table = result["table"]
    picks = {part: decide(table[part], ORDER[part], allowed[part]) for part in ORDER}
    held = [f"{fastest} ({table[part][fastest] / table[part][picks[part]]:.2f}x {picks[part]})" for part in parts
            if (fastest := decide(table[part], ORDER[part])) != picks[part]]  # fmt: skip
    note = (f"not yet known to keep the result of {task} / {model}: " + ", ".join(held) if held
            else f"the fastest of what keeps the result of {task} / {model}")  # fmt: skip
    return {**picks, "note": note, "probe": result}


def train_precision(precision: str = "auto", accelerator: str | None = "auto", task: str | None = None,
                    model: str | None = None, input_shape: Shape = None) -> str:  # fmt: skip
    """The Lightning precision a run trains in: ``precision`` as given, but ``auto``: ``$LCNN_PRECISION``
    where set; on CUDA bf16 mixed where the GPU has bf16; on a CPU what :func:`choose` picks for ``model``
    of ``task`` (on ``input_shape``); elsewhere, or without a task and model, fp32."""
    if precision != "auto":
        return precision
    pinned = pinned_precision()
    if pinned:
        return pinned
    device = device_type(accelerator)
    if device == "cuda":
        return "bf16-mixed" if cuda_supports_bf16() else "32-true"
    if device != "cpu" or task is None or model is None:
        return "32-true"
    return choose(task, model, input_shape, parts=("train",))["train"]


def infer_precision(task: str, model: str, input_shape: Shape = None, accelerator: str | None = "auto",
                    runs: Sequence[str] = ORDER["infer"]) -> str:  # fmt: skip
    """The path predict and scoring run ``model`` of ``task`` in, of those the caller ``runs``: ``fp32``,
    ``bf16`` or ``int8``. fp32 where ``$LCNN_PRECISION`` is set; on a CPU what :func:`choose` picks; on CUDA
    bf16 where the GPU supports it and :data:`KEEPS_RESULT` lists it; else fp32. (A caller's explicit
    ``--precision`` or ``--int8`` is used as given, without asking.)"""
    device = device_type(accelerator)
    if device == "cpu":
        return choose(task, model, input_shape, parts=("infer",), runs=runs)["infer"]
    guarded = "bf16" in KEEPS_RESULT.get((task, model), {}) and "bf16" in runs
    return "bf16" if device == "cuda" and guarded and not pinned_precision() and cuda_supports_bf16() else "fp32"


def evaluate_precision() -> str:
    """``fp32``, always and everywhere (TF32 off on CUDA): evaluate is the reference the guard's figures, and
    every faster path, are measured against."""
    return "fp32"


def top1_agreement(reference: torch.Tensor, other: torch.Tensor) -> float:
    """The share of rows whose largest entry is in the same place (classes)."""
    return float((reference.argmax(1) == other.argmax(1)).float().mean())


def min_cosine(reference: torch.Tensor, other: torch.Tensor) -> float:
    """The smallest cosine similarity of matching rows (embeddings)."""
    return float(F.cosine_similarity(reference.float(), other.float()).min())


Run = Callable[[nn.Module, torch.Tensor], torch.Tensor]


def check_int8(model: nn.Module, calibration: torch.Tensor, batch: torch.Tensor,
               agreement: Callable[[torch.Tensor, torch.Tensor], float],
               run: Run | None = None) -> tuple[nn.Module, str, str]:  # fmt: skip
    """``(int8 model, "int8", note)`` where :func:`lcnn.inference.quantize_int8` of ``model``, calibrated on
    ``calibration``, agrees with fp32 on ``batch`` (``agreement(fp32 outputs, int8 outputs)`` at least
    :data:`INT8_AGREEMENT`; ``run(model, x)`` the computation, default ``model.embed`` or ``model``), else
    ``(model, "fp32", why)``. The one int8 check of predict and serve."""
    if not {"x86", "fbgemm"} & set(torch.backends.quantized.supported_engines):
        return model, "fp32", "this CPU has no int8 engine (x86 / fbgemm)"
    run = run or (lambda m, x: m.embed(x) if hasattr(m, "embed") else m(x))
    try:
        int8 = quantize_int8(model, calibration, run)
        with torch.inference_mode():
            score = agreement(run(model.eval(), batch), run(int8, batch))
    except Exception as err:  # noqa: BLE001 - int8 is an optimisation: fp32 always works
        return model, "fp32", f"int8 failed ({type(err).__name__}: {err})"
    if not score >= INT8_AGREEMENT:
        return model, "fp32", f"int8 agreement with fp32 is {score:.4f} < {INT8_AGREEMENT} on {len(batch)} inputs"
    return int8, "int8", f"int8 agreement with fp32 is {score:.4f} on {len(batch)} inputs"
