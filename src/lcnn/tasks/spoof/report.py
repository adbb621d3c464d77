"""What a spoof evaluation writes: score files in the ASVspoof 2019 and 2021 forms (and the LLRs of a calibrated
model), EER tables, the DET plot, the pooled and per-condition tables (``report.md``), and the flat metrics
(pooled, per subset, per attack, min DCF, min t-DCF; act DCF and Cllr before and after calibration).

Every split's scores first pass :func:`lcnn.score.files.check_scores`: NaN, infinite or constant scores stop the
report (one line); inverted-looking scores are a warning, logged once and kept in the metrics."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lcnn.data.corpora import get_corpus
from lcnn.data.protocols import Trial
from lcnn.errors import DataError
from lcnn.io import atomic_path, write_json
from lcnn.metrics import (
    Calibration,
    act_dcf,
    cllr,
    compute_det_curve,
    format_table,
    min_tdcf,
    read_asv_scores,
    split_metrics,
)
from lcnn.plots import plot_det
from lcnn.score.files import ScoreFile, check_scores, read_scores, write_score_file
from lcnn.tasks.spoof.tables import condition_tables, markdown_report

log = logging.getLogger(__name__)

def write_scores(out_dir: Path, split: str, trials: list[Trial], scores: np.ndarray, wrote_2021: bool = False) -> None:
    """``scores-SPLIT.txt`` in the ASVspoof 2019 format (``utt attack key score``, labelled trials only) and
    ``scores-SPLIT-2021.txt`` in the 2021 format (``utt score``; not with ``wrote_2021``: the scoring engine wrote
    it), by the one writer of score files (:func:`lcnn.score.files.write_score_file`)."""
    ids = [t.utt for t in trials]
    if all(t.key is not None for t in trials):
        write_score_file(out_dir / f"scores-{split}.txt", ids, scores, lambda i: f"{trials[i].attack} {trials[i].key}")
    if not wrote_2021:
        write_score_file(out_dir / f"scores-{split}-2021.txt", ids, scores)


def write_report(out_dir: Path, results: dict[str, tuple[list[Trial], np.ndarray]], threshold: float,
                 asv_scores: str | None, data: str, main: str = "eval", calibration: Calibration | None = None,
                 wrote_2021: bool = False) -> dict[str, Any]:  # fmt: skip
    """Score files, EER tables (``eer-SPLIT.txt``, ``eer_tables.json``), ``det.png`` and ``report.md`` for each
    split of ``results``; returns the flat metrics, with the per-attack EERs and the min t-DCF of the ``main``
    split (in the form of the corpus ``data``: :attr:`lcnn.data.corpora.Corpus.revised_tdcf`; without ASV scores at
    the corpus's fixed ASV error rates where it has them, ASVspoof 5's), ``SPLIT_min_dcf``, the nested
    per-condition ``tables``, and with a ``calibration`` ``llrs-SPLIT.txt`` and ``SPLIT_act_dcf`` /
    ``_cllr`` / ``_min_cllr`` of the LLRs beside ``SPLIT_act_dcf_raw`` / ``_cllr_raw`` of the raw scores.
    ``wrote_2021``: the ``scores-SPLIT-2021.txt`` files are the scoring engine's, of these scores (evaluate);
    each score file is written once. The scores are checked before any file is written."""
    corpus = get_corpus(data)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, Any] = {}
    curves, tables, conditions = {}, {}, {}
    for split, (trials, scores) in results.items():
        _check(out_dir / f"scores-{split}-2021.txt", trials, scores, metrics)
        write_scores(out_dir, split, trials, scores, wrote_2021)
        llrs = calibration.apply(scores) if calibration is not None else None
        if llrs is not None:
            write_score_file(out_dir / f"llrs-{split}.txt", [t.utt for t in trials], llrs)
        if any(t.key is None for t in trials):
            metrics.update({f"{split}_count": len(trials), f"{split}_labelled": False})
            continue
        keys = [t.key for t in trials]
        m, table = split_metrics(split, scores, keys, [t.attack for t in trials], threshold,
                                 subsets=[t.subset or "" for t in trials], per_attack=split == main)  # fmt: skip
        metrics.update(m)
        tables[split] = table
        conditions[split] = condition_tables(trials, scores, llrs)
        pooled = conditions[split]["pooled"]
        metrics[f"{split}_min_dcf"] = pooled["min_dcf"]
        bona = np.array([k == "bonafide" for k in keys])
        if llrs is not None:
            metrics.update({f"{split}_{k}": pooled[k] for k in ("act_dcf", "cllr", "min_cllr")})
            metrics.update({f"{split}_act_dcf_raw": act_dcf(scores[bona], scores[~bona]),
                            f"{split}_cllr_raw": cllr(scores[bona], scores[~bona])})  # fmt: skip
        curves[f"{split} pooled"] = compute_det_curve(scores[bona], scores[~bona])[:2]
        with atomic_path(out_dir / f"eer-{split}.txt") as tmp:
            tmp.write_text(format_table(table) + "\n")
        if split != main:
            continue
        if asv_scores:
            asv = read_asv_scores(asv_scores)
            try:
                metrics[f"{split}_min_tdcf"] = min_tdcf(scores[bona], scores[~bona], *asv,
                                                        revised=corpus.revised_tdcf)  # fmt: skip
            except ValueError as err:
                raise DataError(f"{asv_scores}: {err}") from None
        elif corpus.asv_rates is not None:
            metrics[f"{split}_min_tdcf"] = min_tdcf(scores[bona], scores[~bona], asv_rates=corpus.asv_rates,
                                                    revised=corpus.revised_tdcf)  # fmt: skip
            metrics["min_tdcf_note"] = (f"{'revised ' if corpus.revised_tdcf else ''}t-DCF at the {data} organisers' "
                                        "ASV error rates")  # fmt: skip
        else:
            metrics[f"{split}_min_tdcf"] = None
            metrics["min_tdcf_note"] = "not computed: no ASV scores given (--asv-scores FILE)"
    if tables:
        write_json(out_dir / "eer_tables.json", tables)
        plot_det(curves, out_dir / "det.png", title=f"{data}: DET")
        metrics["tables"] = conditions
        if calibration is not None:
            metrics["calibration"] = calibration.to_dict()
        with atomic_path(out_dir / "report.md") as tmp:
            tmp.write_text(markdown_report(f"{data}: spoof evaluation", _notes(metrics, threshold, calibration),
                                           conditions))  # fmt: skip
    return metrics


def _check(name: Path, trials: list[Trial], scores: np.ndarray, metrics: dict[str, Any]) -> None:
    """Stop on scores that cannot be evaluated; log each warning once and keep it in ``metrics["warnings"]``."""
    check = check_scores(ScoreFile.of(str(name), [t.utt for t in trials], scores), trials)
    check.raise_errors()
    for warning in check.warnings:
        log.warning("%s: %s", name, warning)
        metrics.setdefault("warnings", []).append(f"{name.name}: {warning}")


def _notes(metrics: dict[str, Any], threshold: float, calibration: Calibration | None) -> list[str]:
    notes = ["Scores: higher means more bona fide. EER and min DCF are of the scores; min DCF, like act DCF, at "
             "ASVspoof 5's operating point (Pspoof 0.05, Cmiss 1, Cfa 10)."]  # fmt: skip
    if calibration is None:
        notes.append("Not calibrated: act DCF and Cllr need LLRs (`lcnn calibrate DEV_SCORES --checkpoint CKPT`).")
    else:
        c = calibration
        notes.append(f"Calibrated: llr = {c.a:.6g} * score {'-' if c.b < 0 else '+'} {abs(c.b):.6g}, fitted at Pspoof "
                     f"{c.p_spoof:g} (Cmiss "
                     f"{c.c_miss:g}, Cfa {c.c_fa:g}); act DCF, Cllr and min Cllr are of these LLRs.")  # fmt: skip
        for key in sorted(k for k in metrics if k.endswith("_act_dcf_raw")):
            split = key.removesuffix("_act_dcf_raw")
            notes.append(f"{split}: act DCF {metrics[key]:.4f} before calibration, {metrics[split + '_act_dcf']:.4f} "
                         f"after; Cllr {metrics[split + '_cllr_raw']:.4f} bits before, {metrics[split + '_cllr']:.4f} "
                         f"after.")  # fmt: skip
    if np.isfinite(threshold):
        notes.append(f"Decision threshold (dev EER): {threshold:.6g}.")
    for key in sorted(k for k in metrics if k.endswith("_min_tdcf") and metrics[k] is not None):
        notes.append(f"{key.removesuffix('_min_tdcf')}: min t-DCF {metrics[key]:.4f}"
                     + (f" ({metrics['min_tdcf_note']})." if "min_tdcf_note" in metrics else "."))  # fmt: skip
    for warning in metrics.get("warnings", []):
        notes.append(f"**Warning**: {warning}")
    return notes


def write_det_overlay(score_files: Mapping[str, str | os.PathLike], path: str | os.PathLike,
                      title: str | None = None) -> Path:  # fmt: skip
    """One DET plot of several systems: ``{name: labelled score file}`` (``scores-SPLIT.txt``, or any file of
    :func:`lcnn.score.files.read_scores` that carries the key), each checked first."""
    curves = {}
    for name, file in score_files.items():
        scores = read_scores(file)
        if scores.keys is None:
            raise DataError(f"{file}: no labels in this score file; the DET plot needs ID ATTACK KEY SCORE lines")
        check = check_scores(scores)
        check.raise_errors()
        for warning in check.warnings:
            log.warning("%s: %s", file, warning)
        bona = np.array([k == "bonafide" for k in scores.keys])
        curves[name] = compute_det_curve(scores.scores[bona], scores.scores[~bona])[:2]
    return plot_det(curves, path, title=title)
