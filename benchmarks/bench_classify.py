"""Speed of the article's LCNN: our PyTorch ``build_lcnn((1, 28, 28), 10)`` against the article's Keras model,
in one run, on CPU.

Rows are PyTorch configurations (the plain fp32 NCHW eager baseline, channels-last, bf16 autocast, optionally
``torch.compile``) and the article's Keras model (``benchmarks/keras_lcnn.py``, run with the separate
TensorFlow environment that ``benchmarks/keras_env.sh`` creates). Columns: training images/s (forward,
backward and an Adam step on a batch), inference images/s (one batch), the peak resident memory of the
process that measured the row, the ratio to Keras, and the training's share of the bf16 matmul peak (its
multiply-accumulates per second, 3x the forward's per image, over a large bf16 matmul's on the same
threads). Every row runs in its own subprocess, so its peak memory is its own; ``--rounds N`` runs the
whole set N times, interleaved, and keeps each row's best (the least disturbed by other processes on a
shared machine). Rows without ``fastMFM`` run the MFM through plain ``torch.maximum``, as a direct port
would. ``lcnn_lstm`` rows time the ASVspoof baseline on 3-second LFCC inputs (300 frames x 60).

The report starts with where it ran (``lcnn.benchmark.machine_report``: CPU, flags, matmul peaks, the
precision probe's tables). ``*`` marks the library's default training configuration on this machine and
``†`` its default inference (``lcnn.precision.choose`` for classify / spoof: channels-last, the lean MFM
backward, the tuned allocator and the precision the probe chose); the lines under the table give each
default against the best row of its model, measured in the same run. A last line puts the goals in
arithmetic terms: the multiply-accumulates per second they need against the matmul peaks.

    .venv/bin/python benchmarks/bench_classify.py                       # 2 threads, batch 256, 2 rounds
    .venv/bin/python benchmarks/bench_classify.py --rounds 3 --compile --json runs/bench_classify.json
    bash benchmarks/keras_env.sh                                          # once, for the Keras row

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KERAS_SCRIPT = Path(__file__).resolve().parent / "keras_lcnn.py"

# name -> (channels_last, bf16 autocast, torch.compile, fast MFM backward, tuned allocator, int8 inference)
CONFIGS: dict[str, tuple[bool, bool, bool, bool, bool, bool]] = {
    "torch fp32 NCHW eager (plain)": (False, False, False, False, False, False),
    "torch fp32 channels-last": (True, False, False, False, False, False),
    "torch bf16 NCHW": (False, True, False, False, False, False),
    "torch bf16 channels-last": (True, True, False, False, False, False),
    "torch fp32 CL +fastMFM": (True, False, False, True, False, False),
    "torch fp32 CL +fastMFM +malloc": (True, False, False, True, True, False),
    "torch bf16 CL +fastMFM +malloc": (True, True, False, True, True, False),
    # training as the row above; inference through optimize_for_inference(precision="int8"), one worker a thread
    "torch fp32 CL ... +int8 inference": (True, False, False, True, True, True),
}
# lcnn_lstm on 3 s of LFCCs (1x300x60), with the library's fast settings in fp32 and in bf16
LSTM_CONFIGS: dict[str, tuple[bool, bool, bool, bool, bool, bool]] = {
    "lcnn_lstm fp32 CL +fastMFM +malloc": (True, False, False, True, True, False),
    "lcnn_lstm bf16 CL +fastMFM +malloc": (True, True, False, True, True, False),
}
LSTM_SHAPE = (1, 300, 60)
# what lcnn.precision.choose may pick -> the row that runs it (training and inference)
TRAIN_ROWS = {"32-true": "fp32 CL +fastMFM +malloc", "bf16-mixed": "bf16 CL +fastMFM +malloc"}
INFER_ROWS = {"fp32": "fp32 CL +fastMFM +malloc", "bf16": "bf16 CL +fastMFM +malloc",
              "int8": "fp32 CL ... +int8 inference"}
COMPILE_CONFIGS: dict[str, tuple[bool, bool, bool, bool, bool, bool]] = {
    "torch fp32 CL compile": (True, False, True, False, False, False),
    "torch bf16 CL compile": (True, True, True, False, False, False),
    "torch fp32 CL compile +malloc": (True, False, True, False, True, False),
}


def use_plain_mfm() -> None:
    """Route ``MaxFeatureMap("2/1")`` through plain ``torch.maximum`` (autograd's own backward), as a direct
    port of the article does, for the rows without ``fastMFM``; the library uses ``lcnn.layers.max_feature_map``."""
    import torch

    from lcnn.layers import MaxFeatureMap

    original = MaxFeatureMap.forward

    def forward(self, x):
        return torch.maximum(*x.chunk(2, self.dim)) if self.kind == "2/1" else original(self, x)

    MaxFeatureMap.forward = forward


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="PyTorch LCNN vs the article's Keras LCNN: training and inference speed")
    p.add_argument("--threads", type=int, default=2, help="intra- and inter-op threads for both frameworks")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lstm-batch-size", type=int, default=32, help="batch of the lcnn_lstm rows (3 s utterances)")
    p.add_argument("--train-steps", type=int, default=10, help="timed training steps per repeat")
    p.add_argument("--infer-steps", type=int, default=20, help="timed inference batches per repeat")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats inside a process (best kept)")
    p.add_argument("--rounds", type=int, default=2, help="runs of the whole set, interleaved (best kept)")
    p.add_argument("--compile", action="store_true", help="add torch.compile rows (about a minute of compiling each)")
    p.add_argument("--only", nargs="*", help="run only the torch rows whose names contain one of these words")
    p.add_argument("--keras-python", default=str(ROOT / ".venv-keras" / "bin" / "python"),
                   help="python of the TensorFlow environment (benchmarks/keras_env.sh)")
    p.add_argument("--no-keras", action="store_true", help="skip the Keras row")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                   help="before each row wait (up to SECONDS) until other processes leave the CPU idle")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="'wall': images/s; 'cpu': images per CPU-second of the measuring process, steadier on a busy "
                        "machine (use with --threads 1: idle threads spinning count as CPU time)")  # fmt: skip
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# --------------------------------------------------------------------------------------------------
# One PyTorch configuration, measured in this process (``--worker NAME``)
# --------------------------------------------------------------------------------------------------


def run_worker(args: argparse.Namespace) -> dict:
    import torch
    from torch import nn

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)

    from lcnn import build_lcnn, create_model
    from lcnn.models import count_macs
    from lcnn.speed import prepare_input, prepare_model

    channels_last, bf16, compiled, fast_mfm, malloc, int8 = {**CONFIGS, **COMPILE_CONFIGS, **LSTM_CONFIGS}[args.worker]
    lstm = args.worker in LSTM_CONFIGS
    if malloc:
        from lcnn.speed import tune_cpu_allocator

        malloc = tune_cpu_allocator()
    if not fast_mfm:
        use_plain_mfm()
    plain = args.worker == next(iter(CONFIGS))
    torch.manual_seed(0)
    shape, classes = (LSTM_SHAPE, 2) if lstm else ((1, 28, 28), 10)
    net = create_model("lcnn_lstm", num_classes=2, input_shape=LSTM_SHAPE) if lstm else build_lcnn(shape, classes)
    macs = count_macs(net.eval(), torch.rand(2, *shape))
    model = prepare_model(net, channels_last=channels_last)
    bs = args.lstm_batch_size if lstm else args.batch_size
    x = prepare_input(torch.rand(bs, *shape), channels_last=channels_last)
    y = torch.randint(0, classes, (bs,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()  # softmax + categorical cross-entropy, as the article's compile()
    train_forward = torch.compile(model) if compiled else model

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = loss_fn(train_forward(x), y)
        loss.backward()
        optimizer.step()

    clock = time.perf_counter if args.clock == "wall" else time.process_time

    def timed(fn, steps: int) -> float:
        best = 0.0
        for _ in range(args.repeats):
            t0 = clock()
            for _ in range(steps):
                fn()
            best = max(best, bs * steps / (clock() - t0))
        return best

    model.train()
    t0 = time.perf_counter()
    train_step()  # the first step compiles (torch.compile) or creates oneDNN primitives
    train_first_s = time.perf_counter() - t0
    for _ in range(2):
        train_step()
    train_ips = timed(train_step, args.train_steps)

    model.eval()
    infer_forward = torch.compile(model) if compiled else model  # eval mode: a separate graph
    if int8:
        from lcnn.inference import optimize_for_inference

        calibration = torch.rand(bs, *shape, generator=torch.Generator().manual_seed(1))
        infer_forward = optimize_for_inference(model, precision="int8", calibration=calibration)
    grad_mode = torch.no_grad() if plain else torch.inference_mode()
    with grad_mode, autocast():
        t0 = time.perf_counter()
        infer_forward(x)
        infer_first_s = time.perf_counter() - t0
        for _ in range(2):
            infer_forward(x)
        infer_ips = timed(lambda: infer_forward(x), args.infer_steps)

    return {
        "name": args.worker,
        "channels_last": channels_last,
        "bf16": bf16,
        "compile": compiled,
        "fast_mfm": fast_mfm,
        "tuned_allocator": malloc,
        "int8_inference": int8,
        "train_img_s": round(train_ips, 1),
        "infer_img_s": round(infer_ips, 1),
        "train_first_step_s": round(train_first_s, 2),
        "infer_first_call_s": round(infer_first_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "batch_size": bs,
        "macs_per_example": macs,
    }


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------


def cpu_busy(seconds: float = 2.0) -> float:
    """Percent of all CPUs busy over ``seconds`` (from /proc/stat; 0 where unavailable)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
        return sum(fields), fields[3] + fields[4]

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except OSError:
        return 0.0
    return 100.0 * (1 - (idle1 - idle0) / max(total1 - total0, 1))


def wait_idle(limit: float) -> float:
    """Wait up to ``limit`` seconds for the CPU to be idle (< 10 % busy); returns the last busy figure."""
    deadline = time.monotonic() + limit
    busy = cpu_busy()
    while busy >= 10 and time.monotonic() < deadline:
        busy = cpu_busy()
    return busy


def run_json(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd`` and parse the last JSON line of its stdout."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        stdout, stderr = proc.communicate()
    finally:  # interrupted: leave no worker behind
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = "\n".join((stderr or stdout).splitlines()[-15:])
    raise RuntimeError(f"{' '.join(cmd[:3])} ... failed (exit {proc.returncode}):\n{tail}")


def common_args(args: argparse.Namespace, lstm: bool = False) -> list[str]:
    return ["--threads", str(args.threads), "--batch-size", str(args.batch_size), "--train-steps",
            str(args.train_steps), "--infer-steps", str(args.infer_steps), "--repeats", str(args.repeats),
            "--clock", args.clock] + (["--lstm-batch-size", str(args.lstm_batch_size)] if lstm else [])  # fmt: skip


def keep_best(best: dict[str, dict], row: dict) -> None:
    old = best.get(row["name"])
    if old is None:
        best[row["name"]] = {**row, "train_img_s_rounds": [row["train_img_s"]],
                             "infer_img_s_rounds": [row["infer_img_s"]]}  # fmt: skip
        return
    old["train_img_s_rounds"].append(row["train_img_s"])
    old["infer_img_s_rounds"].append(row["infer_img_s"])
    for key in ("train_img_s", "infer_img_s"):
        old[key] = max(old[key], row[key])
    old["peak_rss_mb"] = max(old["peak_rss_mb"], row["peak_rss_mb"])


def library_defaults() -> dict[str, dict[str, str]]:
    """Per model (row prefix): the rows of the library's default training and inference on this machine, from
    what ``lcnn.precision.choose`` picks (classify for the article's LCNN, spoof for lcnn_lstm), and why."""
    from lcnn.precision import choose

    defaults = {}
    for prefix, task, model, shape in (("torch", "classify", "lcnn", (1, 28, 28)), ("lcnn_lstm", "spoof", "lcnn_lstm",
                                                                                    LSTM_SHAPE)):  # fmt: skip
        choice = choose(task, model, shape)
        defaults[prefix] = {"train": f"{prefix} {TRAIN_ROWS[choice['train']]}",
                            "infer": f"{prefix} {INFER_ROWS[choice['infer']]}", "precision": choice["train"],
                            "inference": choice["infer"], "note": choice["note"]}  # fmt: skip
    return defaults


def peak_share(row: dict, peaks: dict[str, float]) -> float:
    """Training multiply-accumulates per second (3x the forward's per example) over the bf16 matmul peak."""
    return row["train_img_s"] * 3 * row["macs_per_example"] / (peaks["bf16"] * 1e9)


def format_table(rows: list[dict], keras: dict | None, defaults: dict[str, dict[str, str]],
                 peaks: dict[str, float]) -> str:  # fmt: skip
    columns = ("train img/s", "infer img/s", "peak RSS MB", "train/Keras", "infer/Keras", "train/bf16pk")
    header = f"{'config':<38}" + "".join(f"{c:>13}" for c in columns)
    lines = [header, "-" * len(header)]
    trains = {d["train"] for d in defaults.values()}
    infers = {d["infer"] for d in defaults.values()}

    def ratio(row: dict, key: str) -> str:
        return f"{row[key] / keras[key]:.2f}x" if keras and not row["name"].startswith("lcnn_lstm") else "-"

    for row in rows:
        mark = " " + ("*" if row["name"] in trains else "") + ("†" if row["name"] in infers else "")
        lines.append(
            f"{row['name'] + mark.rstrip():<38}{row['train_img_s']:>13.0f}{row['infer_img_s']:>13.0f}"
            f"{row['peak_rss_mb']:>13.0f}{ratio(row, 'train_img_s'):>13}{ratio(row, 'infer_img_s'):>13}"
            f"{peak_share(row, peaks):>13.0%}"
        )
    if keras:
        name = f"keras (article{', XLA' if keras.get('jit_compile') else ''})"
        share = keras["train_img_s"] * 3 * rows[0]["macs_per_example"] / (peaks["bf16"] * 1e9) if rows else 0.0
        lines.append(f"{name:<38}{keras['train_img_s']:>13.0f}{keras['infer_img_s']:>13.0f}"
                     f"{keras['peak_rss_mb']:>13.0f}{'1.00x':>13}{'1.00x':>13}{share:>13.0%}")  # fmt: skip
    return "\n".join(lines)


def defaults_against_best(rows: list[dict], defaults: dict[str, dict[str, str]]) -> list[str]:
    """One line per model: its default training and inference rows against the best rows of that model in
    this run (issue 17: within 10 %)."""
    lines = []
    for prefix, default in defaults.items():
        own = [r for r in rows if r["name"].split(" ")[0] == prefix]
        by_name = {r["name"]: r for r in own}
        parts = []
        for part, key in (("train", "train_img_s"), ("infer", "infer_img_s")):
            row = by_name.get(default[part])
            if row is None:
                parts.append(f"{part}: default row {default[part]!r} not measured")
                continue
            best = max(own, key=lambda r: r[key])
            share = row[key] / best[key]
            parts.append(f"{part} {row[key]:,.0f} = {share:.0%} of the best ({best[key]:,.0f}, {best['name']})"
                         f"{'' if share >= 0.9 else ' - NOT within 10 %'}")  # fmt: skip
        if own:
            lines.append(f"default {prefix} (train {default['precision']}, infer {default['inference']}): "
                         + "; ".join(parts) + f" [{default['note']}]")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so run_json's cleanup runs on `kill`
    if args.worker:
        print(json.dumps(run_worker(args)), flush=True)
        return

    import torch

    from lcnn.benchmark import machine_report, matmul_peaks

    torch.set_num_threads(args.threads)
    peaks = matmul_peaks(args.threads)
    print(machine_report(args.threads, peaks, models=[("lcnn", (1, 28, 28)), ("lcnn_lstm", LSTM_SHAPE)]) + "\n",
          flush=True)  # fmt: skip
    configs = dict(CONFIGS)
    if args.compile:
        configs.update(COMPILE_CONFIGS)
    configs.update(LSTM_CONFIGS)
    if args.only:
        configs = {k: v for k, v in configs.items() if any(w in k for w in args.only)}
    keras_python = Path(args.keras_python)
    run_keras = not args.no_keras and keras_python.exists()
    if not args.no_keras and not run_keras:
        print(f"note: {keras_python} not found, the Keras column is skipped. Create the TensorFlow environment "
              f"with `bash benchmarks/keras_env.sh` (or pass --keras-python PATH).", file=sys.stderr)  # fmt: skip

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}
    best: dict[str, dict] = {}
    keras_best: dict | None = None
    loads = []
    for round_ in range(args.rounds):
        loads.append({"round": round_ + 1, "loadavg_before": [round(v, 2) for v in os.getloadavg()]})
        for name in configs:
            busy = wait_idle(args.wait_idle) if args.wait_idle else None
            row = run_json([sys.executable, __file__, "--worker", name, *common_args(args, name in LSTM_CONFIGS)], env)
            row["cpu_busy_before_pct"] = None if busy is None else round(busy, 1)
            keep_best(best, row)
            print(f"round {round_ + 1}: {name}: train {row['train_img_s']:.0f} img/s, infer {row['infer_img_s']:.0f} "
                  f"img/s, first step {row['train_first_step_s']} s", file=sys.stderr)  # fmt: skip
        if run_keras:
            if args.wait_idle:
                wait_idle(args.wait_idle)
            k = run_json([str(keras_python), str(KERAS_SCRIPT), *common_args(args)], env)
            print(f"round {round_ + 1}: keras: train {k['train_img_s']:.0f} img/s, infer {k['infer_img_s']:.0f} img/s",
                  file=sys.stderr)
            if keras_best is None:
                keras_best = {**k, "train_img_s_rounds": [], "infer_img_s_rounds": []}
            keras_best["train_img_s_rounds"].append(k["train_img_s"])
            keras_best["infer_img_s_rounds"].append(k["infer_img_s"])
            for key in ("train_img_s", "infer_img_s", "peak_rss_mb"):
                keras_best[key] = max(keras_best[key], k[key])
        loads[-1]["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]

    rows = list(best.values())
    defaults = library_defaults()
    first = rows[0] if rows else {}
    print(f"torch {torch.__version__} (threads {first.get('threads')}, interop {first.get('interop_threads')})"
          + (f"; tensorflow {keras_best['tensorflow']} / keras {keras_best['keras']} (intra-op "
             f"{keras_best['intra_op_threads']}, inter-op {keras_best['inter_op_threads']}, "
             f"jit_compile {keras_best['jit_compile']})" if keras_best else "; Keras skipped"))  # fmt: skip
    load_text = "; ".join(f"round {ld['round']}: {ld['loadavg_before'][0]} -> {ld['loadavg_after'][0]}" for ld in loads)
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, batch {args.batch_size} (lcnn_lstm "
          f"{args.lstm_batch_size}), best of "
          f"{args.rounds} rounds x {args.repeats} repeats; 1-min loadavg {load_text}")
    if keras_best:
        print(f"parameters: torch {first.get('trainable_params', 0):,} trainable; keras "
              f"{keras_best['trainable_params']:,} trainable + {keras_best['non_trainable_params']:,} non-trainable")
    if args.clock == "cpu":
        print("throughputs are images per CPU-second of the measuring process (--clock cpu), not per second")
    print(format_table(rows, keras_best, defaults, peaks))
    print("* = the library's default training here, † its default inference (lcnn.precision): channels-last (CL), "
          "fastMFM = MaxFeatureMap 2/1 through lcnn.layers.max_feature_map (same forward, lean backward), malloc = "
          "tune_cpu_allocator(); train/bf16pk = training MACs/s (3x the forward's) over the bf16 matmul peak")
    print("\n".join(defaults_against_best(rows, defaults)))
    bound = arithmetic_bound(keras_best, peaks)
    print(bound["text"])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"torch": rows, "keras": keras_best, "loadavg": loads, "peaks": peaks,
                                         "library_defaults": defaults, "bound": bound}, indent=2))  # fmt: skip


