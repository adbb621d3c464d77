"""The scoring engine at corpus scale (``lcnn score``): list parsing, where the time goes, throughput,
kill -9 and resume, memory, and long recordings. Prints Markdown tables (``benchmarks/RESULTS-spoof.md``).

    python benchmarks/bench_scoring.py --data-dir ../shared/data/minispoof                   # everything (~1.5 h)
    python benchmarks/bench_scoring.py --data-dir ../shared/data/minispoof --quick           # tiny sizes (~4 min)
    python benchmarks/bench_scoring.py --data-dir DIR --only long --checkpoint TRAINED.ckpt  # localisation

The corpus: 64 utterances of 3 s (MiniSpoof eval files concatenated), referenced by up to 600,000 distinct
trial ids (hard links ``flac/LA_E_<7 digits>.flac``, one folder, as ASVspoof 2021 DF) and protocols of the
first N ids. Throughput is that of ``lcnn_lstm`` on LFCC (untrained weights: the cost does not depend on
them), end to end through the command line, ``--no-cache``. Long recordings: MiniSpoof bona fide speech
concatenated to 10 and 30 minutes, the 30-minute one with a minute of spoofed utterances spliced in at 14:00;
the spoofed stretch is located only by a trained model (``--checkpoint``; without one the table says so).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

RATE = 16000
FULL = {"parse": (10_000, 100_000, 600_000), "throughput": 20_000, "kill": 20_000, "rss": (10_000, 100_000),
        "long": (10, 30)}  # fmt: skip
QUICK = {"parse": (1_000, 10_000), "throughput": 300, "kill": 600, "rss": (200, 1_000), "long": (1, 3)}
SECTIONS = ("parse", "stages", "throughput", "kill", "rss", "long")


def build_corpus(work: Path, data_dir: Path, trials: int, bases: int = 64) -> None:
    """``base/u*.flac`` (3 s each) and ``flac/LA_E_<i>.flac`` hard links for ``i < trials``."""
    flac, base = work / "flac", work / "base"
    flac.mkdir(parents=True, exist_ok=True)
    if not base.is_dir():
        base.mkdir()
        sources = sorted((data_dir / "LA" / "ASVspoof2019_LA_eval" / "flac").glob("*.flac"))
        cursor = 0
        for k in range(bases):
            parts, n = [], 0
            while n < 3 * RATE:
                x, _ = sf.read(sources[cursor % len(sources)], dtype="int16")
                parts.append(x)
                n += len(x)
                cursor += 1
            sf.write(base / f"u{k:02d}.flac", np.concatenate(parts)[: 3 * RATE], RATE, subtype="PCM_16")
    have = len(os.listdir(flac))
    for i in range(have, trials):
        os.link(base / f"u{i % bases:02d}.flac", flac / f"LA_E_{i:07d}.flac")


def protocol(work: Path, trials: int) -> Path:
    path = work / f"protocol-{trials}.txt"
    if not path.exists():
        path.write_text("".join(f"LA_0001 LA_E_{i:07d} - {'-' if i % 2 else 'A01'} {'bonafide' if i % 2 else 'spoof'}"
                                "\n" for i in range(trials)))  # fmt: skip
    return path


def checkpoint(work: Path) -> Path:
    """An untrained lcnn_lstm on the baseline's LFCCs, as a spoof checkpoint."""
    from lcnn.audio import frontend_config
    from lcnn.tasks.spoof.module import SpoofModule

    path = work / "lcnn_lstm-lfcc.ckpt"
    if not path.exists():
        torch.manual_seed(0)
        module = SpoofModule(n_features=60, frontend=frontend_config("lfcc"))
        torch.save({"lcnn_task": "spoof", "hyper_parameters": dict(module.hparams), "lcnn_config": {"task": "spoof"},
                    "state_dict": module.state_dict()}, path)  # fmt: skip
    return path


