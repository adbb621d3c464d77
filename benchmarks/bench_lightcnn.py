"""LightCNN face-embedding throughput on this CPU (LightCNN-29v2 unless ``--model`` says otherwise): the
official way of running it versus the fast paths of :func:`lcnn.inference.optimize_for_inference`,
side by side in one run.

    python benchmarks/bench_lightcnn.py                       # batch 32, 2 threads, every variant
    python benchmarks/bench_lightcnn.py --model lightcnn9 --variants official,int8+workers
    python benchmarks/bench_lightcnn.py --variants official,compile+winograd --rounds 3
    python benchmarks/bench_lightcnn.py --checkpoint LightCNN_29Layers_V2_checkpoint.pth.tar

"official" runs the model as the official ``extract_features.py`` does: eager, fp32, contiguous NCHW,
under ``no_grad``, the full forward (the released classifier included) returning ``(logits, feature)``.
The other variants compute the 256-d feature with ``InferenceModel.embed``.

Every variant lives in its own worker process (so its peak RSS is its own: weights, workspace and, for
``compile``, the compiler), is warmed up first (compilation included), then the workers take turns:
each round runs every variant for ``--iters`` timed batches, so load from other processes on the machine
hits all variants alike. Throughput is from the median batch time; ``best`` from the fastest batch.
Differences are measured on the embeddings of one batch against the official fp32 ones.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

VARIANTS = {
    # name: (description, optimize_for_inference options, or None for the official way)
    "official": ("eager fp32 NCHW, no_grad, 2-thread ops; forward -> (logits, feature)", None),
    "channels_last": ("eager fp32 channels-last, inference_mode, fused pool", {"winograd": False, "workers": 1}),
    "bf16": ("... with bf16 autocast", {"precision": "bf16", "winograd": False, "workers": 1}),
    "script": (
        "TorchScript trace + freeze, fp32 channels-last",
        {"backend": "script", "winograd": False, "workers": 1},
    ),
    "compile": (
        "torch.compile (inductor, freezing), fp32 channels-last",
        {"backend": "compile", "winograd": False, "workers": 1},
    ),
    "compile+winograd": ("... + Winograd F(4x4,3x3) on the 16x16 maps", {"backend": "compile", "workers": 1}),
    "eager+workers": ("eager channels-last + Winograd, one worker per thread, 1-thread ops", {}),
    "fast path": (
        "compile + Winograd + workers: optimize_for_inference(model, backend='compile')",
        {"backend": "compile"},
    ),
    "int8": ("int8 convolutions (VNNI), multi-threaded ops: precision='int8', workers=1",
             {"precision": "int8", "workers": 1}),
    "int8+workers": ("int8, one worker per thread: optimize_for_inference(model, 'int8', calibration=...)",
                     {"precision": "int8"}),
}
DEFAULT_FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "orl-faces"


def face_batches(folder: Path, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(measured, calibration)`` batches of real faces, grey 128x128 in [0, 1]: the measured batch from the
    last quarter of the people in ``folder`` (one subfolder per person), the calibration batch from the others."""
    import torch

    from lcnn.data.faces import FaceTransform, list_faces
    from lcnn.inference import calibration_subset

    items = list_faces(folder)
    transform = FaceTransform(train=False)
    people = sorted({name for _, name in items})
    last = set(people[-max(1, len(people) // 4) :])
    measured = [p for p, name in items if name in last][:batch]
    calibration = calibration_subset([p for p, name in items if name not in last], batch)
    return torch.stack([transform.load(p) for p in measured]), torch.stack([transform.load(p) for p in calibration])


def _peak_rss_mb() -> float:
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _worker(conn, name: str, args: argparse.Namespace) -> None:
    import torch

    from lcnn.inference import optimize_for_inference
    from lcnn.models import create_model, load_lightcnn, model_info

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.checkpoint:
        model = load_lightcnn(args.checkpoint, args.model)
    else:
        model = create_model(args.model, num_classes=model_info(args.model).released_classes).eval()
    if args.faces:
        x, calibration = face_batches(Path(args.faces), args.batch)
    else:
        x = torch.rand(args.batch, 1, 128, 128, generator=torch.Generator().manual_seed(1))
        calibration = torch.rand(args.batch, 1, 128, 128, generator=torch.Generator().manual_seed(2))
    options = VARIANTS[name][1]
    if options is None:

        def run():
            with torch.no_grad():  # official: Variable(input, volatile=True); _, features = model(input)
                feature = model.embed(x)
                return model.fc2(model.dropout(feature)), feature

        def embed():
            return run()[1]
    else:
        if options.get("precision") == "int8":
            options = {**options, "calibration": calibration}
        fast = optimize_for_inference(model, inplace=True, **options)
        del model

        def embed():
            return fast.embed(x)

        run = embed
    start = time.perf_counter()
    for _ in range(args.warmup):
        run()
    conn.send(("ready", time.perf_counter() - start))
    while True:
        command, value = conn.recv()
        if command == "run":
            times = []
            for _ in range(value):
                t0 = time.perf_counter()
                run()
                times.append(time.perf_counter() - t0)
            conn.send(times)
        elif command == "result":
            conn.send((embed().float().numpy(), _peak_rss_mb()))
        else:
            conn.close()
            return


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lightcnn29v2", choices=["lightcnn9", "lightcnn29", "lightcnn29v2"],
                        help="which grey-input LightCNN to measure (default lightcnn29v2)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds (default 4)")
    parser.add_argument("--iters", type=int, default=2, help="timed batches per variant per round (default 2)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches first (compilation included)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from: {', '.join(VARIANTS)}")
    parser.add_argument("--checkpoint", help="a released .pth.tar of --model (default: random weights)")
    parser.add_argument("--faces", default=str(DEFAULT_FACES) if DEFAULT_FACES.is_dir() else None,
                        help="identity folders of face images: the measured batch and int8's calibration batch "
                             "(default: the ORL faces where present, else uniform noise)")  # fmt: skip
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    if "official" not in names:
        names.insert(0, "official")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by the workers before torch loads

    import numpy as np
    import torch

    print(
        f"{args.model}, batch {args.batch} x 1x128x128, {args.threads} threads, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f}"
    )
    from lcnn.benchmark import machine_report

    print(machine_report(args.threads, models=[(args.model, None)]) + "\n", flush=True)
    context = mp.get_context("spawn")
    workers = {}
    for name in names:  # prepared one at a time so that compiling does not disturb anyone's timing
        parent, child = context.Pipe()
        process = context.Process(target=_worker, args=(child, name, args), daemon=True)
        process.start()
        child.close()  # so that a worker's death reads as EOF here
        try:
            _, seconds = parent.recv()
        except EOFError:
            if name == "official":
                raise SystemExit("the official variant failed: see its traceback above") from None
            print(f"  {name} failed (traceback above): left out", flush=True)
            process.join()
            continue
        print(f"  prepared {name:18s} warm-up {args.warmup} batches in {seconds:6.1f} s", flush=True)
        workers[name] = (process, parent)
    names = [name for name in names if name in workers]
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(args.rounds):
        for name in names if round_index % 2 == 0 else reversed(names):
            workers[name][1].send(("run", args.iters))
            times[name].extend(workers[name][1].recv())
    results = {}
    for name in names:
        process, conn = workers[name]
        conn.send(("result", None))
        results[name] = conn.recv()
        conn.send(("stop", None))
        process.join()
    print(f"  load avg after: {os.getloadavg()[0]:.1f}\n")

    reference = results["official"][0].astype(np.float64)
    base = statistics.median(times["official"])
    header = (
        f"| {'variant':16s} | img/s | best img/s | speed-up | peak RSS MB | max abs diff | max rel diff | min cosine |"
    )
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for name in names:
        embedding, rss = results[name]
        embedding = embedding.astype(np.float64)
        median = statistics.median(times[name])
        diff = np.abs(embedding - reference)
        cosine = (embedding * reference).sum(1) / (
            np.linalg.norm(embedding, axis=1) * np.linalg.norm(reference, axis=1)
        )
        rel = diff.max() / np.abs(reference).max()
        print(
            f"| {name:16s} | {args.batch / median:5.2f} | {args.batch / min(times[name]):10.2f} "
            f"| {base / median:7.2f}x | {rss:11.0f} | {diff.max():12.2e} | {rel:12.2e} | {cosine.min():10.7f} |"
        )
    print()
    for name in names:
        print(f"  {name:16s} {VARIANTS[name][0]}")


if __name__ == "__main__":
    main()
