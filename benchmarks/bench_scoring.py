"""The scoring engine at corpus scale (``lcnn score``): list parsing, where a file's time goes, the speed
against the official loop and the bare network, kill -9 and resume, memory, and long recordings. Prints
Markdown tables (``benchmarks/RESULTS-spoof.md``).

    python benchmarks/bench_scoring.py --data-dir ../shared/data/minispoof                   # everything
    python benchmarks/bench_scoring.py --data-dir ../shared/data/minispoof --quick           # tiny sizes
    python benchmarks/bench_scoring.py --data-dir DIR --only profile,compare \
        --official 2021/LA/Baseline-LFCC-LCNN --before OLD_LCNN_CHECKOUT                   # issue 27's tables
    python benchmarks/bench_scoring.py --data-dir DIR --only long --checkpoint TRAINED.ckpt  # localisation

The corpus: 64 utterances of 3 s (MiniSpoof eval files concatenated), referenced by up to 600,000 distinct
trial ids (hard links ``flac/LA_E_<7 digits>.flac``, one folder, as ASVspoof 2021 DF) and protocols of the
first N ids. ``profile`` and ``compare`` score with the ASVspoof 2021 LA baseline's weights (``--weights``,
converted by ``lcnn pretrained convert``); ``compare`` runs the official code itself where ``--official`` gives
a checkout (asvspoof-challenge/2021, read only; run on this torch through :data:`OFFICIAL_SHIM`). The other
sections use ``lcnn_lstm`` on LFCC with untrained weights (the cost does not depend on them), end to end
through the command line, ``--no-cache``. Long recordings: MiniSpoof bona fide speech concatenated to 10 and
30 minutes, the 30-minute one with a minute of spoofed utterances spliced in at 14:00; the spoofed stretch is
located only by a trained model (``--checkpoint``; without one the table says so).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

RATE = 16000
FULL = {"parse": (10_000, 100_000, 600_000), "compare": 2_000, "kill": 20_000, "rss": (10_000, 100_000),
        "long": (10, 30)}  # fmt: skip
QUICK = {"parse": (1_000, 10_000), "compare": 100, "kill": 600, "rss": (200, 1_000), "long": (1, 3)}
SECTIONS = ("parse", "profile", "compare", "kill", "rss", "long")


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


def _core_ms(fn, repeat: int) -> float:
    """Milliseconds of this thread's CPU time per call (other jobs on the machine slow it far less than wall)."""
    fn()
    started = time.thread_time()
    for _ in range(repeat):
        fn()
    return (time.thread_time() - started) / repeat * 1e3


def spoof_model(precision: str, checkpoint_path: Path) -> tuple[Any, Any]:
    """``(module, run)`` of a scoring checkpoint at ``precision`` (fp32, bf16, int8): ``run(x, lengths)``
    scores as ``lcnn score`` does, in inference mode."""
    from lcnn.tasks import load_task

    module = load_task(checkpoint_path)[0].eval()
    if precision == "int8":
        from lcnn.inference import quantize_int8_dynamic  # absent from lcnn before issue 27

        module.model = quantize_int8_dynamic(module.model)

    def run(x, lengths=None):
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
            return module(x, lengths)

    return module, run


