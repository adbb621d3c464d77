"""ORL 1:N identification through `lcnn faces enroll / search`: each of s1..s40 enrolled with images 1-5, the
images 6-10 searched; the top-1 identification rate, and how many searches fell below the gallery's threshold;
the closed-set rate also apart for the people the checkpoint was trained on (``--seen``) and the others.

usage: python benchmarks/face_identify.py CHECKPOINT ORL_DIR OUT_DIR [--align] [--model ARCH] [--seen s1-s30]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
from pathlib import Path

from lcnn.cli import main as lcnn
from lcnn.data.faces import list_identities, select_people


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("orl", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--align", action="store_true")
    ap.add_argument("--model")
    ap.add_argument("--seen", default="s1-s30", help="the people the checkpoint was trained on ('' for none)")
    args = ap.parse_args()
    extra = (["--align"] if args.align else ["--no-align"]) + (["--model", args.model] if args.model else [])
    args.out.mkdir(parents=True, exist_ok=True)
    gallery = args.out / "orl-gallery.npz"
    gallery.unlink(missing_ok=True)
    start = time.perf_counter()
    assert lcnn(["faces", "enroll", args.checkpoint, str(args.orl), "--gallery", str(gallery), "--per-person", "5",
                 *extra]) == 0  # fmt: skip
    enrolled = time.perf_counter() - start
    probes = [str(p) for p in sorted(args.orl.glob("s*/*.pgm")) if int(p.stem) > 5]
    buffer = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(buffer):
        assert lcnn(["faces", "search", args.checkpoint, str(gallery), *probes, "--top-k", "1", *extra]) == 0
    searched = time.perf_counter() - start
    rows = [line.split("\t") for line in buffer.getvalue().splitlines()]
    unknown = sum(r[2] == "unknown" for r in rows)
    right_open = sum(Path(r[0]).parent.name == r[2] for r in rows)  # an unknown answer is never right
    print(f"top-1 identification: {right_open}/{len(rows)} = {100 * right_open / len(rows):.2f} % "
          f"({unknown} answered unknown); enrol {enrolled:.1f} s, search {searched:.1f} s")
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert lcnn(["faces", "search", args.checkpoint, str(gallery), *probes, "--top-k", "1", "--threshold", "-2",
                     *extra]) == 0  # fmt: skip
    rows = [line.split("\t") for line in out.getvalue().splitlines()]
    closed = sum(Path(r[0]).parent.name == r[2] for r in rows)
    print(f"closed set (no threshold): {closed}/{len(rows)} = {100 * closed / len(rows):.2f} %")
    people = list_identities(args.orl)
    seen = set(select_people(args.seen, people)) if args.seen else set()
    for name, group in (("seen in training", seen), ("not seen", set(people) - seen)):
        mine = [r for r in rows if Path(r[0]).parent.name in group]
        if mine:
            right = sum(Path(r[0]).parent.name == r[2] for r in mine)
            print(f"  people {name}: {right}/{len(mine)} = {100 * right / len(mine):.2f} %")


if __name__ == "__main__":
    main()
