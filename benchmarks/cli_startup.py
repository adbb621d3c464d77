"""How long ``lcnn --help`` and friends take to answer, and whether they import torch, against another checkout.

    python benchmarks/cli_startup.py                              # this checkout
    python benchmarks/cli_startup.py --reference /tmp/before/src  # and an older one's src/, side by side

Each command runs ``--repeats`` times in a fresh interpreter (``python -m lcnn ...`` with ``PYTHONPATH`` on
the checkout's ``src/``); the table gives the median and the slowest wall time, and whether ``torch`` was
imported (checked in a separate run with ``-X importtime``). Prints Markdown.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = (["--help"], ["--version"], ["train", "--help"], ["train", "--task", "spoof", "--help"],
            ["evaluate", "--help"], ["predict", "--help"], ["score", "--help"], ["serve", "--help"])  # fmt: skip
SRC = Path(__file__).resolve().parents[1] / "src"


def _run(src: Path, argv: list[str], importtime: bool = False) -> subprocess.CompletedProcess:
    flags = ["-X", "importtime"] if importtime else []
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([sys.executable, *flags, "-m", "lcnn", *argv], capture_output=True, text=True, env=env)


def measure(src: Path, argv: list[str], repeats: int) -> tuple[float, float, bool, int] | None:
    """``(median s, slowest s, torch imported, exit code)``, or ``None`` where the command does not exist."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        done = _run(src, argv)
        times.append(time.perf_counter() - started)
        if done.returncode == 2 and "invalid choice" in done.stderr:
            return None
    imported = (line.rpartition("|")[2].strip() for line in _run(src, argv, importtime=True).stderr.splitlines())
    torch = "torch" in imported
    return statistics.median(times), max(times), torch, done.returncode


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, metavar="SRC", help="another checkout's src/ folder")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"**Machine:** {cpu_model()}, {os.cpu_count()} logical CPUs, "
          f"Python {platform.python_version()}, load average {load:.2f}; {args.repeats} runs each\n")  # fmt: skip
    sources = {"this checkout": SRC, **({"reference": args.reference} if args.reference else {})}
    head = " | ".join(f"{name}: median / slowest s, torch" for name in sources)
    print(f"| command | {head} |")
    print("|---|" + "---|" * len(sources))
    for argv in COMMANDS:
        cells = []
        for src in sources.values():
            got = measure(src, argv, args.repeats)
            cells.append("no such command" if got is None else
                         f"{got[0]:.2f} / {got[1]:.2f}, {'yes' if got[2] else 'no'}")  # fmt: skip
        print(f"| `lcnn {' '.join(argv)}` | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
