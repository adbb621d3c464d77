"""Does a faster inference precision keep a spoof model's result? The evidence behind ``lcnn score``'s default.

    python benchmarks/precision_evidence.py RUN/seed-0 RUN/seed-1 RUN/seed-2 \
        --set eval=../shared/data/minispoof --set codec=MINISPOOF_CODEC [--write]

Each trained run (its ``checkpoints/best.ckpt``) scores the eval split of each set through ``lcnn score`` in
fp32 (the reference), bf16 and int8. Per seed and set: the Pearson correlation of the scores with fp32's, the
largest score difference, and the EER and minDCF (ASVspoof 5's, p_spoof 0.05, C_miss 1, C_fa 10) differences
in points. ``--write`` stores the table as data beside the guard (``src/lcnn/precision_evidence.json``), where
:mod:`lcnn.precision` reads it and applies its rule (:data:`lcnn.precision.SCORING_RULE`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lcnn.metrics import compute_eer, min_dcf
from lcnn.precision import EVIDENCE_FILE, scoring_verdict

PROTOCOL = Path("LA") / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.eval.trl.txt"
AUDIO = Path("LA") / "ASVspoof2019_LA_eval" / "flac"
PRECISIONS = {"fp32": "32-true", "bf16": "bf16-mixed", "int8": "int8"}


def score(ckpt: Path, root: Path, precision: str, out: Path) -> dict[str, float]:
    """``lcnn score`` of the set's eval protocol: ``{trial id: score}``."""
    if not out.exists():
        cmd = [sys.executable, "-m", "lcnn", "score", str(ckpt), str(root / PROTOCOL), "--audio-dir", str(root / AUDIO),
               "--out", str(out), "--precision", PRECISIONS[precision], "--no-cache"]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return {line.split()[0]: float(line.split()[1]) for line in out.read_text().splitlines()}


def metrics(scores: np.ndarray, bonafide: np.ndarray) -> tuple[float, float]:
    """EER and minDCF, in points (percent) and as a fraction."""
    return compute_eer(scores[bonafide], scores[~bonafide])[0] * 100, min_dcf(scores[bonafide], scores[~bonafide])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="trained runs (seed folders with checkpoints/best.ckpt)")
    parser.add_argument("--set", action="append", required=True, metavar="NAME=ROOT",
                        help="a MiniSpoof-layout data root whose eval split is scored (repeatable)")
    parser.add_argument("--work", type=Path, default=Path("runs/precision-evidence"), help="score files")
    parser.add_argument("--model", default="lcnn_lstm", help="the runs' architecture (the guard's key)")
    parser.add_argument("--write", action="store_true", help=f"store the table in {EVIDENCE_FILE}")
    args = parser.parse_args()
    sets = dict(item.split("=", 1) for item in args.set)
    started = time.perf_counter()
    rows = []
    for seed, run in enumerate(args.runs):
        ckpt = run / "checkpoints" / "best.ckpt"
        for name, root in sets.items():
            root = Path(root)
            keys = {r[1]: r[4] == "bonafide" for r in (line.split() for line in (root / PROTOCOL).read_text()
                                                       .splitlines() if line.strip())}  # fmt: skip
            ids = sorted(keys)
            bonafide = np.array([keys[i] for i in ids])
            work = args.work / f"{run.parent.name}-{run.name}" / name
            work.mkdir(parents=True, exist_ok=True)
            got = {p: score(ckpt, root, p, work / f"{p}.txt") for p in PRECISIONS}
            ref = np.array([got["fp32"][i] for i in ids])
            eer, dcf = metrics(ref, bonafide)
            for precision in ("bf16", "int8"):
                other = np.array([got[precision][i] for i in ids])
                eer_p, dcf_p = metrics(other, bonafide)
                rows.append({"task": "spoof", "model": args.model, "precision": precision, "run": str(run),
                             "seed": seed, "set": name, "trials": len(ids),
                             "correlation": float(np.corrcoef(ref, other)[0, 1]),
                             "max_abs_diff": float(np.abs(ref - other).max()), "eer_fp32": eer, "eer": eer_p,
                             "min_dcf_fp32": dcf, "min_dcf": dcf_p})  # fmt: skip
    print(f"\n### {args.model}: bf16 and int8 against fp32 through `lcnn score` ({len(args.runs)} runs, "
          f"{os.cpu_count()} CPUs, {time.perf_counter() - started:.0f} s)\n")
    print("| precision | set | seed | correlation | max abs diff | EER fp32 (%) | EER (%) | ΔEER (pt) | minDCF fp32 | "
          "minDCF | ΔminDCF |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")  # fmt: skip
    for r in rows:
        print(f"| {r['precision']} | {r['set']} | {r['seed']} | {r['correlation']:.6f} | {r['max_abs_diff']:.2e} | "
              f"{r['eer_fp32']:.2f} | {r['eer']:.2f} | {r['eer'] - r['eer_fp32']:+.2f} | {r['min_dcf_fp32']:.4f} | "
              f"{r['min_dcf']:.4f} | {r['min_dcf'] - r['min_dcf_fp32']:+.4f} |")  # fmt: skip
    for precision in ("bf16", "int8"):
        verdict = scoring_verdict([r for r in rows if r["precision"] == precision])
        print(f"\n{precision}: {verdict[1]}")
    if args.write:
        data = json.loads(EVIDENCE_FILE.read_text()) if EVIDENCE_FILE.exists() else []
        data = [r for r in data if (r["task"], r["model"]) != ("spoof", args.model)] + rows
        EVIDENCE_FILE.write_text(json.dumps(data, indent=1) + "\n")
        print(f"\nwritten to {EVIDENCE_FILE}")


if __name__ == "__main__":
    main()
