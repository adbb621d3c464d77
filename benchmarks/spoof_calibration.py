"""Calibration and fusion of spoof runs: raw against calibrated eval scores (actDCF, minDCF, Cllr, minCllr), and
the fusion of two systems against each alone (EER, minDCF), per seed and as mean +- std.

Each system is a multi-seed run folder of ``lcnn train --task spoof`` (``seed-N/scores-dev.txt`` and
``scores-eval.txt``, which carry the keys). The calibration is fitted on a seed's dev scores and applied to its
eval scores (``lcnn calibrate``'s fit: prior-weighted logistic regression at ASVspoof 5's operating point); a
second calibration is fitted on one half of the eval trials and applied to the other (both ways), to show
what an in-domain calibration reaches where dev and eval differ (MiniSpoof's eval has two unseen attacks and
other speakers). The fusion is fitted on the two systems' dev scores of the same seed and applied to their eval scores.

    python benchmarks/spoof_calibration.py --system lcnn_lstm=runs/spoof-lstm --system lcnn=runs/spoof-lcnn
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np


def _split(run: Path, split: str):
    from lcnn.score.files import read_scores

    scores = read_scores(run / f"scores-{split}.txt")
    bona = np.array([k == "bonafide" for k in scores.keys])
    return scores, bona


def _row(bona: np.ndarray, spoof: np.ndarray) -> dict[str, float]:
    from lcnn.metrics import act_dcf, cllr, compute_eer, min_cllr, min_dcf

    return {"eer": 100 * compute_eer(bona, spoof)[0], "min_dcf": min_dcf(bona, spoof), "act_dcf": act_dcf(bona, spoof),
            "cllr": cllr(bona, spoof), "min_cllr": min_cllr(bona, spoof)}  # fmt: skip


def main() -> None:
    from lcnn.metrics import fit_calibration, fit_fusion

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--system", action="append", required=True, metavar="NAME=RUN", help="a multi-seed spoof run")
    args = p.parse_args()
    systems = dict(item.split("=", 1) for item in args.system)
    seeds = sorted({s.name for run in systems.values() for s in Path(run).glob("seed-*")})
    rows: dict[str, list[dict[str, float]]] = {}
    for seed in seeds:
        dev_eval = {}
        for name, run in systems.items():
            (dev, dev_bona), (ev, ev_bona) = _split(Path(run) / seed, "dev"), _split(Path(run) / seed, "eval")
            calibration = fit_calibration(dev.scores[dev_bona], dev.scores[~dev_bona])
            llr = calibration.apply(ev.scores)
            rows.setdefault(f"{name} raw", []).append(_row(ev.scores[ev_bona], ev.scores[~ev_bona]))
            rows.setdefault(f"{name} calibrated on dev", []).append(_row(llr[ev_bona], llr[~ev_bona]))
            # In-domain: fitted on one half of eval (by trial order), applied to the other, and the reverse.
            halves = np.arange(len(ev.scores)) % 2 == 0
            cross = np.empty_like(ev.scores)
            for fit in (halves, ~halves):
                fold = fit_calibration(ev.scores[fit & ev_bona], ev.scores[fit & ~ev_bona])
                cross[~fit] = fold.apply(ev.scores[~fit])
            rows.setdefault(f"{name} calibrated on eval (2-fold)", []).append(_row(cross[ev_bona], cross[~ev_bona]))
            dev_eval[name] = (dev, dev_bona, ev, ev_bona)
        if len(systems) == 2:
            (d1, b1, e1, eb1), (d2, _, e2, _) = dev_eval.values()
            order = [{u: i for i, u in enumerate(f.ids)} for f in (d2, e2)]
            dev2 = d2.scores[[order[0][u] for u in d1.ids]]  # the second system's scores in the first's order
            ev2 = e2.scores[[order[1][u] for u in e1.ids]]
            fusion = fit_fusion(np.stack([d1.scores[b1], dev2[b1]], 1), np.stack([d1.scores[~b1], dev2[~b1]], 1))
            fused = fusion.apply(np.stack([e1.scores, ev2], 1))
            rows.setdefault(" + ".join(systems) + " fused", []).append(_row(fused[eb1], fused[~eb1]))
    print(f"{len(seeds)} seeds ({', '.join(seeds)}); eval split; EER in %, DCFs normalised, Cllr in bits\n")
    print("| system | EER | minDCF | actDCF | Cllr | minCllr |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, values in rows.items():
        cells = []
        for key in ("eer", "min_dcf", "act_dcf", "cllr", "min_cllr"):
            column = [v[key] for v in values]
            spread = statistics.stdev(column) if len(column) > 1 else 0.0
            cells.append(f"{statistics.fmean(column):.3f} ± {spread:.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
