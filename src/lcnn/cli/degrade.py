"""``lcnn degrade``: a codec-degraded copy of a corpus split, to measure robustness the same way everywhere."""

from __future__ import annotations

import argparse

from lcnn.cli.parsing import command
from lcnn.tasks.base import count


def add(commands, task: str | None) -> None:
    """``lcnn degrade``."""
    p = command(
        commands, "degrade", task,
        help="write a copy of a corpus split through a codec chain (robustness tests)",
        description="Write every file of a split through a fixed codec chain into a new folder with the same "
        "layout and protocol, so that `lcnn evaluate RUN --data-dir OUT` scores the degraded copy. Codecs run "
        "through ffmpeg (pip install 'lcnn[augment]' or a system ffmpeg).",
        epilog="example: lcnn degrade ../shared/data/minispoof --split eval --chain mp3:32k,opus:16k,mulaw "
        "--out minispoof-codec",
    )  # fmt: skip
    p.add_argument("data_dir", metavar="DATA_DIR", help="the corpus folder (as --data-dir of train)")
    p.add_argument("--data", default="minispoof", help="its corpus layout (default minispoof; custom with --protocol)")
    p.add_argument("--split", default="eval", choices=["train", "dev", "eval"], help="the split to copy (eval)")
    p.add_argument("--chain", required=True, metavar="CODECS",
                   help="codecs applied in order, e.g. mp3:32k,opus:16k,mulaw (variable-rate ones need a bitrate)")
    p.add_argument("--protocol", metavar="FILE", help="the split's protocol or CSV instead of the corpus's own")
    p.add_argument("--out", required=True, metavar="DIR", help="a new folder for the copy")
    p.add_argument("--num-workers", type=count(1), default=1, help="processes coding in parallel (default 1)")
    p.set_defaults(run=_run_degrade)


def _run_degrade(args: argparse.Namespace) -> int:
    from lcnn.data.degrade import degrade

    summary = degrade(args.data, args.data_dir, args.split, args.chain, args.out, args.protocol, args.num_workers)
    print(f"{summary['files']} files of {summary['split']} through {summary['chain']} -> {args.out}")
    return 0