def profile(work: Path, ckpt: Path, quick: bool) -> None:
    """Where the core-milliseconds of a 3-s file go (one thread, thread CPU time), and the model's ceiling."""
    from scipy.signal import resample_poly

    from lcnn.audio import FeaturePipeline
    from lcnn.benchmark import count_macs
    from lcnn.score.data import collate_items

    files = sorted((work / "base").glob("*.flac"))[:32]
    repeat = 1 if quick else 3
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a DataLoader worker's, and a model thread's view
    module, _ = spoof_model("fp32", ckpt)
    pipeline = FeaturePipeline(module.hparams.frontend)
    decode = _core_ms(lambda: [pipeline.waveform(f) for f in files], repeat) / len(files)
    waves = [pipeline.waveform(f) for f in files]
    x48 = np.random.default_rng(0).standard_normal(3 * 48000)
    resample = _core_ms(lambda: resample_poly(x48, 1, 3), repeat * 4)
    with torch.inference_mode():
        front = _core_ms(lambda: [pipeline.features(w) for w in waves], repeat) / len(files)
        items = [(pipeline.features(w), i, None) for i, w in enumerate(waves)]
    collate = _core_ms(lambda: collate_items(items), repeat * 4) / len(items)
    x, lengths = collate_items(items)[:2]
    rows = [("decode (FLAC, 16 kHz)", decode), ("resample 48 -> 16 kHz (48 kHz files only; none here)", resample),
            (f"front-end ({module.hparams.frontend['name']})", front), ("collate", collate)]  # fmt: skip
    for precision in ("fp32", "bf16", "int8"):
        try:
            _, run = spoof_model(precision, ckpt)
        except ImportError:
            rows.append((f"model {precision}: not available in this version", float("nan")))
            continue
        alone = _core_ms(lambda run=run: run(x, lengths), repeat) / len(x)
        batched = _core_ms(lambda run=run: run(x), repeat) / len(x)
        rows += [(f"model {precision}, each utterance alone (the engine)", alone),
                 (f"model {precision}, batch of {len(x)} (the bare network)", batched)]
    macs = count_macs(module.model, x[:1])
    peaks = {}
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(1024, 1024, dtype=dtype), torch.randn(1024, 1024, dtype=dtype)
        peaks[precision] = 1024**3 / (_core_ms(lambda a=a, b=b: a @ b, 3 if quick else 10) / 1e3) / 1e9
    torch.set_num_threads(before)
    print(f"\n### Where a file's core-milliseconds go: one 3-s file ({x.shape[2]} frames x {x.shape[3]} features), "
          "one thread, thread CPU time\n")
    print("| stage | core-ms / file | files/s per core |\n|---|---:|---:|")
    for name, ms in rows:
        print(f"| {name} | {ms:.2f} | {1e3 / ms:.0f} |")
    print(f"\nThe model: {macs / 1e6:.0f} M multiply-accumulates a file. Matmul peak of one core (1024^3): fp32 "
          f"{peaks['fp32']:.0f}, bf16 {peaks['bf16']:.0f} GMAC/s, i.e. at most {peaks['fp32'] * 1e9 / macs:.0f} "
          f"(fp32) and {peaks['bf16'] * 1e9 / macs:.0f} (bf16) files/s per core.")  # fmt: skip


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


def score_protocol(ckpt: Path, work: Path, trials: int, out: Path, *extra: str, kill_at: int | None = None,
                   env: dict | None = None) -> dict:  # fmt: skip
    """``lcnn score`` of the protocol of the first ``trials`` ids (:func:`lcnn_score`)."""
    return lcnn_score(ckpt, protocol(work, trials), out, "--audio-dir", str(work / "flac"), *extra, kill_at=kill_at,
                      env=env)


