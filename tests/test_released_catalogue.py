"""The released-model registry as ``lcnn pretrained list`` shows it: the published figures (NII's Table 1 per
variant, the 2021 baselines, LightCNN's LFW table), licence, size, source, and the provenance of what the cache
holds; the LightCNN face files in the same registry (given by hand, then loadable by name); the provenance of a
converted release in ``metrics.json``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED
from PIL import Image
from test_spoof_task import make_la_tree

from lcnn import released
from lcnn.cli import main
from lcnn.models import create_model
from lcnn.models.pretrained import released_architectures
from lcnn.released_figures import STUDY
from lcnn.tasks.spoof.official import FEATURES, LOSSES, NETS

FIXTURE = SHARED / "fixtures" / "nii_cm"


def test_every_release_carries_its_published_figures_and_where_they_were_read() -> None:
    assert set(STUDY) == {f"{f}-lcnn-{n}-{loss}" for f in FEATURES for n in NETS for loss in LOSSES}
    for variant, (eers, tdcfs) in STUDY.items():  # the table sorts each system's six runs by EER
        values = [float(v) for v in eers]
        assert len(eers) == len(tdcfs) == 6 and values == sorted(values), variant
        assert all(0 < float(v) < 1 for v in tdcfs), variant
    entry = released.RELEASED["nii-lfcc-lcnn-lstmsum-p2s-04"]
    assert released.published(entry) == "EER 1.92-3.10 %, min t-DCF 0.052-0.075 (six runs)"
    assert "ASVspoof 2019 LA eval" in entry.evaluated_on and "arXiv 2103.11326" in entry.reference
    assert released.published(released.RELEASED["asvspoof2021-la"]) == "EER 9.26 %, min t-DCF 0.3445"
    assert released.published(released.RELEASED["asvspoof2021-pa"]) == "EER 44.77 %, min t-DCF 0.9958"
    assert released.published(released.RELEASED["asvspoof2021-df"]) == "EER 23.48 %"  # DF: no t-DCF
    faces = [r for r in released.RELEASED.values() if r.task == "face"]
    assert sorted(r.format.partition(":")[2] for r in faces) == sorted(released_architectures())
    assert released.RELEASED["lightcnn-29v2"].figures[0] == ("100%-EER", "99.43 %")
    assert all(r.reference and r.licence and r.source for r in released.RELEASED.values())
    # the size: what the official file holds (the fixture's file is that many float32 values and its keys)
    ckpt = torch.load(FIXTURE / "asvspoof2021-la.pt", weights_only=True) if FIXTURE.is_dir() else None
    if ckpt is not None:
        assert released.parameters(released.RELEASED["asvspoof2021-la"]) == sum(v.numel() for v in ckpt.values())


def _rows(text: str) -> dict[str, dict[str, str]]:
    header, *lines = text.splitlines()
    columns = header.split("\t")
    rows = [dict(zip(columns, line.split("\t"), strict=True)) for line in lines]
    return {row["NAME"]: row for row in rows}


def test_list_shows_the_provenance_of_what_the_cache_holds(monkeypatch, tmp_path: Path, capsys) -> None:
    if not FIXTURE.is_dir():
        pytest.skip(f"the nii_cm fixture is not at {FIXTURE}")
    monkeypatch.setenv("LCNN_CACHE", str(tmp_path))
    released.convert(FIXTURE / "asvspoof2021-la.pt", "asvspoof2021", released.cached("asvspoof2021-la"),
                     source="https://www.asvspoof.org/asvspoof2021/pre_trained_LA_LFCC-LCNN.zip")  # fmt: skip
    digest = hashlib.sha256((FIXTURE / "asvspoof2021-la.pt").read_bytes()).hexdigest()
    assert main(["pretrained", "list"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert len(rows) == 3 + 36 * 6 + 4
    la = rows["asvspoof2021-la"]
    assert la["PUBLISHED"] == "EER 9.26 %, min t-DCF 0.3445" and la["EVALUATED ON"] == "ASVspoof 2021 LA eval"
    assert la["CACHED"] == f"sha256 {digest[:12]}... of asvspoof2021-la.pt" and la["LICENCE"] == "BSD-3-Clause"
    assert rows["asvspoof2021-df"]["CACHED"] == "-"
    assert rows["lightcnn-29"]["TASK"] == "face" and rows["lightcnn-29"]["PUBLISHED"].startswith("100%-EER 99.40 %")
    assert main(["pretrained", "list", "asvspoof2021-la", "lightcnn-9"]) == 0
    shown = capsys.readouterr().out
    assert f"  sha256: {digest}" in shown and "  licence: BSD-3-Clause" in shown
    assert "pre_trained_LA_LFCC-LCNN.zip" in shown
    assert "cached: no (lcnn pretrained get lightcnn-9 --file FILE)" in shown
    assert main(["pretrained", "list", "lightcnn-10"]) == 2
    assert "unknown released model 'lightcnn-10'; did you mean" in capsys.readouterr().err


def _faces(root: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    root.mkdir()
    paths = [root / f"{i}.png" for i in range(4)]
    for path in paths:
        Image.fromarray(rng.integers(0, 255, (144, 144), dtype=np.uint8)).save(path)
    return paths


def test_a_lightcnn_file_given_by_hand_loads_by_name_with_its_provenance(monkeypatch, tmp_path: Path,
                                                                        capsys) -> None:  # fmt: skip
    monkeypatch.setenv("LCNN_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    official = tmp_path / "LightCNN_9Layers_checkpoint.pth.tar"  # the official layout: DataParallel, a classifier
    state = create_model("lightcnn9", num_classes=7).state_dict()
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, official)
    digest = hashlib.sha256(official.read_bytes()).hexdigest()
    a, b, c, d = _faces(tmp_path / "faces")

    assert main(["pretrained", "get", "lightcnn-9"]) == 2  # no download: where to get it and what to do then
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "https://drive.google.com/" in err and "--file FILE" in err
    assert main(["verify", "lightcnn-9", str(a), str(b)]) == 2  # a released name is resolved, with the same message
    assert "lcnn pretrained get lightcnn-9 --file FILE" in capsys.readouterr().err

    assert main(["pretrained", "get", "lightcnn-9", "--file", str(official)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "cache" / "released" / "lightcnn-9.ckpt")
    similarities = []
    for args in (["lightcnn-9"], [str(official), "--model", "lightcnn9"], ["lightcnn-9", "--model", "lightcnn9"]):
        assert main(["verify", args[0], str(a), str(b), *args[1:], "--threshold", "0.5"]) == 0
        similarities.append(float(capsys.readouterr().out.split("cosine similarity ")[1].split(":")[0]))
    assert similarities[0] == similarities[1] == similarities[2]  # by name, the file as given, both
    assert main(["verify", "lightcnn-9", str(a), str(b), "--model", "lightcnn29"]) == 2
    assert "an lcnn face checkpoint of lightcnn9; --model names the architecture" in capsys.readouterr().err
    out = tmp_path / "converted.ckpt"  # the same conversion, for a file kept outside the cache
    assert main(["pretrained", "convert", str(official), "--format", "lightcnn:lightcnn9", "--out", str(out)]) == 0
    assert f"lightcnn9 (lightcnn9 embedder) from {official} (sha256 {digest[:12]}...)" in capsys.readouterr().out
    assert main(["verify", str(out), str(a), str(b), "--threshold", "0.5"]) == 0
    assert float(capsys.readouterr().out.split("cosine similarity ")[1].split(":")[0]) == similarities[0]

    pairs = tmp_path / "faces" / "pairs.txt"
    pairs.write_text("0.png 1.png 1\n0.png 2.png 0\n2.png 3.png 1\n1.png 3.png 0\n")
    records = []
    for name, args in (("name", ["lightcnn-9"]), ("file", [str(official), "--model", "lightcnn9"])):
        assert main(["evaluate", *args, "--pairs", str(pairs), "--out", str(tmp_path / name)]) == 0
        records.append(json.loads((tmp_path / name / "metrics.json").read_text())["provenance"])
    capsys.readouterr()
    assert records[0]["sha256"] == records[1]["sha256"] == digest
    assert records[0]["licence"].startswith("MIT") and records[0]["format"] == "lightcnn:lightcnn9"
    assert "drive.google.com" in records[0]["source"]


def test_evaluate_records_a_converted_release_in_metrics_json(monkeypatch, tmp_path: Path, capsys) -> None:
    if not FIXTURE.is_dir():
        pytest.skip(f"the nii_cm fixture is not at {FIXTURE}")
    ckpt = tmp_path / "la.ckpt"
    assert main(["pretrained", "convert", str(FIXTURE / "asvspoof2021-la.pt"), "--format", "asvspoof2021", "--out",
                 str(ckpt), "--source", "asvspoof2021-la"]) == 0  # fmt: skip
    tree = make_la_tree(tmp_path / "la")
    assert main(["evaluate", str(ckpt), "--data", "asvspoof2019-la", "--data-dir", str(tree), "--out",
                 str(tmp_path / "ev")]) == 0  # fmt: skip
    capsys.readouterr()
    record = json.loads((tmp_path / "ev" / "metrics.json").read_text())["provenance"]
    assert record["sha256"] == hashlib.sha256((FIXTURE / "asvspoof2021-la.pt").read_bytes()).hexdigest()
    assert record["source"] == "asvspoof2021-la" and record["licence"].startswith("BSD-3-Clause")
