"""One answer per input (issues 22 and 23): the same utterance scores the same through ``lcnn score``,
``lcnn evaluate``, ``lcnn predict``, ``POST /v1/spoof`` and :func:`lcnn.score.score_waveforms` (whole
utterances, at any length), and the same face pair has the same similarity through ``lcnn verify``,
``POST /v1/verify`` and :func:`lcnn.tasks.face.verification.embed_images`, the same embeddings through
``lcnn predict`` and ``POST /v1/embed``."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image
from serving import CALIBRATION, image_bytes, save_checkpoint, speech

from lcnn.audio import frontend_config
from lcnn.cli import main
from lcnn.score import score_waveforms
from lcnn.tasks import load_task
from lcnn.tasks.face.module import FaceModule
from lcnn.tasks.face.verification import embed_images
from lcnn.tasks.spoof.module import SpoofModule

SECONDS = (3.7, 7.9, 1.3, 2.6)  # the issue's two lengths, and two more for evaluate's score check


@pytest.fixture(scope="module")
def spoof_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """A randomly initialised lcnn_lstm on the baseline's LFCCs, its output layer scaled so that scores spread
    as a trained model's do (several units), with a calibration; utterances of :data:`SECONDS` (16-bit WAV, as
    corpora store them), voices with more or less noise."""
    root = tmp_path_factory.mktemp("one-path")
    torch.manual_seed(0)
    module = SpoofModule(model="lcnn_lstm", n_features=60, frontend=frontend_config("lfcc"))
    module.threshold.fill_(0.0)
    with torch.no_grad():
        module.model.classifier.weight.mul_(200)
    ckpt = save_checkpoint(root / "lstm.ckpt", "spoof", module, lcnn_calibration=CALIBRATION.to_dict())
    files = []
    for k, seconds in enumerate(SECONDS):
        files.append(root / f"utt{k}.wav")
        noise = np.random.default_rng(k).standard_normal(round(seconds * 16000))
        sf.write(files[-1], 0.7 * speech(seconds, seed=k + 3) + 0.05 * k * noise, 16000, subtype="PCM_16")
    return ckpt, files


def _score_file(path: Path) -> dict[str, float]:
    return {line.split()[0]: float(line.split()[-1]) for line in path.read_text().splitlines()}


def test_one_spoof_score_through_every_path(spoof_setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install -e '.[serve]')")
    from fastapi.testclient import TestClient

    from lcnn.serve import Settings, create_app, load_models

    ckpt, files = spoof_setup
    (tmp_path / "list.txt").write_text("".join(f"{f.name}\n" for f in files))
    assert main(["score", str(ckpt), str(tmp_path / "list.txt"), "--audio-dir", str(files[0].parent), "--out",
                 str(tmp_path / "s.txt"), "--num-workers", "0", "--no-cache"]) == 0  # fmt: skip
    scored = list(_score_file(tmp_path / "s.txt").values())

    labels = ("bonafide", "spoof", "spoof", "bonafide")
    (tmp_path / "eval.csv").write_text("path,label\n" + "".join(f"{f.name},{k}\n" for f, k in zip(files, labels)))
    assert main(["evaluate", str(ckpt), "--data", "custom", "--data-dir", str(files[0].parent), "--protocol",
                 f"eval={tmp_path / 'eval.csv'}", "--cache-dir", str(tmp_path / "cache"),
                 "--out", str(tmp_path / "ev")]) == 0  # fmt: skip
    evaluated = list(_score_file(tmp_path / "ev" / "scores-eval-2021.txt").values())  # the protocol's order

    capsys.readouterr()
    assert main(["predict", str(ckpt), *map(str, files)]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    predicted, predicted_llrs = [float(line[1]) for line in lines], [float(line[2]) for line in lines]

    settings = Settings(max_batch=4, max_wait_ms=20)
    with TestClient(create_app(load_models([str(ckpt)]), settings)) as client:
        served = [client.post("/v1/spoof", files={"audio": (f.name, f.read_bytes())}).json() for f in files]

    module = load_task(ckpt)[0]
    waves = [torch.from_numpy(sf.read(f, dtype="float32")[0]) for f in files]
    api = score_waveforms(module, waves, 16000)
    alone = [score_waveforms(module, [w]).scores[0] for w in waves]  # batch mates change no score

    for name, got in (("evaluate", evaluated), ("predict", predicted), ("serve", [r["score"] for r in served]),
                      ("score_waveforms", api.scores), ("alone", alone)):  # fmt: skip
        np.testing.assert_allclose(got, scored, atol=1e-5, rtol=0, err_msg=name)
    assert all(r["segments"] is None and r["duration"] == pytest.approx(s) for r, s in zip(served, SECONDS))
    llrs = CALIBRATION.apply(scored)
    for got in (predicted_llrs, [r["llr"] for r in served], api.llrs):
        np.testing.assert_allclose(got, llrs, atol=3e-5, rtol=0)  # a = 2: twice the scores' tolerance
    assert np.ptp(scored) > 0.1 and np.abs(scored).max() > 1  # different utterances, scores of trained size


def test_windows_only_when_asked_and_the_same_everywhere(spoof_setup, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """``--segment 2 --hop 1`` gives the same windows and mean through predict, score and score_waveforms."""
    ckpt, files = spoof_setup
    long = files[1]
    capsys.readouterr()
    assert main(["predict", str(ckpt), str(long), "--segment", "2", "--hop", "1"]) == 0
    predicted = float(capsys.readouterr().out.split("\t")[1])
    (tmp_path / "one.txt").write_text(f"{long.name}\n")
    assert main(["score", str(ckpt), str(tmp_path / "one.txt"), "--audio-dir", str(long.parent), "--out",
                 str(tmp_path / "s.txt"), "--segment", "2", "--hop", "1", "--num-workers", "0"]) == 0  # fmt: skip
    rows = [r.split("\t") for r in (tmp_path / "s.segments.tsv").read_text().splitlines()[1:]]
    module = load_task(ckpt)[0]
    got = score_waveforms(module, [torch.from_numpy(sf.read(long, dtype="float32")[0])], segment=2, hop=1)
    assert [(float(r[1]), float(r[2])) for r in rows] == [(s / 16000, e / 16000) for s, e in got.windows[0]]
    assert len(rows) == 7  # 0-2, 1-3, ..., 5-7 and the last ending at 7.9 s
    np.testing.assert_allclose(got.window_scores[0], [float(r[3]) for r in rows], atol=1e-5, rtol=0)
    assert predicted == pytest.approx(got.scores[0], abs=1e-5)
    assert predicted == pytest.approx(np.mean(got.window_scores[0]), abs=1e-5)
    assert main(["predict", str(ckpt), str(long), "--aggregate", "median"]) == 2  # refused before scoring


def test_one_face_similarity_through_verify_and_the_service(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install -e '.[serve]')")
    from fastapi.testclient import TestClient

    from lcnn.serve import Settings, create_app, load_models

    torch.manual_seed(0)
    face = FaceModule(model="lightcnn9", num_classes=3, classes=["p0", "p1", "p2"])
    face.threshold.fill_(0.5)
    ckpt = save_checkpoint(tmp_path / "face.ckpt", "face", face)
    a, b = image_bytes(seed=1), image_bytes((200, 150), "JPEG", seed=2, mode="RGB")
    (tmp_path / "a.png").write_bytes(a)
    (tmp_path / "b.jpg").write_bytes(b)
    capsys.readouterr()
    assert main(["verify", str(ckpt), str(tmp_path / "a.png"), str(tmp_path / "b.jpg")]) == 0
    verified = float(capsys.readouterr().out.split("cosine similarity ")[1].split(":")[0])
    assert main(["predict", str(ckpt), str(tmp_path / "a.png"), str(tmp_path / "b.jpg"), "--out",
                 str(tmp_path / "emb")]) == 0  # fmt: skip
    predicted = np.load(tmp_path / "emb" / "embeddings.npy")
    with TestClient(create_app(load_models([str(ckpt)]), Settings())) as client:
        files = {"image1": ("a.png", io.BytesIO(a)), "image2": ("b.jpg", io.BytesIO(b))}
        served = client.post("/v1/verify", files=files).json()["similarity"]
        embedded = client.post("/v1/embed", files=[("image", ("a", a)), ("image", ("b", b))]).json()["embeddings"]
    assert served == pytest.approx(verified, abs=1e-5)
    assert -1 <= served <= 1 and served != pytest.approx(1.0, abs=1e-4)  # two different faces
    np.testing.assert_allclose(embedded, predicted, atol=1e-5, rtol=0)
    module = load_task(ckpt)[0]
    api = embed_images(module, [Image.open(io.BytesIO(a)), tmp_path / "b.jpg"], normalize=True)
    assert float(api[0] @ api[1]) == pytest.approx(served, abs=1e-5)