PARSE = """
import re, sys, time
from pathlib import Path
from lcnn.score import read_input
def status(key):
    return int(re.search(key + r":\\s+(\\d+)", Path("/proc/self/status").read_text())[1]) / 1024
Path("/proc/self/clear_refs").write_text("5")  # resets the peak RSS (VmHWM) to the current RSS
before = status("VmRSS")
started = time.perf_counter()
table = read_input(sys.argv[1], sys.argv[2])
seconds = time.perf_counter() - started
print(len(table), len(table.missing), seconds, status("VmHWM") - before, table.nbytes / 2**20)
"""


def parse(work: Path, sizes: tuple[int, ...]) -> None:
    print("\n### Parsing and checking a protocol (duplicates, paths leaving the folder, a stat of every file)\n")
    print("| trials | seconds | µs / trial | peak RSS growth (MB) | table (MB) | missing |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        out = subprocess.run([sys.executable, "-c", PARSE, str(protocol(work, n)), str(work / "flac")], check=True,
                             capture_output=True, text=True).stdout.split()  # fmt: skip
        trials, missing, seconds, rss, table = int(out[0]), int(out[1]), *map(float, out[2:])
        print(f"| {trials:,} | {seconds:.2f} | {seconds / trials * 1e6:.1f} | {rss:.1f} | {table:.1f} | {missing} |")


def _time(fn, repeat: int) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat


def stages(work: Path, quick: bool) -> None:
    """Per-file cost of each stage on 3-s files, and the model's ceiling from the measured matmul peak."""
    from scipy.signal import resample_poly

    from lcnn.audio import build_frontend, frontend_config, load_audio
    from lcnn.benchmark import count_macs
    from lcnn.models import create_model
    from lcnn.speed import prepare_input, prepare_model

    threads = torch.get_num_threads()
    files = sorted((work / "base").glob("*.flac"))[:16]
    repeat = 2 if quick else 10
    decode = _time(lambda: [load_audio(f) for f in files], repeat) / len(files)
    x48 = np.random.default_rng(0).standard_normal(3 * 48000)
    resample = _time(lambda: resample_poly(x48, 1, 3), repeat)
    frontend = build_frontend(frontend_config("lfcc")).eval()
    wave = load_audio(files[0])
    torch.set_num_threads(1)  # as in a DataLoader worker
    with torch.inference_mode():
        lfcc = _time(lambda: frontend(wave), repeat * 4)
        feats = frontend(wave)
    torch.set_num_threads(threads)
    model = prepare_model(create_model("lcnn_lstm", num_classes=1, input_shape=(1, None, 60)).eval())
    batch = prepare_input(feats.expand(32, 1, -1, -1).contiguous())
    lengths = torch.full((32,), feats.shape[0])
    macs = count_macs(model, batch[:2])
    rows = [("decode (FLAC, 16 kHz)", decode, 1), ("resample 48 -> 16 kHz (48 kHz files only)", resample, 1),
            ("LFCC front-end", lfcc, 1)]  # fmt: skip
    peaks = {}
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(1024, 1024, dtype=dtype), torch.randn(1024, 1024, dtype=dtype)
        peaks[precision] = 1024**3 / _time(lambda a=a, b=b: a @ b, 3 if quick else 20) / 1e9
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            seconds = _time(lambda: model(batch, lengths), 1 if quick else 5) / 32
        rows.append((f"lcnn_lstm {precision}, batch 32", seconds, threads))
    print(f"\n### Where the time goes: one 3-s file ({feats.shape[0]} frames x 60 LFCCs), {threads} threads\n")
    print("| stage | ms / file | threads | files/s on that many threads |\n|---|---:|---:|---:|")
    for name, seconds, n in rows:
        print(f"| {name} | {seconds * 1e3:.2f} | {n} | {1 / seconds:.0f} |")
    print(f"\nlcnn_lstm on {feats.shape[0]} x 60: {macs / 1e6:.0f} M MACs a file. Matmul peak on {threads} threads "
          f"(1024^3): fp32 {peaks['fp32']:.0f}, bf16 {peaks['bf16']:.0f} GMAC/s: model ceilings of "
          f"{peaks['fp32'] * 1e9 / macs:.0f} (fp32) and {peaks['bf16'] * 1e9 / macs:.0f} (bf16) files/s.")  # fmt: skip