def lcnn_score(ckpt: Path, inp: Path, out: Path, *extra: str, kill_at: int | None = None,
               env: dict | None = None) -> dict:  # fmt: skip
    """``lcnn score`` in a subprocess: its summary, wall time, peak RSS (the main process, and the tree);
    ``kill_at``: SIGKILL the whole process group once that many scores are in the partial file. Its stderr
    (the progress bar, errors) goes to ``OUT.log``."""
    peak = out.with_suffix(".peak")
    peak.unlink(missing_ok=True)
    cmd = [sys.executable, "-c", WITH_PEAK, str(peak), "score", str(ckpt), str(inp), "--out", str(out), *extra]
    started = time.perf_counter()
    with open(out.with_suffix(".log"), "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True, env=env)
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


# Run from a checkout of asvspoof-challenge/2021 (LA/Baseline-LFCC-LCNN), written for torch 1.6, on this torch:
# the APIs it calls that torch removed since, given back with their old behaviour, and its unused torchaudio import.
OFFICIAL_SHIM = """
import collections.abc, sys, types
import torch
six = types.ModuleType("torch._six")
six.container_abcs, six.string_classes, six.int_classes, six.inf = collections.abc, (str, bytes), int, float("inf")
sys.modules["torch._six"] = six
sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
def rfft(x, signal_ndim, normalized=False, onesided=True):  # torch <= 1.7: (re, im) in a last dimension of 2
    assert signal_ndim == 1 and not normalized
    return torch.view_as_real(torch.fft.rfft(x, dim=-1) if onesided else torch.fft.fft(x, dim=-1))
stft = torch.stft
def old_stft(x, *args, return_complex=None, **kwargs):
    if return_complex is None:
        return torch.view_as_real(stft(x, *args, return_complex=True, **kwargs))
    return stft(x, *args, return_complex=return_complex, **kwargs)
torch.rfft, torch.stft = rfft, old_stft
torch.cuda.get_device_name = lambda device=None: "cpu"  # printed by its loop, on CPUs too
"""


def official_loop(official: Path, weights: Path, work: Path, n: int) -> dict:
    """The ASVspoof 2021 LA baseline's own inference (``main.py --inference`` of ``project/baseline_LA``: batch 1,
    its DataLoader, its LFCC, torch's default threads) over the first ``n`` ids of the corpus: wall time and the
    scores it prints."""
    run = work / f"official-{n}"
    run.mkdir(exist_ok=True)
    (work / "official-shim").mkdir(exist_ok=True)
    (work / "official-shim" / "sitecustomize.py").write_text(OFFICIAL_SHIM)
    (run / f"bench{n}.lst").write_text("".join(f"LA_E_{i:07d}\n" for i in range(n)))
    project = official / "project" / "baseline_LA"
    env = {**os.environ, "TEMP_DATA_NAME": f"bench{n}", "TEMP_DATA_DIR": str(work / "flac"),
           "PYTHONPATH": os.pathsep.join(map(str, (work / "official-shim", project, official)))}  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(project / "main.py"), "--inference", "--model-forward-with-file-name",
                           "--trained-model", str(weights), "--module-config", "config_auto"], cwd=run, env=env,
                          capture_output=True, text=True)  # fmt: skip
    wall = time.perf_counter() - started
    scores = {m[1]: float(m[2]) for m in re.finditer(r"Output, (\S+), \S+, (\S+)", proc.stdout)}
    if proc.returncode or len(scores) != n:
        raise RuntimeError(f"the official loop failed ({proc.returncode}): {(proc.stdout + proc.stderr)[-1500:]}")
    return {"wall": wall, "scores": scores}


def bare_network(ckpt: Path, work: Path) -> dict[str, float]:
    """files/s of the network alone at each precision: batches of 32 LFCC inputs of a 3-s file, all threads."""
    from lcnn.audio import FeaturePipeline

    rates = {}
    for precision in ("fp32", "bf16", "int8"):
        try:
            module, run = spoof_model(precision, ckpt)
        except ImportError:
            continue
        feats = FeaturePipeline(module.hparams.frontend)(sorted((work / "base").glob("*.flac"))[0])
        x = feats[None, None].expand(32, 1, -1, -1).contiguous()
        rates[precision] = 32 / _time(lambda x=x, run=run: run(x), 5)
    return rates


PRECISIONS = {"fp32": "32-true", "bf16": "bf16-mixed", "int8": "int8"}


def official_checkpoint(work: Path, weights: Path, src: Path | None = None) -> Path:
    """The official weights converted by ``lcnn pretrained convert`` of the lcnn in ``src`` (default: this
    process's), which decides the settings a converted model runs with; one file per lcnn."""
    import lcnn

    src = src or Path(lcnn.__file__).parents[1]
    ckpt = work / f"official-la-{hashlib.sha1(str(src.resolve()).encode()).hexdigest()[:8]}.ckpt"
    if not ckpt.exists():
        subprocess.run([sys.executable, "-m", "lcnn", "pretrained", "convert", str(weights), "--format", "asvspoof2021",
                        "--out", str(ckpt)], check=True, capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(src)})  # fmt: skip
    return ckpt


