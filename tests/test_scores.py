"""Score files (lcnn.score.files): the forms read and written, and the check every evaluation runs first; the
verdict table of `lcnn check-scores` on broken files, with the exact messages a user sees."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from lcnn.cli import main
from lcnn.data.protocols import Trial
from lcnn.errors import DataError
from lcnn.score.files import ScoreFile, check_scores, load_scores, read_scores, write_score_file

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("score_check_verdicts", ROOT / "benchmarks" / "score_check_verdicts.py")
verdicts_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(verdicts_script)

WARNING = ("lcnn: warning: inverted.txt: pooled EER 75.0 % is above 50 %: the scores look inverted; higher scores "
           "must mean bona fide (negate scores where yours mean spoof)")  # fmt: skip
EXPECTED = {  # file: (exit code, what the user sees)
    "good.txt": (0, "good.txt: ok: 4 bona fide, 4 spoof, pooled EER 25.000 %, min DCF 0.2500"),
    "good.tsv": (0, "good.tsv: ok: 4 bona fide, 4 spoof, pooled EER 25.000 %, min DCF 0.2500"),
    "missing.txt": (2, "lcnn: error: missing.txt: 2 of 8 trials of key.txt have no score, e.g. LA_E_7, LA_E_8"),
    "extra.txt": (2, "lcnn: error: extra.txt: 1 scored id is not in key.txt, e.g. LA_D_1000001 (line 9): the scores "
                     "of another subset or protocol?"),
    "duplicates.txt": (2, "lcnn: error: duplicates.txt: 2 ids are scored more than once, e.g. LA_E_1 (lines 1 and "
                          "9), LA_E_5 (lines 5 and 10)"),
    "nan.txt": (2, "lcnn: error: nan.txt: 2 scores are NaN or infinite, e.g. LA_E_3 nan (line 3), LA_E_6 inf (line 6)"),
    "constant.txt": (2, "lcnn: error: constant.txt: every score is 0.5: a constant ranks no trial above another"),
    "binary.txt": (2, "lcnn: error: binary.txt: only two distinct scores, 0 and 1: these are decisions, not scores; "
                      "write the detector's continuous score (higher = more bona fide)"),
    "inverted.txt": (0, f"{WARNING} <br> inverted.txt: ok: 4 bona fide, 4 spoof, pooled EER 75.000 %, min DCF 1.0000"),
    "labels.txt": (2, "lcnn: error: labels.txt: 1 trial is labelled otherwise than in key.txt, e.g. LA_E_2 spoof here, "
                      "bonafide in key.txt (line 2)"),
    "unknown-label.txt": (2, "lcnn: error: unknown-label.txt, line 4: label 'genuine', expected bonafide or spoof"),
    "words.txt": (2, "lcnn: error: words.txt, line 8: score 'high' is not a number"),
}  # fmt: skip


def test_verdict_table(tmp_path: Path) -> None:
    rows = verdicts_script.verdicts(tmp_path)
    assert {name: (code, message) for name, _, code, message in rows} == EXPECTED
    results = (ROOT / "benchmarks" / "RESULTS-spoof.md").read_text()
    assert verdicts_script.verdict_table() in results, "rerun benchmarks/score_check_verdicts.py into RESULTS-spoof.md"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_score_file_forms(tmp_path: Path) -> None:
    plain = read_scores(_write(tmp_path / "a.txt", "LA_E_1 1.5\n\nLA_E_2 -0.25\n"))
    assert (plain.ids, plain.scores.tolist(), plain.lines, plain.keys) == (("LA_E_1", "LA_E_2"), [1.5, -0.25], (1, 3),
                                                                           None)  # fmt: skip
    asv2019 = read_scores(_write(tmp_path / "b.txt", "LA_E_1 - bonafide 1.5\nLA_E_2 A07 spoof -2\n"))
    assert asv2019.keys == ("bonafide", "spoof") and asv2019.scores.tolist() == [1.5, -2.0]
    package = read_scores(_write(tmp_path / "c.txt", "LA_0015 LA_E_1 6.96 bonafide\nLA_0007 LA_E_2 -2.3 spoof\n"))
    assert package.ids == ("LA_E_1", "LA_E_2") and package.keys == ("bonafide", "spoof")
    tsv = read_scores(_write(tmp_path / "d.tsv", "spk\tfilename\tcm-score\tcm-label\nE_01\tE_1\t0.5\tspoof\n"
                             "E_02\tE_2\t0.75\tbonafide\n"))  # fmt: skip
    assert (tsv.ids, tsv.scores.tolist(), tsv.keys, tsv.lines) == (("E_1", "E_2"), [0.5, 0.75], ("spoof", "bonafide"),
                                                                   (2, 3))  # fmt: skip
    for name, text, message in [
        ("mixed.txt", "LA_E_1 1.5\nLA_E_2 - spoof 1\n", r"mixed.txt, line 2: 4 fields, expected ID SCORE"),
        ("three.txt", "LA_E_1 spoof 1.5\n", r"three.txt, line 1: 3 fields, expected ID SCORE, ID ATTACK KEY SCORE"),
        ("header.tsv", "filename\tcm-score\n", r"header.tsv: no scores in this file, only its header"),
        ("short.tsv", "filename\tcm-score\nE_1\n", r"short.tsv, line 2: 1 fields, expected 2 columns as in the header"),
        ("empty.txt", "\n", r"empty.txt: no scores in this file"),
    ]:
        with pytest.raises(DataError, match=message):
            read_scores(_write(tmp_path / name, text))
    with pytest.raises(DataError, match="nothing.txt: no such score file"):
        read_scores(tmp_path / "nothing.txt")


def test_write_score_file(tmp_path: Path) -> None:
    scores = [1 / 3, -12345.678901234, 1e-12]
    for name in ("out.txt", "out.tsv"):
        write_score_file(tmp_path / name, ["a", "b", "c"], scores)
        back = read_scores(tmp_path / name)
        assert back.ids == ("a", "b", "c") and np.allclose(back.scores, scores, rtol=1e-8, atol=0)
    assert (tmp_path / "out.tsv").read_text().startswith("filename\tcm-score\na\t0.333333333\n")
    assert (tmp_path / "out.txt").read_text().splitlines()[1] == "b -12345.6789"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tsv", "out.txt"]  # written atomically, no leftovers
    with pytest.raises(ValueError, match="2 ids but 3 scores"):
        write_score_file(tmp_path / "x.txt", ["a", "b"], scores)
    with pytest.raises(ValueError, match="no attack and key columns"):
        write_score_file(tmp_path / "x.tsv", ["a"], [1.0], lambda i: "A01 spoof")


def test_a_written_score_file_gives_back_every_float32(tmp_path: Path) -> None:
    """What a model scores (float32, any magnitude, the neighbours of a value) reads back bit for bit, in every
    form written: ties the detector did not make would change the EER."""
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, 20000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    near = np.nextafter(np.float32(0.1), np.float32(1), dtype=np.float32) * np.ones(1, np.float32)
    scores = np.concatenate([bits[np.isfinite(bits)], near, [np.float32(0.1), np.float32(-0.0)]])
    ids = [f"u{i}" for i in range(scores.size)]
    for name, meta in (("a.txt", None), ("b.txt", lambda i: "A01 spoof"), ("c.tsv", None)):
        write_score_file(tmp_path / name, ids, scores, meta)
        back = read_scores(tmp_path / name).scores.astype(np.float32)
        assert back.view(np.uint32).tolist() == scores.view(np.uint32).tolist(), name
    assert read_scores(tmp_path / "b.txt").keys[0] == "spoof"
    write_score_file(tmp_path / "d.txt", ["a", "b", "c"], [0.5, np.nan, 0.25])  # NaN: a trial that failed
    assert (tmp_path / "d.txt").read_text() == "a 0.5\nc 0.25\n"


def test_check_without_a_key_and_against_trial_lists(tmp_path: Path) -> None:
    labelled = read_scores(_write(tmp_path / "s.txt", "a - bonafide 3\nb A01 spoof 1\nc A01 spoof 2\nd - bonafide 0\n"))
    check = check_scores(labelled)  # the file's own labels are the key
    assert check.ok and (check.n_bonafide, check.n_spoof, check.eer) == (2, 2, 0.5) and check.warnings == ()
    unlabelled = ScoreFile.of("mem", ["a", "b", "c", "d"], [0.1, 0.2, 0.3, 0.4])
    assert check_scores(unlabelled).ok and check_scores(unlabelled).eer is None
    listed = check_scores(unlabelled, [Trial("a"), Trial("b"), Trial("c"), Trial("x")], "list.txt")
    assert listed.errors == ("1 of 4 trials of list.txt has no score, e.g. x", "1 scored id is not in list.txt, "
                             "e.g. d (line 4): the scores of another subset or protocol?")  # fmt: skip
    one_class = check_scores(unlabelled, [Trial(u, "spoof") for u in "abcd"])
    assert one_class.errors == ("0 bona fide and 4 spoofed trials scored: EER and DCF need both",)
    with pytest.raises(DataError, match=r"^mem: 0 bona fide and 4 spoofed trials scored"):
        one_class.raise_errors()
    many = ScoreFile.of("many", [f"u{i}" for i in range(5)], [np.nan] * 5)
    assert check_scores(many).errors[0] == ("5 scores are NaN or infinite, e.g. u0 nan (line 1), u1 nan (line 2), "
                                            "u2 nan (line 3), ...")  # fmt: skip
    trials = [Trial("b", "spoof"), Trial("a", "bonafide"), Trial("c", "spoof"), Trial("d", "bonafide")]
    scores, check = load_scores(tmp_path / "s.txt", trials, "k")
    assert scores.tolist() == [1, 3, 2, 0] and check.ok  # in the key's order


def test_check_scores_command_on_several_files(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "ok.txt", "a - bonafide 3\nb A01 spoof 1\nc A01 spoof 2\nd - bonafide 0.5\n")
    _write(tmp_path / "bad.txt", "a 3\nb nan\nc 2\nd 1\n")
    assert main(["check-scores", "ok.txt"]) == 0
    assert capsys.readouterr().out == "ok.txt: ok: 2 bona fide, 2 spoof, pooled EER 50.000 %, min DCF 0.9500\n"
    _write(tmp_path / "key.txt", "S a - - bonafide\nS b - A01 spoof\nS c - A01 spoof\nS d - - bonafide\n")
    assert main(["check-scores", "ok.txt", "bad.txt", "--key", "key.txt"]) == 2
    out, err = capsys.readouterr()
    assert out.startswith("ok.txt: ok")
    assert err == "lcnn: error: bad.txt: 1 score is NaN or infinite, e.g. b nan (line 2)\n"
