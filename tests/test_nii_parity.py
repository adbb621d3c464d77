"""Released LCNN countermeasures, score for score: every official ``trained_network.pt`` of the fixture
(``../shared/fixtures/nii_cm``: the ASVspoof 2021 baselines and NII's study, scored by their official code),
converted by ``lcnn pretrained convert`` and scored by ``lcnn score`` on the fixture's waves, gives the
official scores to 1e-5 absolute; and the conversion's refusals and provenance."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
import torch
from conftest import SHARED

from lcnn.cli import main

FIXTURE = SHARED / "fixtures" / "nii_cm"
VARIANTS = sorted(p.stem for p in FIXTURE.glob("*.pt")) if FIXTURE.is_dir() else []
TOLERANCE = 1e-5  # the fixture's README: the official code's own float32 noise is 4.4e-6 at worst


def _fixture() -> Path:
    if not FIXTURE.is_dir():
        pytest.skip(f"the nii_cm fixture is not at {FIXTURE}")
    return FIXTURE


def _format(variant: str) -> str:
    return "asvspoof2021" if variant.startswith("asvspoof2021-") else f"nii-mega:{variant}"


def _official_scores(variant: str) -> dict[str, float]:
    with open(_fixture() / "scores.tsv", newline="") as f:
        return {row["wave"]: float(row["score"]) for row in csv.DictReader(f, delimiter="\t")
                if row["variant"] == variant}  # fmt: skip


@pytest.mark.parametrize("variant", VARIANTS or ["(fixture absent)"])
def test_converted_checkpoint_scores_as_the_official_code(variant: str, tmp_path: Path, capsys) -> None:
    fixture = _fixture()
    official = _official_scores(variant)
    assert len(official) == 10
    ckpt, out = tmp_path / "model.ckpt", tmp_path / "scores.txt"
    assert main(["pretrained", "convert", str(fixture / f"{variant}.pt"), "--format", _format(variant),
                 "--out", str(ckpt)]) == 0  # fmt: skip
    assert main(["score", str(ckpt), str(fixture / "waves"), "--out", str(out), "--no-cache",
                 "--num-workers", "0"]) == 0  # fmt: skip
    mine = {name: float(score) for name, score in (line.split() for line in out.read_text().splitlines())}
    assert mine.keys() == official.keys()
    worst = max(abs(mine[w] - official[w]) for w in official)
    assert worst <= TOLERANCE, {w: mine[w] - official[w] for w in official}


def test_converted_checkpoint_records_its_provenance(tmp_path: Path) -> None:
    from lcnn.released import LICENCE, convert

    source = _fixture() / "asvspoof2021-la.pt"
    convert(source, "asvspoof2021", tmp_path / "la.ckpt", source="asvspoof2021-la")
    ckpt = torch.load(tmp_path / "la.ckpt", map_location="cpu", weights_only=True)
    record = ckpt["lcnn_source"]
    assert record["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert record["file"] == "asvspoof2021-la.pt" and record["source"] == "asvspoof2021-la"
    assert record["licence"] == LICENCE and record["format"] == "asvspoof2021"
    hp = ckpt["hyper_parameters"]
    assert (hp["model"], hp["loss"], hp["frontend"]["n_fft"], hp["frontend"]["f_max"]) == ("lcnn_lstm", "sigmoid",
                                                                                             1024, 4000.0)


@pytest.mark.parametrize("mutate, message", [
    (lambda sd: sd.pop("m_output_act.0.bias"), "no key 'm_output_act.0.bias'"),
    (lambda sd: sd.__setitem__("m_transform.0.0.weight", torch.zeros(64, 1, 3, 3)),
     "key 'm_transform.0.0.weight' has shape [64, 1, 3, 3], asvspoof2021 has [64, 1, 5, 5]"),
    (lambda sd: sd.__setitem__("extra.weight", torch.zeros(1)), "unexpected key 'extra.weight'"),
])  # fmt: skip
def test_a_file_of_another_layout_stops_at_its_first_differing_key(mutate, message: str, tmp_path: Path,
                                                                   capsys) -> None:  # fmt: skip
    state = torch.load(_fixture() / "asvspoof2021-df.pt", map_location="cpu", weights_only=True)
    mutate(state)
    torch.save(state, tmp_path / "trained_network.pt")
    assert main(["pretrained", "convert", str(tmp_path / "trained_network.pt"), "--format", "asvspoof2021",
                 "--out", str(tmp_path / "x.ckpt")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "x.ckpt").exists()


def test_another_variant_s_file_and_unknown_formats_are_refused(tmp_path: Path, capsys) -> None:
    fixture = _fixture()
    args = ["--out", str(tmp_path / "x.ckpt")]
    assert main(["pretrained", "convert", str(fixture / "lfb-lcnn-attention-sig.pt"), "--format",
                 "nii-mega:lfb-lcnn-attention-am", *args]) == 2  # fmt: skip
    assert "key 'm_output_act.0.weight' has shape [1, 192], lfb-lcnn-attention-am has [64, 192]" in \
        capsys.readouterr().err  # fmt: skip
    assert main(["pretrained", "convert", str(fixture / "waves.tsv"), "--format", "asvspoof2021", *args]) == 2
    assert "not a readable PyTorch state_dict" in capsys.readouterr().err
    assert main(["pretrained", "convert", str(fixture / "asvspoof2021-la.pt"), "--format", "nii-mega:mfcc-x",
                 *args]) == 2  # fmt: skip
    assert "unknown format 'nii-mega:mfcc-x'" in capsys.readouterr().err
    pickled = tmp_path / "pickled.pt"
    torch.save({"m": object.__new__(json.JSONDecoder)}, pickled)  # not loadable with weights_only=True
    assert main(["pretrained", "convert", str(pickled), "--format", "asvspoof2021", *args]) == 2
    assert "not a readable PyTorch state_dict" in capsys.readouterr().err


def test_release_list_names_every_system(capsys) -> None:
    assert main(["pretrained", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert len(lines) == 3 + 36 * 6 + 4  # and the four LightCNN face models
    assert any(line.startswith("nii-spec2-lcnn-attention-oc-06\tnii-mega:spec2-lcnn-attention-oc") for line in lines)
