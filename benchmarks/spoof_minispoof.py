"""MiniSpoof benchmark: lcnn and lcnn_lstm, several seeds each, eval EER pooled and per attack; and the time of
one training epoch with the feature cache cold and warm.

    python benchmarks/spoof_minispoof.py --data-dir ../shared/data/minispoof            # everything
    python benchmarks/spoof_minispoof.py --only timing                                  # the cache timing only
    python benchmarks/spoof_minispoof.py --only augment --models lcnn_lstm --threads 2   # epoch time, augmented
    python benchmarks/spoof_minispoof.py --only augment --models lcnn_lstm --threads 2 --workers 2 \
        --augments none codec --ffmpeg /usr/bin/ffmpeg IMAGEIO_FFMPEG_BINARY              # which ffmpeg
    python benchmarks/spoof_minispoof.py --only accuracy --models lcnn_lstm --seeds 0
    python benchmarks/spoof_minispoof.py --report runs/bench-spoof-lcnn-* runs/bench-spoof-lcnn_lstm-*

Runs go to ``runs/bench-spoof-*`` (one folder per model, ``seed-N`` inside). Prints Markdown tables; EER in %.
Uses one CPU thread by default (``--threads``), as the machines it was measured on are shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

ATTACKS = ("A01", "A02", "A03", "A04", "A05")


def _cfg(args: argparse.Namespace, model: str, **overrides):
    from lcnn.train import resolve_config

    options = {"loss": args.loss, "epochs": args.epochs, "frontend": args.frontend}
    extra = json.loads(args.extra) if args.extra else {}
    return resolve_config("spoof", "minispoof", data_dir=args.data_dir, model=model,
                          **{**options, **extra, **overrides})


def timing(args: argparse.Namespace) -> None:
    """One epoch (train + dev validation) and a pass over the train loader alone, cache cold then warm."""
    import lightning as L

    from lcnn.tasks import get_task
    from lcnn.train import build_trainer

    spoof = get_task("spoof")
    rows = []
    for model in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = _cfg(args, model, epochs=1, cache_dir=f"{tmp}/cache", patience=0)
            for state in ("cold", "warm"):
                L.seed_everything(0, verbose=False)
                module, data = spoof.build(cfg)
                started = time.perf_counter()
                for _ in data.train_dataloader():
                    pass
                loader = time.perf_counter() - started
                if state == "cold":  # the loader pass filled the train cache: empty it again for the epoch
                    for entry in Path(tmp, "cache").rglob("*.npy"):
                        entry.unlink()
                trainer = build_trainer(cfg, Path(tmp) / f"run-{state}", spoof.monitor)
                trainer.num_sanity_val_steps = 0
                started = time.perf_counter()
                trainer.fit(module, data)
                rows.append((model, state, loader, time.perf_counter() - started))
    print("\n| model | cache | train loader pass (s) | epoch: train + dev validation (s) |")
    print("|---|---|---:|---:|")
    for model, state, loader, epoch in rows:
        print(f"| {model} | {state} | {loader:.1f} | {epoch:.1f} |")


AUGMENTS = {"none": [], "rawboost:3": ["rawboost:3"], "codec": ["codec"], "rawboost:3 + codec": ["rawboost:3", "codec"]}


def augment_timing(args: argparse.Namespace) -> None:
    """One training epoch (train + dev validation, the dev features cached) without and with each augmentation,
    with 0 and 2 DataLoader workers; the same seed, so every row sees the same utterances."""
    import lightning as L

    from lcnn.tasks import get_task
    from lcnn.train import build_trainer

    spoof = get_task("spoof")
    rows = []
    # Codec rows once per --ffmpeg binary (through $LCNN_FFMPEG, which the workers inherit), else the default.
    variants = []
    for name, augment in AUGMENTS.items():
        if name in args.augments:
            for ffmpeg in args.ffmpeg if args.ffmpeg and "codec" in name else [None]:
                variants.append((f"{name} ({Path(ffmpeg).name})" if ffmpeg else name, augment, ffmpeg))
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            for workers in args.workers:
                for name, augment, ffmpeg in variants:
                    if ffmpeg:
                        os.environ["LCNN_FFMPEG"] = ffmpeg
                    else:
                        os.environ.pop("LCNN_FFMPEG", None)
                    cfg = _cfg(args, model, epochs=1, patience=0, cache_dir=f"{tmp}/cache", num_workers=workers,
                               augment=augment or None)  # fmt: skip
                    L.seed_everything(0, verbose=False)
                    module, data = spoof.build(cfg)
                    if not rows:  # fill the cache of the clean features first, for every row alike
                        for loader in (data.train_dataloader(), data.val_dataloader()):
                            for _ in loader:
                                pass
                    trainer = build_trainer(cfg, Path(tmp) / f"run-{model}-{workers}-{len(rows)}", spoof.monitor)
                    trainer.num_sanity_val_steps = 0
                    started = time.perf_counter()
                    trainer.fit(module, data)
                    rows.append((model, workers, name, time.perf_counter() - started))
                    print(f"{model} workers {workers} {name}: {rows[-1][3]:.1f} s", flush=True)
    print("\n| model | workers | augmentation | epoch: train + dev validation (s) | against none |")
    print("|---|---:|---|---:|---:|")
    base = {(m, w): t for m, w, name, t in rows if name == "none"}
    for model, workers, name, seconds in rows:
        against = f"{seconds / base[model, workers]:.2f}x" if (model, workers) in base else "-"
        print(f"| {model} | {workers} | {name} | {seconds:.1f} | {against} |")


def accuracy(args: argparse.Namespace) -> None:
    """Train every model for every seed; print per-seed rows and mean +- std (sample std over seeds)."""
    from lcnn.train import train

    stamp = time.strftime("%Y%m%d-%H%M%S")
    runs = []
    for model in args.models:
        out = f"runs/bench-spoof-{model}-{stamp}"
        cfg = _cfg(args, model, seeds=list(args.seeds), out=out, cache_dir=args.cache_dir)
        started = time.perf_counter()
        train(cfg)
        print(f"{model}: {len(args.seeds)} seeds in {time.perf_counter() - started:.0f} s", flush=True)
        runs.append(Path(out))
    print_table(runs)


def print_table(runs: list[Path]) -> None:
    """The EER table of finished run folders (``summary.json`` of several seeds or one ``metrics.json``)."""
    cols = ["dev_eer", "eval_eer", *(f"eer_{a}" for a in ATTACKS), "eval_frr", "eval_far"]
    head = ["dev", "eval pooled", *ATTACKS, "eval FRR @dev thr", "eval FAR @dev thr"]
    print("\nEER (%) on MiniSpoof; the threshold is the dev EER threshold; A04, A05 unseen in training\n")
    print("| model | seed | " + " | ".join(head) + " | epochs (best) | fit s |")
    print("|---|---|" + "---:|" * (len(head) + 2))
    for run in runs:
        config = json.loads((run / "config.json").read_text())
        if (run / "summary.json").exists():
            per_seed = json.loads((run / "summary.json").read_text())["per_seed"]
        else:
            per_seed = {config["seeds"][0]: json.loads((run / "metrics.json").read_text())}
        model = config["model"]
        for seed, m in per_seed.items():
            cells = " | ".join(f"{100 * m[c]:.2f}" for c in cols)
            epochs = f"{m['epochs_trained']} ({m['best_epoch']})"
            print(f"| {model} | {seed} | {cells} | {epochs} | {m['fit_seconds']:.0f} |")
        if len(per_seed) > 1:
            cells = []
            for c in cols:
                values = [100 * m[c] for m in per_seed.values()]
                cells.append(f"**{statistics.fmean(values):.2f}** ± {statistics.stdev(values):.2f}")
            print(f"| {model} | mean ± std | " + " | ".join(cells) + " | | |")
    print("\nruns: " + ", ".join(str(r) for r in runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="MiniSpoof folder (default: ../shared/data/minispoof)")
    parser.add_argument("--models", nargs="+", default=["lcnn", "lcnn_lstm"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None,
                        help="default: the recipe's (minispoof: 20, early stop on dev EER)")
    parser.add_argument("--loss", default=None, help="sigmoid (default), softmax or ocsoftmax")
    parser.add_argument("--frontend", default=None, help="lfcc or spec (default: the recipe's; minispoof: spec)")
    parser.add_argument("--extra", default=None, help="JSON of further config overrides, e.g. '{\"frames\": 100}'")
    parser.add_argument("--cache-dir", default=None, help="feature cache for the accuracy runs")
    parser.add_argument("--only", choices=["timing", "augment", "accuracy"], default=None)
    parser.add_argument("--report", nargs="+", type=Path, metavar="RUN", help="only print the table of finished runs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 2], help="augment: DataLoader workers")
    parser.add_argument("--augments", nargs="+", default=list(AUGMENTS), metavar="NAME",
                        help=f"augment: the rows, of {', '.join(map(repr, AUGMENTS))}")
    parser.add_argument("--ffmpeg", nargs="+", metavar="BINARY",
                        help="augment: codec rows once per ffmpeg binary (default: the library's choice)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.report:
        print_table(args.report)
        return
    from lcnn.benchmark import machine_report

    print(machine_report(args.threads, models=[("lcnn_lstm", None)] * ("lcnn_lstm" in args.models)) + "\n", flush=True)
    if args.only in (None, "timing"):
        timing(args)
    if args.only in (None, "augment"):
        augment_timing(args)
    if args.only in (None, "accuracy"):
        accuracy(args)


if __name__ == "__main__":
    main()
