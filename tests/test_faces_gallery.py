"""Galleries (exact search, thresholds, files) and the `lcnn faces` commands end to end on ORL photos."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lcnn.faces.gallery as gallery_module
from lcnn.cli import main
from lcnn.data.faces import FaceTransform
from lcnn.errors import DataError, UserError
from lcnn.faces.aligner import Aligner
from lcnn.faces.gallery import Gallery, exact_top_k, unit
from lcnn.models import create_model
from lcnn.tasks.face.data import FaceDataModule

ORL = Path(__file__).resolve().parents[2] / "shared" / "data" / "orl-faces"
needs_orl = pytest.mark.skipif(not ORL.is_dir(), reason=f"{ORL} absent")


def test_exact_top_k_over_chunks_is_the_full_sort(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    g, q = unit(rng.standard_normal((103, 16))), unit(rng.standard_normal((9, 16)))
    monkeypatch.setattr(gallery_module, "CHUNK", 10)
    indices, scores = exact_top_k(q, g, 7)
    expected = np.argsort(-(q @ g.T), axis=1)[:, :7]
    assert (indices == expected).all()
    np.testing.assert_allclose(scores, np.take_along_axis(q @ g.T, expected, 1), rtol=1e-6)
    assert exact_top_k(q, g[:3], 7)[0].shape == (9, 3)


def _gallery(model: str = "m") -> Gallery:
    rng = np.random.default_rng(1)
    centres = unit(rng.standard_normal((4, 32)))
    emb = np.repeat(centres, 3, 0) + 0.1 * rng.standard_normal((12, 32))
    return Gallery(emb, np.repeat(["ann", "bob", "cy", "dee"], 3), [f"{i}.png" for i in range(12)], model,
                   False).with_threshold()  # fmt: skip


def test_gallery_threshold_search_unknown_and_files(tmp_path: Path) -> None:
    g = _gallery()
    assert 0 < g.threshold < 1
    rng = np.random.default_rng(2)
    probe = g.embeddings[[0, 4]] + 0.05 * rng.standard_normal((2, 32))
    stranger = unit(rng.standard_normal((1, 32)))
    first, second, third = g.search(np.vstack([probe, stranger]), top_k=2)
    assert [m.identity for m in first] == ["ann", first[1].identity] and first[1].identity != "ann"
    assert second[0].identity == "bob" and second[0].similarity > g.threshold
    assert third[0].identity == "unknown" and len(third) == 2 and third[1].identity != "unknown"
    assert g.search(stranger, top_k=1, threshold=-1.0)[0][0].identity != "unknown"
    g.save(tmp_path / "g.npz")
    back = Gallery.load(tmp_path / "g.npz")
    assert back.people == ["ann", "bob", "cy", "dee"] and back.threshold == pytest.approx(g.threshold)
    np.testing.assert_array_equal(back.embeddings, g.embeddings)
    with pytest.raises(UserError, match="enrol with the same checkpoint"):
        back.extend(_gallery("other"))
    assert len(back.extend(_gallery())) == 24
    (tmp_path / "bad.npz").write_bytes(b"not a gallery")
    with pytest.raises(DataError, match="bad.npz: not a gallery"):
        Gallery.load(tmp_path / "bad.npz")


def test_approximate_index_agrees_where_faiss_is_installed() -> None:
    pytest.importorskip("faiss")
    g = _gallery()
    exact = g.search(g.embeddings, top_k=1)
    g.build_index()
    assert [m[0].identity for m in g.search(g.embeddings, top_k=1)] == [m[0].identity for m in exact]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ORL faces of three people as photos: set in a larger grey frame, off centre (4 images each)."""
    if not ORL.is_dir():
        pytest.skip(f"{ORL} absent")
    root = tmp_path_factory.mktemp("photos")
    for person in ("s1", "s2", "s3"):
        (root / person).mkdir()
        for i in range(1, 5):
            face = np.array(Image.open(ORL / person / f"{i}.pgm"))
            Image.fromarray(np.pad(face, ((30 + 5 * i, 50), (60, 20 + 5 * i)), constant_values=110)).save(
                root / person / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = create_model("lightcnn9", num_classes=0).eval()
    path = tmp_path_factory.mktemp("ckpt") / "LightCNN_9Layers_checkpoint.pth.tar"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    return path


def test_faces_align_writes_faces_csv_and_sheet_and_lists_photos_without_a_face(photos: Path, tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture) -> None:
    inbox = tmp_path / "in"
    (inbox / "s1").mkdir(parents=True)
    Image.open(photos / "s1" / "1.png").save(inbox / "s1" / "1.png")
    Image.new("L", (120, 100), 90).save(inbox / "blank.png")
    assert main(["faces", "align", str(inbox), str(tmp_path / "out"), "--size", "128"]) == 0
    assert "no face in 1 photos" in capsys.readouterr().out
    rows = list(csv.DictReader(open(tmp_path / "out" / "faces.csv")))
    assert [(r["image"], r["status"]) for r in rows] == [("blank.png", "no face"), ("s1/1.png", "ok")]
    assert Image.open(tmp_path / "out" / "s1" / "1.png").size == (128, 128)
    assert (tmp_path / "out" / "contact_sheet.png").stat().st_size > 0
    assert main(["faces", "align", str(inbox), str(inbox / "out")]) == 2  # never into its own input
    # landmarks from another detector: the CSV's own columns replace detection
    given = tmp_path / "given.csv"
    given.write_text((tmp_path / "out" / "faces.csv").read_text())
    assert main(["faces", "align", str(inbox), str(tmp_path / "out2"), "--landmarks", str(given)]) == 0
    assert Image.open(tmp_path / "out2" / "s1" / "1.png").size == (144, 144)


def test_enroll_search_and_one_answer_per_photo(photos: Path, released: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    gallery = tmp_path / "g.npz"
    common = ["--model", "lightcnn9", "--align"]
    assert main(["faces", "enroll", str(released), str(photos), "--gallery", str(gallery), "--people", "s1-s2",
                 "--per-person", "3", *common]) == 0  # fmt: skip
    assert main(["faces", "enroll", str(released), str(photos), "--gallery", str(gallery), "--people", "s3",
                 "--per-person", "1", *common]) == 0  # fmt: skip
    capsys.readouterr()
    g = Gallery.load(gallery)
    assert len(g) == 7 and g.people == ["s1", "s2", "s3"] and g.align
    probe = photos / "s2" / "3.png"
    assert main(["faces", "search", str(released), str(gallery), str(probe), "--top-k", "3", *common]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert lines[0][2] == "s2" and float(lines[0][3]) == pytest.approx(1.0, abs=1e-4)  # itself, enrolled
    # the same photo through predict --align: the same embedding
    assert main(["predict", str(released), str(probe), "--out", str(tmp_path / "emb"), "--no-int8", *common]) == 0
    emb = unit(np.load(tmp_path / "emb" / "embeddings.npy"))
    row = list(g.images).index(str(probe))
    assert float(emb[0] @ g.embeddings[row]) == pytest.approx(1.0, abs=1e-5)
    assert main(["faces", "search", str(released), str(gallery), str(probe), "--model", "lightcnn29v2"]) == 2


def test_similarity_by_name_and_all_pairs(photos: Path, released: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    common = ["--model", "lightcnn9"]  # the photos taken as they are: the rule without --align
    plot = tmp_path / "hist.png"
    assert main(["faces", "similarity", str(released), str(photos / "s1"), str(photos / "s1"), "--plot", str(plot),
                 "--out", str(tmp_path / "pairs.tsv"), *common]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "by name, 4 pairs): 1.0000 ± 0.0000" in out and plot.stat().st_size > 0
    assert main(["faces", "similarity", str(released), str(photos / "s1"), str(photos / "s2"), "--all-pairs",
                 *common]) == 0  # fmt: skip
    assert "all pairs, 16 pairs" in capsys.readouterr().out


def test_training_with_align_detects_once_and_leaves_out_photos_without_a_face(
        photos: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    inbox = tmp_path / "in"
    for person in ("s1", "s2", "s3"):
        (inbox / person).mkdir(parents=True)
        for photo in (photos / person).iterdir():
            (inbox / person / photo.name).write_bytes(photo.read_bytes())
    (inbox / "s4").mkdir()
    for i in range(1, 4):
        Image.fromarray(np.pad(np.array(Image.open(ORL / "s4" / f"{i}.pgm")), ((40, 40), (50, 30 + 5 * i)),
                               constant_values=120)).save(inbox / "s4" / f"{i}.png")  # fmt: skip
    data = FaceDataModule("folder", str(inbox), "s1-s2", 0.25, align=True)
    data.setup()
    everyone = sorted(str(p) for p in inbox.rglob("*.png"))
    assert sorted(data.landmarks) == everyone  # training, held-out and test photos, each detected once
    # the points found once, in batches, are those of a photo detected on its own (to float rounding, which can
    # move a pixel by one grey level): one rule
    held_out = data.val_set.paths[0]
    alone = Aligner().detect([Image.open(held_out)])[0]
    np.testing.assert_allclose(data.landmarks[str(held_out)], alone.points[alone.largest()], atol=1e-3)
    torch.testing.assert_close(data.val_set[0][0], FaceTransform(align=True).load(held_out), rtol=0, atol=1 / 255)
    # a photo without a face is named and left out, of training and of the test pairs alike
    Image.new("L", (150, 150), 100).save(inbox / "s2" / "blank.png")
    Image.new("L", (150, 150), 90).save(inbox / "s4" / "wall.png")
    data = FaceDataModule("folder", str(inbox), "s1-s2", 0.25, align=True)
    with caplog.at_level("WARNING"):
        data.setup()
    assert "no face found in 2 of 17 photos" in caplog.text and "blank.png" in caplog.text
    kept = [str(p) for p in data.train_set.paths + data.val_set.paths + data.test_images]
    assert sorted(kept) == everyone
    out = tmp_path / "run"
    assert main(["train", "--task", "face", "--data", f"folder:{inbox}", "--people", "s1-s2", "--align", "--epochs",
                 "1", "--batch-size", "4", "--precision", "32-true", "--out", str(out)]) == 0  # fmt: skip
    listed = (out / "no_face.txt").read_text().split()
    assert listed == [str(inbox / "s2" / "blank.png"), str(inbox / "s4" / "wall.png")]
    assert json.loads((out / "metrics.json").read_text())["photos_without_face"] == 2
