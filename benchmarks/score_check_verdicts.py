"""The verdicts of ``lcnn check-scores`` on deliberately broken score files, as the user sees them.

    python benchmarks/score_check_verdicts.py        # prints the Markdown table of benchmarks/RESULTS-spoof.md

Writes a key of 8 trials (4 bona fide, 4 spoof, the ASVspoof 2019 LA form) and one score file per mistake into a
temporary folder, runs ``lcnn check-scores FILE --protocol key.txt`` on each from there (so messages show the
bare file names) and prints the file, the mistake, the exit code and what the command printed (stderr, else
stdout). ``tests/test_scores.py`` checks every message and that the table in RESULTS-spoof.md is this one.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

IDS = [f"LA_E_{i}" for i in range(1, 9)]
KEYS = ["bonafide"] * 4 + ["spoof"] * 4
GOOD = [2.5, 1.8, 0.9, -0.2, 0.4, -1.1, -1.7, -2.6]  # one bona fide below one spoof: EER 25 %


def _lines(scores: list, ids: list[str] = IDS) -> str:
    return "".join(f"{u} {s}\n" for u, s in zip(ids, scores))


#: (file, what is wrong, its text)
CASES = [
    ("good.txt", "nothing (ID SCORE)", _lines(GOOD)),
    ("good.tsv", "nothing (ASVspoof 5 submission form)",
     "filename\tcm-score\n" + "".join(f"{u}\t{s}\n" for u, s in zip(IDS, GOOD))),
    ("missing.txt", "two trials of the key unscored", _lines(GOOD[:6])),
    ("extra.txt", "a trial of another subset", _lines(GOOD) + "LA_D_1000001 0.3\n"),
    ("duplicates.txt", "two trials scored twice", _lines(GOOD) + _lines([0.1, 0.2], ["LA_E_1", "LA_E_5"])),
    ("nan.txt", "a NaN and an inf", _lines(GOOD[:2] + ["nan"] + GOOD[3:5] + ["inf"] + GOOD[6:])),
    ("constant.txt", "one value for every trial", _lines([0.5] * 8)),
    ("binary.txt", "0/1 decisions instead of scores", _lines([1, 1, 1, 0, 1, 0, 0, 0])),
    ("inverted.txt", "higher = more spoof", _lines([-s for s in GOOD])),
    ("labels.txt", "a label contradicting the key (ID ATTACK KEY SCORE)",
     "".join(f"{u} {'A07' if k == 'spoof' else '-'} {'spoof' if u == 'LA_E_2' else k} {s}\n"
             for u, k, s in zip(IDS, KEYS, GOOD))),
    ("unknown-label.txt", "a label outside bonafide / spoof",
     "".join(f"{u} - {'genuine' if u == 'LA_E_4' else k} {s}\n" for u, k, s in zip(IDS, KEYS, GOOD))),
    ("words.txt", "a score that is not a number", _lines(GOOD[:7] + ["high"])),
]


def verdicts(folder: Path) -> list[tuple[str, str, int, str]]:
    """``(file, what is wrong, exit code, message)`` per case, run in ``folder``."""
    from lcnn.cli import main

    (folder / "key.txt").write_text("".join(f"LA_0001 {u} - {'A07' if k == 'spoof' else '-'} {k}\n"
                                            for u, k in zip(IDS, KEYS)))  # fmt: skip
    rows = []
    here = os.getcwd()
    os.chdir(folder)
    try:
        for name, what, text in CASES:
            Path(name).write_text(text)
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(["check-scores", name, "--protocol", "key.txt"])
            shown = (err.getvalue() + out.getvalue()).strip().replace("\n", " <br> ")
            rows.append((name, what, code, shown))
    finally:
        os.chdir(here)
    return rows


def verdict_table() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        rows = verdicts(Path(tmp))
    lines = ["| file | what is wrong | exit | what `lcnn check-scores FILE --protocol key.txt` prints |",
             "|---|---|---|---|"]  # fmt: skip
    lines += [f"| `{name}` | {what} | {code} | `{message}` |" for name, what, code, message in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    print(verdict_table())