def arithmetic_bound(keras: dict | None, peaks: dict[str, float]) -> dict:
    """What the speed goals (2.5x Keras training, 4x inference) ask of the CPU's arithmetic: the model's
    multiply-accumulates per image times the target throughput, against the matmul peaks (GMAC/s, fp32,
    bf16 and int8) on the threads of the run."""
    import torch

    from lcnn import build_lcnn
    from lcnn.models import count_macs

    macs = count_macs(build_lcnn((1, 28, 28), 10).eval(), torch.rand(1, 1, 28, 28))
    out = {"macs_per_image": macs, "matmul_peak_gmac_s": {k: round(v, 1) for k, v in peaks.items()}}
    text = (f"arithmetic: {macs / 1e6:.1f} M MACs per image forward, about 3x that per training image; matmul "
            f"peak: {peaks['fp32']:.0f} GMAC/s fp32, {peaks['bf16']:.0f} bf16, {peaks['int8']:.0f} int8")
    if keras:
        need_train = 2.5 * keras["train_img_s"] * 3 * macs / 1e9
        need_infer = 4.0 * keras["infer_img_s"] * macs / 1e9
        out.update(goal_train_gmac_s=round(need_train, 1), goal_infer_gmac_s=round(need_infer, 1))
        text += (f"\n2.5x Keras in training needs {need_train:.0f} GMAC/s and 4x in inference {need_infer:.0f} GMAC/s, "
                 f"that is {need_train / peaks['fp32']:.0%} of the fp32 matmul peak in training "
                 f"({need_train / peaks['bf16']:.0%} of the bf16 one) and {need_infer / peaks['fp32']:.0%} in "
                 f"inference ({need_infer / peaks['int8']:.0%} of the int8 one)")
    out["text"] = text
    return out


if __name__ == "__main__":
    main()