def compare(work: Path, n: int, rounds: int, official: Path | None, weights: Path, before: Path | None) -> None:
    """End to end on the first ``n`` files, interleaved over ``rounds``: the official loop, ``lcnn score`` at each
    precision and at its default (and a previous version's, ``before``), against the bare network. A path's rate
    is ``(n - 1) / (wall(n) - wall(1))``: everything a file costs, start-up excluded."""
    ckpt = official_checkpoint(work, weights)
    paths: dict[str, Any] = {}
    if official is not None:
        paths["the official 2021 LA loop (batch 1, its LFCC)"] = lambda k: official_loop(official, weights, work, k)
    for name, extra in (*[(f"lcnn score {p}", ("--precision", PRECISIONS[p])) for p in ("fp32", "bf16", "int8")],
                        ("lcnn score, its default", ())):  # fmt: skip
        paths[name] = lambda k, extra=extra: score_protocol(ckpt, work, k, work / f"cmp-{k}.txt", "--no-cache",
                                                            "--restart", *extra)  # fmt: skip
    if before is not None:
        env = {**os.environ, "PYTHONPATH": str(before / "src")}
        old = official_checkpoint(work, weights, before / "src")
        paths["lcnn score fp32, before issue 27"] = lambda k: score_protocol(old, work, k, work / f"cmp-{k}.txt",
                                                                            "--no-cache", "--restart", env=env)
    walls: dict[str, list[float]] = {name: [] for name in paths}
    scores: dict[str, np.ndarray] = {}
    for _ in range(rounds):
        for name, run in paths.items():
            one, many = run(1), run(n)
            if many.get("rc", 0) not in (0, None) or "wall" not in many:
                walls[name].append(float("nan"))
                continue
            walls[name].append(max(many["wall"] - one["wall"], 1e-9))
            if "scores" in many:
                scores[name] = np.array([many["scores"][f"LA_E_{i:07d}"] for i in range(n)])
            elif (work / f"cmp-{n}.txt").exists():
                scores[name] = np.array([float(line.split()[1]) for line in (work / f"cmp-{n}.txt").read_text()
                                         .splitlines()])  # fmt: skip
    bare = bare_network(ckpt, work)
    rates = {name: (n - 1) / np.nanmedian(w) for name, w in walls.items()}
    reference = next(iter(rates.values())) if official is not None else float("nan")
    fp32 = scores.get("lcnn score fp32")
    print(f"\n### End to end: {n:,} 3-s files, the ASVspoof 2021 LA baseline's weights, --no-cache, median of "
          f"{rounds} interleaved rounds\n")
    print("| path | files/s | vs the official loop | vs the bare network, same precision | max abs score diff vs "
          "lcnn fp32 |\n|---|---:|---:|---:|---:|")  # fmt: skip
    for name, rate in rates.items():
        precision = next((p for p in PRECISIONS if f" {p}" in name), None)
        share = f"{rate / bare[precision]:.0%}" if precision in bare else "-"
        diff = f"{np.abs(scores[name] - fp32).max():.1e}" if fp32 is not None and name in scores else "-"
        print(f"| {name} | {rate:.1f} | {rate / reference:.2f}x | {share} | {diff} |")
    print("\nThe bare network (batches of 32, all threads): " + ", ".join(f"{p} {r:.0f}" for p, r in bare.items())
          + " files/s.")


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
    parser.add_argument("--official", type=Path, help="a checkout's LA/Baseline-LFCC-LCNN of asvspoof-challenge/2021, "
                        "to time its own inference loop beside lcnn")
    parser.add_argument("--weights", type=Path, default=Path(__file__).parents[2] / "shared" / "fixtures" / "nii_cm" /
                        "asvspoof2021-la.pt", help="the LA baseline's trained_network.pt (both paths score with it)")
    parser.add_argument("--before", type=Path, help="a checkout of an earlier lcnn, timed beside this one")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the comparison")
    args = parser.parse_args()
    if args.data_dir is None:
        parser.error("--data-dir MINISPOOF (or $LCNN_MINISPOOF)")
    sizes, only = QUICK if args.quick else FULL, args.only.split(",")
    args.work.mkdir(parents=True, exist_ok=True)
    need = max(sizes["parse"] if "parse" in only else (0,))
    build_corpus(args.work, args.data_dir, max(need, sizes["compare"], sizes["kill"], max(sizes["rss"])))
    ckpt = checkpoint(args.work)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")  # fmt: skip
    print(f"{'quick run (tiny sizes)' if args.quick else 'full run'}, {cpu}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, load average {os.getloadavg()[0]:.1f}")
    if "parse" in only:
        parse(args.work, sizes["parse"])
    if "profile" in only:
        profile(args.work, official_checkpoint(args.work, args.weights), args.quick)
    if "compare" in only:
        compare(args.work, sizes["compare"], args.rounds, args.official, args.weights, args.before)
    if "kill" in only:
        kill(args.work, sizes["kill"], ckpt, None)
    if "rss" in only:
        rss(args.work, sizes["rss"], ckpt)
    if "long" in only:
        long(args.work, args.data_dir, sizes["long"], ckpt, args.checkpoint)
    print(f"\nLoad average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