class PeakRSS(threading.Thread):
    """Samples the memory (MB) of a process and its descendants every 0.2 s: the sum of their PSS, which
    splits the pages they share (torch's libraries, forked memory) instead of counting them once each."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0.0, True
        self.start()

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry))
        tree, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo += children.get(pid, [])
        return tree

    def run(self) -> None:
        while self.running:
            total = 0
            for pid in self._tree():
                try:
                    total += int(re.search(r"Pss:\s+(\d+)", Path(f"/proc/{pid}/smaps_rollup").read_text())[1])
                except (OSError, TypeError):
                    pass
            self.peak = max(self.peak, total / 1024)
            time.sleep(0.2)


# `python -m lcnn ...` that writes its own peak RSS (KB) into the file named by its first argument at exit.
WITH_PEAK = """
import atexit, resource, runpy, sys
peak = sys.argv.pop(1)
atexit.register(lambda: open(peak, "w").write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)))
runpy.run_module("lcnn", run_name="__main__")
"""


def score_protocol(ckpt: Path, work: Path, trials: int, out: Path, *extra: str, kill_at: int | None = None) -> dict:
    """``lcnn score`` of the protocol of the first ``trials`` ids (:func:`lcnn_score`)."""
    return lcnn_score(ckpt, protocol(work, trials), out, "--audio-dir", str(work / "flac"), *extra, kill_at=kill_at)


def lcnn_score(ckpt: Path, inp: Path, out: Path, *extra: str, kill_at: int | None = None) -> dict:
    """``lcnn score`` in a subprocess: its summary, wall time, peak RSS (the main process, and the tree);
    ``kill_at``: SIGKILL the whole process group once that many scores are in the partial file. Its stderr
    (the progress bar, errors) goes to ``OUT.log``."""
    peak = out.with_suffix(".peak")
    peak.unlink(missing_ok=True)
    cmd = [sys.executable, "-c", WITH_PEAK, str(peak), "score", str(ckpt), str(inp), "--out", str(out), *extra]
    started = time.perf_counter()
    with open(out.with_suffix(".log"), "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
    sampler = PeakRSS(proc.pid)
    shard, scored = out.with_name(out.name + ".partial") / "scores-rank0.txt", 0
    while kill_at is not None and proc.poll() is None:
        scored = shard.read_bytes().count(b"\n") if shard.exists() else 0
        if scored >= kill_at:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    stdout = proc.communicate()[0]
    sampler.running = False
    match = re.search(r"read (\d+)(?: windows)? in ([\d.]+) s \(([\d.]+) \w+/s\), skipped (\d+)", stdout)
    result = {"wall": time.perf_counter() - started, "rc": proc.returncode, "tree_mb": sampler.peak,
              "main_mb": int(peak.read_text()) / 1024 if peak.exists() else float("nan"), "killed_at": scored}
    if match:
        result.update(items=int(match[1]), seconds=float(match[2]), rate=float(match[3]), skipped=int(match[4]))
    return result


def throughput(work: Path, n: int, ckpt: Path) -> dict[int, Path]:
    outs = {}
    print(f"\n### End to end: `lcnn score` of {n:,} 3-s trials, lcnn_lstm on LFCC, --no-cache, batch 32\n")
    print("| workers | precision | files/s | scoring s | wall s (with start-up and parsing) |")
    print("|---:|---|---:|---:|---:|")
    for workers, precision in ((0, "32-true"), (1, "32-true"), (2, "32-true"), (1, "bf16-mixed")):
        outs[workers, precision] = out = work / f"tp-{workers}-{precision}.txt"
        r = score_protocol(ckpt, work, n, out, "--no-cache", "--num-workers", str(workers), "--precision", precision,
                           "--restart")
        print(f"| {workers} | {precision} | {r.get('rate', float('nan')):.1f} | {r.get('seconds', float('nan')):.1f} | "
              f"{r['wall']:.1f} |")  # fmt: skip
    fp32, bf16 = (np.array([float(line.split()[1]) for line in outs[1, p].read_text().splitlines()])
                  for p in ("32-true", "bf16-mixed"))  # fmt: skip
    print(f"\nbf16-mixed against fp32: scores differ by at most {np.abs(bf16 - fp32).max():.2e} "
          f"(median {np.median(np.abs(bf16 - fp32)):.2e}; the scores' spread, std: {fp32.std():.2e}).")
    return outs


def kill(work: Path, n: int, ckpt: Path, reference: Path | None) -> None:
    out = work / "killed.txt"
    if reference is None:
        reference = work / "uninterrupted.txt"
        score_protocol(ckpt, work, n, reference, "--no-cache", "--num-workers", "1", "--restart")
    first = score_protocol(ckpt, work, n, out, "--no-cache", "--num-workers", "1", "--restart", kill_at=n // 2)
    second = score_protocol(ckpt, work, n, out, "--no-cache", "--num-workers", "1")
    same = out.exists() and out.read_bytes() == reference.read_bytes()
    print(f"\n### kill -9 at half of {n:,} trials, then the same command\n")
    print("| scores on disk at the kill | exit code | resumed: skipped | resumed: scored | final file byte-identical "
          "to an uninterrupted run |\n|---:|---:|---:|---:|---|")  # fmt: skip
    print(f"| {first['killed_at']:,} | {first['rc']} | {second.get('skipped', '?'):,} | {second.get('items', '?'):,} | "
          f"{'yes' if same else 'NO'} |")  # fmt: skip


def rss(work: Path, sizes: tuple[int, ...], ckpt: Path) -> None:
    print("\n### Memory while scoring (workers 1, --no-cache): peak RSS of the main process, PSS of all\n")
    print("| trials | main process (MB) | process tree, PSS (MB) | files/s |\n|---:|---:|---:|---:|")
    rows = []
    for n in sizes:
        r = score_protocol(ckpt, work, n, work / f"rss-{n}.txt", "--no-cache", "--num-workers", "1", "--restart")
        rows.append(r)
        print(f"| {n:,} | {r['main_mb']:.0f} | {r['tree_mb']:.0f} | {r.get('rate', float('nan')):.1f} |")
    print(f"\nGrowth from {sizes[0]:,} to {sizes[-1]:,} trials: {rows[-1]['main_mb'] - rows[0]['main_mb']:.0f} MB "
          f"(main process), {rows[-1]['tree_mb'] - rows[0]['tree_mb']:.0f} MB (tree).")  # fmt: skip


def long_recording(path: Path, data_dir: Path, minutes: float, splice: tuple[float, float] | None) -> None:
    """MiniSpoof bona fide eval speech concatenated to ``minutes``, written in blocks; ``splice`` (start, end
    in seconds) filled with spoofed eval utterances instead."""
    proto = data_dir / "LA" / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.eval.trl.txt"
    rows = [line.split() for line in proto.read_text().splitlines() if line]
    audio = data_dir / "LA" / "ASVspoof2019_LA_eval" / "flac"
    pools = {key: [audio / f"{r[1]}.flac" for r in rows if r[4] == key] for key in ("bonafide", "spoof")}
    total, n, used = int(minutes * 60 * RATE), 0, {"bonafide": 0, "spoof": 0}
    with sf.SoundFile(path, "w", RATE, 1, subtype="PCM_16") as f:
        while n < total:
            key = "spoof" if splice and splice[0] * RATE <= n < splice[1] * RATE else "bonafide"
            x, _ = sf.read(pools[key][used[key] % len(pools[key])], dtype="int16")
            used[key] += 1
            f.write(x[: total - n])
            n += len(x[: total - n])


def long(work: Path, data_dir: Path, minutes: tuple[float, ...], ckpt: Path, trained: Path | None) -> None:
    splice = (14 * 60, 15 * 60) if minutes[-1] >= 30 else (minutes[-1] * 30 - 15, minutes[-1] * 30 + 15)
    print("\n### Long recordings: 4-s windows (hop 4 s), workers 1\n")
    print("| recording | model | windows | seconds | s per audio minute | peak RSS main / PSS tree (MB) |"
          "\n|---|---|---:|---:|---:|---:|")  # fmt: skip
    for m in minutes:
        path = work / f"long-{m:g}min.flac"
        if not path.exists():
            long_recording(path, data_dir, m, splice if m == minutes[-1] else None)
        for name, model in (("lcnn_lstm LFCC", ckpt), ("trained (--checkpoint)", trained)):
            if model is None or (model is trained and m != minutes[-1]):
                continue
            out = work / f"long-{m:g}-{model.stem}.txt"
            r = lcnn_score(model, path, out, "--segment", "4", "--num-workers", "1", "--restart")
            print(f"| {m:g} min | {name} | {r.get('items', '?')} | {r.get('seconds', float('nan')):.1f} | "
                  f"{r.get('seconds', float('nan')) / m:.2f} | {r['main_mb']:.0f} / {r['tree_mb']:.0f} |")  # fmt: skip
    if trained is None:
        print("\nThe spoofed stretch: not located here (no trained model given: --checkpoint).")
        return
    rows = [line.split("\t") for line in (work / f"long-{minutes[-1]:g}-{trained.stem}.segments.tsv").read_text()
            .splitlines()[1:]]  # fmt: skip
    start, end, score = (np.array([float(r[k]) for r in rows]) for k in (1, 2, 3))
    inside, outside = (start >= splice[0]) & (end <= splice[1]), (end <= splice[0]) | (start >= splice[1])
    lowest = np.argsort(score)[: int(inside.sum())]
    def clock(seconds: float) -> str:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"

    print(f"\nThe spoofed stretch {clock(splice[0])}-{clock(splice[1])} (spoofed MiniSpoof eval utterances): "
          f"window scores inside {score[inside].mean():.2f} ± {score[inside].std():.2f}, outside "
          f"{score[outside].mean():.2f} ± {score[outside].std():.2f}; of the {len(lowest)} lowest windows "
          f"{int(inside[lowest].sum())} lie inside it; the lowest one at {start[lowest[0]]:.0f}-"
          f"{end[lowest[0]]:.0f} s.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("LCNN_MINISPOOF"), help="MiniSpoof")
    parser.add_argument("--work", type=Path, default=Path("runs/bench-scoring"), help="corpus and outputs")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a check that everything runs")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument("--checkpoint", type=Path, help="a trained spoof checkpoint, to locate the spoofed stretch")
    args = parser.parse_args()
    if args.data_dir is None:
        parser.error("--data-dir MINISPOOF (or $LCNN_MINISPOOF)")
    sizes, only = QUICK if args.quick else FULL, args.only.split(",")
    args.work.mkdir(parents=True, exist_ok=True)
    need = max(sizes["parse"] if "parse" in only else (0,))
    build_corpus(args.work, args.data_dir, max(need, sizes["throughput"], sizes["kill"], max(sizes["rss"])))
    ckpt = checkpoint(args.work)
    print(f"{'quick run (tiny sizes)' if args.quick else 'full run'}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    if "parse" in only:
        parse(args.work, sizes["parse"])
    if "stages" in only:
        stages(args.work, args.quick)
    outs = throughput(args.work, sizes["throughput"], ckpt) if "throughput" in only else {}
    if "kill" in only:
        same_n = sizes["kill"] == sizes["throughput"] and (1, "32-true") in outs
        kill(args.work, sizes["kill"], ckpt, outs[1, "32-true"] if same_n else None)
    if "rss" in only:
        rss(args.work, sizes["rss"], ckpt)
    if "long" in only:
        long(args.work, args.data_dir, sizes["long"], ckpt, args.checkpoint)


if __name__ == "__main__":
    main()
