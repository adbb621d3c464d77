"""The accuracy guard of issue 17: does bf16 autocast training keep a task's result? fp32 against bf16, several
seeds each, for the article's LCNN on MNIST-5k (test accuracy) and lcnn_lstm on MiniSpoof (eval EER).

    python benchmarks/bf16_accuracy.py --mnist ../shared/data/mnist-5k --minispoof ../shared/data/minispoof
    python benchmarks/bf16_accuracy.py --report runs/bf16-classify-lcnn-32-true runs/bf16-classify-lcnn-bf16-mixed

bf16 keeps the result where its mean is no worse than fp32's by more than the fp32 seeds' spread (their
sample standard deviation); such a task gets a ``"bf16-mixed"`` entry in ``lcnn.precision.KEEPS_RESULT`` (the
line to paste is printed), and only then may ``--precision auto`` train it in bf16. The others keep fp32.
Runs go to ``runs/bf16-TASK-MODEL-PRECISION`` (``seed-N`` inside). Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

# task -> (data, model, the metric, whether higher is better, its name in the table)
TASKS = {
    "classify": ("mnist", "lcnn", "test_acc", True, "test accuracy"),
    "spoof": ("minispoof", "lcnn_lstm", "eval_eer", False, "eval EER"),
}
PRECISIONS = ("32-true", "bf16-mixed")


def keeps_result(fp32: list[float], bf16: list[float], higher_is_better: bool) -> tuple[bool, float, float]:
    """``(bf16 keeps the result, what bf16 costs (mean fp32 - mean bf16, in the metric's better direction),
    the fp32 seeds' spread)``."""
    cost = statistics.fmean(fp32) - statistics.fmean(bf16)
    cost = cost if higher_is_better else -cost
    spread = statistics.stdev(fp32) if len(fp32) > 1 else 0.0
    return cost <= spread, cost, spread


def per_seed(run: Path) -> dict[str, dict]:
    """A finished run folder's metrics per seed (``summary.json`` of several seeds, or one ``metrics.json``)."""
    if (run / "summary.json").is_file():
        return json.loads((run / "summary.json").read_text())["per_seed"]
    config = json.loads((run / "config.json").read_text())
    return {str(config["seeds"][0]): json.loads((run / "metrics.json").read_text())}


def report(runs: list[Path]) -> str:
    """The table of finished fp32 / bf16 run pairs (their config.json says task, model and precision)."""
    found: dict[tuple[str, str], dict[str, dict]] = {}
    for run in runs:
        config = json.loads((run / "config.json").read_text())
        found.setdefault((config["task"], config["model"]), {})[config["precision"]] = per_seed(run)
    lines = ["| task | model | metric | precision | per seed | mean ± std | fit s (mean) |",
             "|---|---|---|---|---|---|---:|"]
    verdicts = []
    for (task, model), by_precision in found.items():
        metric, higher, label = TASKS[task][2:]
        values = {}
        for precision, seeds in by_precision.items():
            values[precision] = [100 * m[metric] for m in seeds.values()]
            fit = statistics.fmean(m["fit_seconds"] for m in seeds.values())
            spread = statistics.stdev(values[precision]) if len(values[precision]) > 1 else 0.0
            lines.append(f"| {task} | {model} | {label} (%) | {precision} | "
                         f"{' / '.join(f'{v:.2f}' for v in values[precision])} | "
                         f"{statistics.fmean(values[precision]):.2f} ± {spread:.2f} | {fit:.0f} |")  # fmt: skip
        if set(values) >= set(PRECISIONS):
            kept, cost, spread = keeps_result(values["32-true"], values["bf16-mixed"], higher)
            seeds = len(values["32-true"])
            verdicts.append(f"- {task} / {model}: bf16 costs {cost:+.2f} points of {label} against a spread of "
                            f"{spread:.2f} over {seeds} fp32 seeds: "
                            + (f'**keeps the result**; add to the ("{task}", "{model}") entry of '
                               "`lcnn.precision.KEEPS_RESULT`:\n"
                               f'  `"bf16-mixed": "{TASKS[task][0]}, {seeds} seeds: '
                               f"{statistics.fmean(values['bf16-mixed']):.2f} % in bf16 against "
                               f"{statistics.fmean(values['32-true']):.2f} ± {spread:.2f} % in fp32 "
                               f'(benchmarks/RESULTS-...md)",`' if kept
                               else "**does not keep it**: the task stays fp32"))  # fmt: skip
    return "\n".join(lines + [""] + verdicts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", metavar="DIR", help="MNIST-5k (IDX files): the article's LCNN, article recipe")
    parser.add_argument("--minispoof", metavar="DIR", help="MiniSpoof: lcnn_lstm, the minispoof recipe")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="default: the recipe's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--report", nargs="+", type=Path, metavar="RUN", help="only print the table of finished runs")
    args = parser.parse_args()
    if args.report:
        print(report(args.report))
        return
    import torch

    from lcnn.benchmark import machine_report
    from lcnn.train import resolve_config, train

    torch.set_num_threads(args.threads)
    print(machine_report(args.threads, models=[("lcnn", (1, 28, 28)), ("lcnn_lstm", None)]) + "\n", flush=True)
    runs = []
    for task, data_dir in (("classify", args.mnist), ("spoof", args.minispoof)):
        if not data_dir:
            continue
        data, model = TASKS[task][:2]
        for precision in PRECISIONS:
            out = Path("runs") / f"bf16-{task}-{model}-{precision}"
            extra = {"epochs": args.epochs} if args.epochs else {}
            train(resolve_config(task, data, data_dir=data_dir, model=model, precision=precision,
                                 seeds=list(args.seeds), out=str(out), overwrite=True, **extra))  # fmt: skip
            runs.append(out)
    print(report(runs))


if __name__ == "__main__":
    main()
