"""The tables of a spoof evaluation: pooled and per condition (attack, codec, subset...), and their Markdown.

Metrics are those of ASVspoof 5 Track 1 at its operating point (Pspoof 0.05, Cmiss 1, Cfa 10): EER and min DCF
of the scores; with a calibration, act DCF, Cllr and min Cllr of its LLRs (they mean nothing for raw scores).

Conditions are the trials' attack (spoofs only) and :attr:`lcnn.data.protocols.Trial.conditions`. As in the
official ASVspoof 2021 and 5 packages, a condition that only spoofs carry (attack, vocoder, attack tag) compares
each value's spoofs with all bona fide trials; one that bona fide trials carry too (codec, transmission,
subset...) compares the bona fide and spoofed trials of each value. A condition with one value is left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lcnn.data.protocols import Trial
from lcnn.metrics import act_dcf, cllr, compute_eer, min_cllr, min_dcf

CALIBRATED = ("act_dcf", "cllr", "min_cllr")


def metric_row(bona: NDArray, spoof: NDArray, llr_bona: NDArray | None = None,
               llr_spoof: NDArray | None = None) -> dict[str, Any]:  # fmt: skip
    """Counts, EER and min DCF of the scores, and with LLRs their act DCF, Cllr and min Cllr; ``None`` for the
    metrics when a class is empty."""
    row: dict[str, Any] = {"n_bonafide": int(len(bona)), "n_spoof": int(len(spoof)), "eer": None, "min_dcf": None}
    if llr_bona is not None:
        row.update(dict.fromkeys(CALIBRATED))
    if not (len(bona) and len(spoof)):
        return row
    row.update(eer=compute_eer(bona, spoof)[0], min_dcf=min_dcf(bona, spoof))
    if llr_bona is not None:
        row.update(act_dcf=act_dcf(llr_bona, llr_spoof), cllr=cllr(llr_bona, llr_spoof),
                   min_cllr=min_cllr(llr_bona, llr_spoof))  # fmt: skip
    return row


def trial_conditions(trials: Sequence[Trial]) -> dict[str, NDArray[np.object_]]:
    """``{condition: (N,) value per trial, None where the trial has none}``: ``attack`` first (spoofs only), then
    the :attr:`~lcnn.data.protocols.Trial.conditions` in the order they first appear."""
    names = {"attack": None}
    for t in trials:
        names.update(dict.fromkeys(t.conditions))
    values = {name: np.full(len(trials), None, dtype=object) for name in names}
    for i, t in enumerate(trials):
        if t.key == "spoof":
            values["attack"][i] = t.attack
        for name, value in t.conditions.items():
            values[name][i] = value
    return values


def condition_tables(trials: Sequence[Trial], scores: NDArray, llrs: NDArray | None = None) -> dict[str, Any]:
    """``{"pooled": row, "conditions": {name: {"slices": "spoof" | "both", "rows": {value: row}}}}`` of one
    labelled split (rows: :func:`metric_row`; values sorted; see the module docstring for ``slices``)."""
    scores = np.asarray(scores, dtype=np.float64)
    bona = np.array([t.key == "bonafide" for t in trials], dtype=bool)

    def row(b: NDArray[np.bool_], s: NDArray[np.bool_]) -> dict[str, Any]:
        llr = (llrs[b], llrs[s]) if llrs is not None else (None, None)
        return metric_row(scores[b], scores[s], *llr)

    table: dict[str, Any] = {"pooled": row(bona, ~bona), "conditions": {}}
    for name, values in trial_conditions(trials).items():
        present = sorted({v for v in values if v is not None})
        if len(present) < 2:
            continue
        both = any(v is not None for v in values[bona])
        rows = {v: row(bona & (values == v) if both else bona, ~bona & (values == v)) for v in present}
        table["conditions"][name] = {"slices": "both" if both else "spoof", "rows": rows}
    return table


def _cell(value: Any, percent: bool = False) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.3f}" if percent else f"{value:.4f}"


def markdown_table(first: str, rows: dict[str, dict[str, Any]]) -> str:
    """A Markdown table of :func:`metric_row` rows, one per key of ``rows`` (the first column, ``first``)."""
    calibrated = any("cllr" in r for r in rows.values())
    head = [first, "bona fide", "spoof", "EER (%)", "min DCF", *(["act DCF", "Cllr", "min Cllr"] if calibrated else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        cells = [str(name), str(r["n_bonafide"]), str(r["n_spoof"]), _cell(r["eer"], True), _cell(r["min_dcf"])]
        cells += [_cell(r.get(k)) for k in CALIBRATED] if calibrated else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(title: str, notes: Sequence[str], tables: dict[str, dict[str, Any]]) -> str:
    """``report.md``: the title, the notes (one paragraph each), and per split its pooled and per-condition
    tables (:func:`condition_tables`)."""
    parts = [f"# {title}", *notes]
    for split, table in tables.items():
        parts += [f"## {split}: pooled", markdown_table("trials", {"pooled": table["pooled"]})]
        for name, condition in table["conditions"].items():
            how = (f"Each {name}'s spoofed trials against all bona fide trials." if condition["slices"] == "spoof"
                   else f"The bona fide and spoofed trials of each {name}.")  # fmt: skip
            parts += [f"## {split}: per {name}", how, markdown_table(name, condition["rows"])]
    return "\n\n".join(parts) + "\n"
