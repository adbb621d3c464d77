"""Issue 26's library rules: a UTF-8 BOM in any text input, outputs that would replace an input, one writer per
output, calibration and fusion on extreme scores, and the ranges of the augmentation grammar's numbers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from lcnn.audio.augment import parse_augment
from lcnn.data.protocols import read_protocol
from lcnn.errors import UserError
from lcnn.io import BOM, iter_lines, printable, refuse_overwrite
from lcnn.metrics import fit_calibration, fit_fusion
from lcnn.runs import hold, output_lock


def test_a_bom_opening_a_text_file_is_dropped(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("LA_0069 LA_E_1 - A07 spoof\nLA_0070 LA_E_2 - - bonafide\n")
    bom = tmp_path / "bom.txt"
    bom.write_bytes(BOM + plain.read_bytes())
    assert [t.utt for t in read_protocol(bom)] == [t.utt for t in read_protocol(plain)] == ["LA_E_1", "LA_E_2"]
    csv = tmp_path / "list.csv"
    csv.write_bytes(BOM + b"a.flac,bonafide\nb.flac,spoof\n")  # a header-less CSV, its first id behind the BOM
    assert [t.utt for t in read_protocol(csv)] == ["a.flac", "b.flac"]
    # Only at the start of the file: elsewhere the character is data, and messages show it.
    later = tmp_path / "later.txt"
    later.write_bytes(b"x\n" + BOM + b"y\n")
    assert [line for _, line in iter_lines(later)] == ["x", "\ufeffy"]
    assert printable("\ufeffy\tz") == "\\ufeffy\\tz"


def _inputs(tmp_path: Path) -> Path:
    src = tmp_path / "scores.txt"
    src.write_text("a 1\n")
    return src


def test_an_output_that_is_an_input_is_refused_by_path_symlink_and_hard_link(tmp_path: Path) -> None:
    src = _inputs(tmp_path)
    (tmp_path / "link.txt").symlink_to(src)
    os.link(src, tmp_path / "hard.txt")
    for out in (src, tmp_path / "." / "scores.txt", tmp_path / "link.txt", tmp_path / "hard.txt"):
        with pytest.raises(UserError, match=r"--out .* is the input SCORES .*write over its own input"):
            refuse_overwrite({"--out": out}, {"SCORES": src})
    refuse_overwrite({"--out": tmp_path / "new.txt"}, {"SCORES": src})  # a new file is fine
    assert src.read_text() == "a 1\n"


def test_an_output_folder_inside_an_input_folder_is_refused(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "flac").mkdir(parents=True)
    with pytest.raises(UserError, match="lies inside the input DATA_DIR"):
        refuse_overwrite({"--out": corpus / "copy"}, {"DATA_DIR": corpus})
    with pytest.raises(UserError, match="holds the input"):
        refuse_overwrite({"--out": tmp_path}, {"DATA_DIR": corpus})
    refuse_overwrite({"--out": tmp_path / "copy"}, {"DATA_DIR": corpus})


def test_a_second_writer_of_one_output_stops_naming_the_first(tmp_path: Path) -> None:
    out = tmp_path / "two.txt"
    lock = output_lock(out)
    assert lock.parent == tmp_path and lock.name == ".two.txt.lock"
    with hold(lock, out):
        with pytest.raises(UserError, match=rf"{out} is in use by pid {os.getpid()}"):
            with hold(lock, out):
                pass
    assert not lock.exists()  # released
    with hold(lock, out):  # and free again
        pass


def test_calibration_and_fusion_refuse_a_score_that_would_flatten_the_map() -> None:
    rng = np.random.default_rng(0)
    bona, spoof = rng.normal(2, 1, 400), rng.normal(-2, 1, 400)
    good = fit_calibration(bona, spoof)
    assert good.a > 1  # well separated scores: a steep map
    # Affine invariance holds up to the largest scores a float holds (no overflow in the standardisation).
    huge = fit_calibration(bona * 1e300, spoof * 1e300)
    assert huge.a * 1e300 == pytest.approx(good.a, rel=1e-6) and huge.b == pytest.approx(good.b, rel=1e-6)
    extreme = bona.copy()
    extreme[7] = 1e308
    with pytest.raises(ValueError, match=r"the score 1e\+308 lies so far from the others .* one value"):
        fit_calibration(extreme, spoof)
    with pytest.raises(ValueError, match=r"system 1: the score 1e\+308"):
        fit_fusion(np.c_[bona, extreme], np.c_[spoof, spoof])
    fused = fit_fusion(np.c_[bona, bona + rng.normal(0, 1, 400)], np.c_[spoof, spoof + rng.normal(0, 1, 400)])
    assert all(np.isfinite(fused.weights)) and fused.weights[0] > 1


@pytest.mark.parametrize("item, message", [
    ("speed:1e9", "factor 1e\\+09 is outside 0.5 to 2"),
    ("speed:0.9,nan", "not a finite number"),
    ("speed:0.1", "factor 0.1 is outside"),
    ("noise:/x@snr=-50,0", "snr -50,0 dB is outside"),
    ("noise:/x@snr=0,inf", "not a finite number"),
    ("rawboost:3@p=1.5", "p"),
])  # fmt: skip
def test_augmentation_numbers_out_of_range_are_one_line_errors(item: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_augment([item])
