"""What a spoof evaluation writes: score files in the ASVspoof 2019 and 2021 forms, EER tables, the DET plot,
and the flat metrics (pooled, per subset, per attack, min t-DCF)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lcnn.data.protocols import Trial
from lcnn.errors import DataError
from lcnn.io import atomic_path, write_json
from lcnn.metrics import compute_det_curve, format_table, min_tdcf, read_asv_scores, split_metrics


def write_scores(out_dir: Path, split: str, trials: list[Trial], scores: np.ndarray) -> None:
    """``scores-SPLIT.txt`` in the ASVspoof 2019 format (``utt attack key score``, labelled trials only) and
    ``scores-SPLIT-2021.txt`` in the 2021 format (``utt score``)."""
    if all(t.key is not None for t in trials):
        lines = "".join(f"{t.utt} {t.attack} {t.key} {s:.6f}\n" for t, s in zip(trials, scores))
        with atomic_path(out_dir / f"scores-{split}.txt") as tmp:
            tmp.write_text(lines)
    with atomic_path(out_dir / f"scores-{split}-2021.txt") as tmp:
        tmp.write_text("".join(f"{t.utt} {s:.6f}\n" for t, s in zip(trials, scores)))


def write_report(out_dir: Path, results: dict[str, tuple[list[Trial], np.ndarray]], threshold: float,
                 asv_scores: str | None, data: str, main: str = "eval") -> dict[str, Any]:  # fmt: skip
    """Score files, EER tables (``eer-SPLIT.txt``, ``eer_tables.json``) and ``det.png`` for each split of
    ``results``; returns the flat metrics, with the per-attack EERs and the min t-DCF of the ``main`` split
    (the 2019 t-DCF, or the revised one of 2021 for ``asvspoof2021-*`` data)."""
    from lcnn.plots import plot_det

    out_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, Any] = {}
    curves, tables = {}, {}
    for split, (trials, scores) in results.items():
        write_scores(out_dir, split, trials, scores)
        if any(t.key is None for t in trials):
            metrics.update({f"{split}_count": len(trials), f"{split}_labelled": False})
            continue
        keys = [t.key for t in trials]
        m, table = split_metrics(split, scores, keys, [t.attack for t in trials], threshold,
                                 subsets=[t.subset or "" for t in trials], per_attack=split == main)  # fmt: skip
        metrics.update(m)
        tables[split] = table
        bona = np.array([k == "bonafide" for k in keys])
        curves[f"{split} pooled"] = compute_det_curve(scores[bona], scores[~bona])[:2]
        with atomic_path(out_dir / f"eer-{split}.txt") as tmp:
            tmp.write_text(format_table(table) + "\n")
        if split != main:
            continue
        if asv_scores:
            asv = read_asv_scores(asv_scores)
            try:
                metrics[f"{split}_min_tdcf"] = min_tdcf(scores[bona], scores[~bona], *asv,
                                                        revised=data.startswith("asvspoof2021"))  # fmt: skip
            except ValueError as err:
                raise DataError(f"{asv_scores}: {err}") from None
        else:
            metrics[f"{split}_min_tdcf"] = None
            metrics["min_tdcf_note"] = "not computed: no ASV scores given (--asv-scores FILE)"
    if tables:
        write_json(out_dir / "eer_tables.json", tables)
        plot_det(curves, out_dir / "det.png", title=f"{data}: DET")
    return metrics
