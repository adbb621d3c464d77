"""Int8 of the LCNN spoof family (``lcnn.inference.quantize_int8_dynamic``, what ``lcnn score --precision int8``
runs) against fp32: the network's speed per 3-s utterance, and the scores of trained checkpoints.

    python benchmarks/int8_spoof.py --speed
    python benchmarks/int8_spoof.py --checkpoints runs/lstm/seed-*/checkpoints/best.ckpt \\
        --protocol DATA/LA/ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.eval.trl.txt \\
        --audio-dir DATA/LA/ASVspoof2019_LA_eval/flac [--limit 600]

Speed: each model on one 301 x 60 LFCC input (3 s at a 10 ms hop) alone, as scoring runs it, on one thread;
fp32 (channels-last, as trained checkpoints run) and int8 interleaved in one process, the median of the repeats.
The calibrated int8 of ``quantize_int8`` (ranges from this very input) is shown for lcnn_lstm as the ceiling of
int8 kernels; scoring cannot use it (a score would depend on the files calibrated on). Scores: each trial alone,
fp32 then int8: correlation, largest and mean difference, EER and minDCF of both (labelled protocols).
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from lcnn.audio.pipeline import FeaturePipeline
from lcnn.benchmark import machine_report
from lcnn.inference import quantize_int8, quantize_int8_dynamic
from lcnn.metrics import compute_eer, min_dcf
from lcnn.models import create_model
from lcnn.score import read_input
from lcnn.tasks import load_task

MODELS = ("lcnn_lstm", "lcnn_attention", "lcnn_fixed")


class _Dequantized(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.dequantize() if x.is_quantized else x


def speed(repeats: int) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = (torch.randn(1, 1, 301, 60) * 3).contiguous(memory_format=torch.channels_last)
    print("| model | path | ms per utterance (median) | min | vs fp32 |\n|---|---|---:|---:|---:|")
    for name in MODELS:
        fp32 = create_model(name, num_classes=1).eval().to(memory_format=torch.channels_last)
        paths = {"fp32": fp32, "int8 (each input's ranges)": quantize_int8_dynamic(fp32)}
        if name == "lcnn_lstm":
            calibrated = quantize_int8(fp32, x, run=lambda m, v: m(v))
            calibrated.features.append(_Dequantized())  # the LSTM takes fp32
            paths["int8 calibrated on this input (ceiling, not usable)"] = calibrated
        times: dict[str, list[float]] = {path: [] for path in paths}
        with torch.inference_mode():
            for model in paths.values():
                model(x)
            for _ in range(repeats):
                for path, model in paths.items():
                    start = time.perf_counter()
                    for _ in range(4):
                        model(x)
                    times[path].append((time.perf_counter() - start) / 4 * 1000)
        base = float(np.median(times["fp32"]))
        for path, ts in times.items():
            median = float(np.median(ts))
            print(f"| {name} | {path} | {median:.2f} | {min(ts):.2f} | {base / median:.2f}x |")


def scores(checkpoints: list[str], protocol: str, audio_dir: str | None, limit: int | None) -> None:
    table = read_input(protocol, audio_dir)
    index = np.arange(len(table))
    if limit and limit < len(table):
        index = index[:: len(table) // limit][:limit]
    keys = [(table.meta(int(i)) or "- -").split()[-1] for i in index]
    bona = np.array([k == "bonafide" for k in keys])
    print("| checkpoint | trials | corr | max abs diff | mean abs diff | fp32 score std | EER fp32 / int8 (%) | "
          "minDCF fp32 / int8 |\n|---|---:|---:|---:|---:|---:|---:|---:|")  # fmt: skip
    for ckpt in checkpoints:
        module = load_task(ckpt)[0].eval()
        fp32 = module.model
        int8 = quantize_int8_dynamic(fp32)
        pipeline = FeaturePipeline(module.hparams.frontend)
        got: dict[str, list[float]] = {"fp32": [], "int8": []}
        with torch.inference_mode():
            for i in index:
                x = pipeline(table.path(int(i)))[None, None]
                lengths = torch.tensor([x.shape[2]])
                for path, model in (("fp32", fp32), ("int8", int8)):
                    module.model = model
                    got[path].append(float(module.score(module(x, lengths))[0]))
                module.model = fp32
        a, b = np.array(got["fp32"]), np.array(got["int8"])
        diff = np.abs(a - b)
        corr = np.corrcoef(a, b)[0, 1]
        row = f"| {ckpt} | {len(a)} | {corr:.6f} | {diff.max():.4f} | {diff.mean():.4f} | {a.std():.3f}"
        if bona.any() and (~bona).any():
            eers = [100 * compute_eer(s[bona], s[~bona])[0] for s in (a, b)]
            dcfs = [min_dcf(s[bona], s[~bona]) for s in (a, b)]
            row += f" | {eers[0]:.2f} / {eers[1]:.2f} | {dcfs[0]:.4f} / {dcfs[1]:.4f} |"
        else:
            row += " | - | - |"
        print(row)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--speed", action="store_true", help="time the three networks on one 3-s utterance")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--checkpoints", nargs="*", default=[])
    p.add_argument("--protocol", help="the trials to score (any INPUT of lcnn score)")
    p.add_argument("--audio-dir")
    p.add_argument("--limit", type=int, help="at most this many trials, spread over the list")
    args = p.parse_args()
    print(machine_report(threads=1, models=()))
    if args.speed:
        speed(args.repeats)
    if args.checkpoints:
        scores(args.checkpoints, args.protocol, args.audio_dir, args.limit)


if __name__ == "__main__":
    main()
