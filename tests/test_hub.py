"""Models in the Hugging Face Hub layout: ``lcnn export --format hf`` (weights, config, model card), loading the
folder and ``hf:ORG/NAME[@REVISION]`` through ``huggingface_hub`` (a stand-in Hub on 127.0.0.1, then offline),
and the Python API ``lcnn.load`` giving the command line's scores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hub_server import HubRepos, serve_hub
from test_spoof_task import make_la_tree

import lcnn
from lcnn.cli import main
from lcnn.errors import UserError
from lcnn.hub import parse_name, source_of
from lcnn.train import resolve_config, train

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained spoof run (lcnn on 32 frames, 1 epoch, tiny synthetic LA tree), calibrated like a release."""
    torch.set_num_threads(1)
    work = tmp_path_factory.mktemp("hub")
    la = make_la_tree(work / "data")
    cfg = resolve_config("spoof", "asvspoof2019-la", data_dir=str(la), model="lcnn", frames=32, epochs=1,
                         batch_size=8, cache_dir=str(work / "cache"), out=str(work / "run"))  # fmt: skip
    train(cfg)
    return work / "run"


def _eval_files(run: Path) -> tuple[list[Path], np.ndarray]:
    """The eval files of the run and its own scores of them (``scores-eval-2021.txt``)."""
    flac = Path(json.loads((run / "config.json").read_text())["data_dir"]) / "LA" / "ASVspoof2019_LA_eval" / "flac"
    scores = dict(line.split() for line in (run / "scores-eval-2021.txt").read_text().splitlines())
    files = sorted(flac.iterdir())
    return files, np.array([float(scores[f.stem]) for f in files])


def _scores(path: Path) -> dict[str, float]:
    """``{file stem: score}`` of a score file."""
    return {Path(k).stem: float(v) for k, v in (line.split() for line in path.read_text().splitlines())}


@pytest.fixture(scope="module")
def exported(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "lcnn-tiny"
    assert main(["export", str(run), "--format", "hf", "--out", str(out)]) == 0
    return out


def test_export_writes_the_hub_layout_and_a_valid_card(run: Path, exported: Path) -> None:
    from huggingface_hub import ModelCard

    assert {p.name for p in exported.iterdir()} == {"config.json", "model.safetensors", "README.md", "det.png"}
    config = json.loads((exported / "config.json").read_text())
    assert config["format"] == "lcnn-hub" and config["lcnn_version"] == lcnn.__version__
    assert (config["task"], config["architecture"], config["head"]) == ("spoof", "lcnn", "sigmoid")
    assert config["sample_rate"] == 16000 and config["frontend"]["name"] == "lfcc"
    metrics = json.loads((run / "metrics.json").read_text())
    assert config["threshold"] == pytest.approx(metrics["threshold"])
    assert "data_dir" not in config["run_config"] and str(run) not in json.dumps(config)  # no local paths
    card = ModelCard.load(exported / "README.md", ignore_metadata_errors=False)
    data = card.data
    assert data.library_name == "lcnn" and data.license == "mit" and data.pipeline_tag == "audio-classification"
    assert {"lcnn", "anti-spoofing"} <= set(data.tags) and data.datasets == ["asvspoof2019-la"]
    eer = next(r for r in data.eval_results if r.metric_type == "eer" and r.dataset_split == "eval")
    assert eer.metric_value == pytest.approx(metrics["eval_eer"]) and eer.task_type == "audio-classification"
    assert data.to_dict()["model-index"][0]["name"] == "lcnn-tiny"
    assert "![DET curve](det.png)" in card.text and "lcnn train --task spoof --data asvspoof2019-la" in card.text
    command = card.text.split("```bash\n")[1].split("\n")[0]
    assert {"--model lcnn", "--frames 32", "--epochs 1", "--data-dir DATA_DIR"} <= {
        " ".join(pair) for pair in zip(command.split(), command.split()[1:])}
    assert "## Limitations" in card.text


def test_round_trip_scores_to_1e6(run: Path, exported: Path, tmp_path: Path, capsys) -> None:
    files, expected = _eval_files(run)
    out = str(tmp_path / "s.txt")
    assert main(["score", str(exported), str(files[0].parent), "--out", out, "--num-workers", "0"]) == 0
    got = _scores(tmp_path / "s.txt")
    np.testing.assert_allclose([got[f.stem] for f in files], expected, rtol=0, atol=1e-6)

    model = lcnn.load(exported)
    assert isinstance(model, lcnn.api.Countermeasure) and model.source == str(exported)
    results = model.score_files(files)
    np.testing.assert_allclose([r["score"] for r in results], expected, rtol=0, atol=1e-6)
    assert all(r["decision"] == ("bonafide" if r["score"] >= model.threshold else "spoof") for r in results)
    assert results[0]["llr"] is None and results[0]["file"] == str(files[0])
    wave, rate = sf.read(files[0], dtype="float32")
    assert model.score(wave, rate)["score"] == pytest.approx(expected[0], abs=1e-6)
    assert model.score(str(files[1]))["score"] == pytest.approx(expected[1], abs=1e-6)
    assert lcnn.load(run).score(files[2])["score"] == pytest.approx(expected[2], abs=1e-6)  # the run itself


def test_local_folder_refusals(exported: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes((exported / "model.safetensors").read_bytes())
    (bad / "config.json").write_text('{"architectures": ["BertModel"]}')  # another library's folder
    assert main(["score", str(bad), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'not an lcnn model (no "format": "lcnn-hub")' in err
    (bad / "config.json").write_text((exported / "config.json").read_text())
    (bad / "model.safetensors").write_bytes(b"not safetensors")
    assert main(["score", str(bad), str(tmp_path)]) == 2
    assert "not a readable safetensors file" in capsys.readouterr().err
    assert main(["export", str(exported), "--format", "hf", "--out", str(exported)]) == 2
    assert "would write over its own input" in capsys.readouterr().err
    for name in ("hf:justaname", "hf:a/b/c", "hf:org/name@", "hf:org/../x"):
        with pytest.raises(UserError, match="expected hf:ORG/NAME"):
            parse_name(name)
    assert parse_name("hf:org/name@v1.0") == ("org/name", "v1.0")
    assert source_of(tmp_path / "models--org--my-model" / "snapshots" / "abc") == "hf:org/my-model@abc"
    assert source_of(tmp_path) is None


def test_released_names_resolve_through_the_registry(exported: Path, monkeypatch) -> None:
    import lcnn.released
    from lcnn.released import RELEASED
    from lcnn.tasks import find_checkpoint

    name = next(iter(RELEASED))
    asked = []
    monkeypatch.setattr(lcnn.released, "fetch", lambda n: asked.append(n) or exported)  # no download here
    assert find_checkpoint(name) == exported and asked == [name]
    with pytest.raises(UserError, match="no such checkpoint or run folder"):
        find_checkpoint("no-such-released-model")


_SCRIPT = """
import contextlib, io, json, sys
from lcnn.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(argv)
    results.append([rc, err.getvalue()])
print(json.dumps(results))
"""


def _lcnn(calls: list[list[str]], env: dict[str, str]) -> list[tuple[int, str]]:
    """``lcnn`` command lines run in one fresh process (``huggingface_hub`` reads its settings at import)."""
    full = {**os.environ, "PYTHONPATH": str(SRC), "HF_HUB_DISABLE_PROGRESS_BARS": "1", **env}
    done = subprocess.run([sys.executable, "-c", _SCRIPT, json.dumps(calls)], env=full, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return [tuple(r) for r in json.loads(done.stdout.splitlines()[-1])]


def test_hf_names_through_huggingface_hub_then_offline(run: Path, exported: Path, tmp_path: Path) -> None:
    files, expected = _eval_files(run)
    listing = tmp_path / "files.txt"
    listing.write_text("".join(f"{f.name}\n" for f in files[:4]))
    given = [str(listing), "--audio-dir", str(files[0].parent), "--num-workers", "0"]
    (exported / "pytorch_model.bin").write_bytes(b"a pickle never to be downloaded")
    hub = HubRepos()
    commit = hub.add("lcnn-test/tiny", exported, revisions=("main", "v1"))
    (exported / "pytorch_model.bin").unlink()
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0"}
    with serve_hub(hub) as endpoint:
        online = _lcnn([["score", "hf:lcnn-test/tiny@v1", *given, "--out", str(tmp_path / "a.txt")],
                        ["score", "hf:lcnn-test/missing", *given],
                        ["score", "hf:lcnn-test/tiny@v9", *given]], {**env, "HF_ENDPOINT": endpoint})
    assert online[0][0] == 0 and f"lcnn: model hf:lcnn-test/tiny@{commit}\n" in online[0][1]
    for (rc, err), expected_error in zip(online[1:], ("no Hub model repository lcnn-test/missing",
                                                      "no revision 'v9' in the Hub repository lcnn-test/tiny")):
        assert rc == 2 and err.count("\n") == 1 and expected_error in err and "Traceback" not in err
    assert not [r for r in hub.requests if "pytorch_model.bin" in r or "det.png" in r]  # safetensors, config, card
    snapshot = tmp_path / "hf" / "hub" / "models--lcnn-test--tiny" / "snapshots" / commit
    assert {p.name for p in snapshot.iterdir()} == {"config.json", "model.safetensors", "README.md"}

    # the server is gone: the cache huggingface_hub laid out answers, by tag as by commit
    offline = _lcnn([["score", "hf:lcnn-test/tiny@v1", *given, "--out", str(tmp_path / "b.txt")],
                     ["score", f"hf:lcnn-test/tiny@{commit}", *given, "--out", str(tmp_path / "c.txt")],
                     ["score", "hf:lcnn-test/tiny@v2", *given]],
                    {**env, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"})  # fmt: skip
    assert [rc for rc, _ in offline] == [0, 0, 2]
    listed = subprocess.run([sys.executable, "-m", "lcnn", "pretrained", "list"], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(SRC), **env, "HF_HUB_OFFLINE": "1"}, check=True)
    assert f"hf:lcnn-test/tiny@{commit}\thf (spoof, " in listed.stdout  # beside the released systems
    assert listed.stdout.startswith("NAME\tFORMAT") and "asvspoof2021-la\t" in listed.stdout
    assert offline[2][1].count("\n") == 1 and "not in the Hugging Face cache" in offline[2][1]
    for name in ("a.txt", "b.txt", "c.txt"):
        got = _scores(tmp_path / name)
        np.testing.assert_allclose([got[f.stem] for f in files[:4]], expected[:4], rtol=0, atol=1e-6)


@pytest.fixture
def digits_run(tmp_path: Path, monkeypatch) -> Path:
    """The current folder holds ``runs/digits`` like the one the quick start's first command writes (a classifier
    checkpoint built directly: training is the first command's own test) and ``digit.png``."""
    from PIL import Image
    from sklearn.datasets import load_digits

    from lcnn.tasks.classify.module import ClassificationModule

    torch.manual_seed(0)
    module = ClassificationModule(classes=[str(i) for i in range(10)])
    (tmp_path / "runs" / "digits" / "checkpoints").mkdir(parents=True)
    torch.save({"lcnn_task": "classify", "hyper_parameters": dict(module.hparams), "state_dict": module.state_dict(),
                "lcnn_config": {"task": "classify", "data": "digits"}},
               tmp_path / "runs" / "digits" / "checkpoints" / "best.ckpt")  # fmt: skip
    Image.fromarray((load_digits().images[7] * 15).astype(np.uint8)).save(tmp_path / "digit.png")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_readme_quick_start_python_example(digits_run: Path, capsys) -> None:
    """The three lines after the quick start's commands, run as written; the same answer as ``lcnn predict``."""
    readme = (SRC.parent / "README.md").read_text()
    quick = readme[readme.index("## Quick start") : readme.index("\n## ", readme.index("## Quick start") + 5)]
    code = quick.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) == 3 and "lcnn.load(" in code
    assert "--out runs/digits" in quick
    printed: list = []
    exec(compile(code, "README.md", "exec"), {"print": printed.append})
    [result] = printed
    assert result["label"] in [str(i) for i in range(10)] and 0 < result["probability"] <= 1
    assert main(["predict", "runs/digits", "digit.png", "--resize", "--no-int8"]) == 0
    assert capsys.readouterr().out == f"digit.png\t{result['label']}\t{result['probability']:.4f}\n"


def test_api_docstring_examples(digits_run: Path) -> None:
    import doctest

    import lcnn.api

    result = doctest.testmod(lcnn.api, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5 and result.failed == 0


def test_face_model_api_matches_verify(tmp_path: Path, capsys) -> None:
    """A face model exported to the Hub layout: ``embed`` / ``verify`` give ``lcnn verify``'s similarity."""
    from PIL import Image

    from lcnn.tasks.face.module import FaceModule

    torch.manual_seed(0)
    module = FaceModule(model="lightcnn9", num_classes=2, classes=["a", "b"])
    module.threshold.fill_(0.5)
    torch.save({"lcnn_task": "face", "hyper_parameters": dict(module.hparams), "state_dict": module.state_dict(),
                "lcnn_config": {"task": "face"}}, tmp_path / "face.ckpt")  # fmt: skip
    assert main(["export", str(tmp_path / "face.ckpt"), "--format", "hf", "--out", str(tmp_path / "face")]) == 0
    rng = np.random.default_rng(0)
    faces = []
    for k in range(2):
        faces.append(tmp_path / f"{k}.png")
        Image.fromarray(rng.integers(0, 255, (144, 144), dtype=np.uint8)).save(faces[-1])
    capsys.readouterr()
    assert main(["verify", str(tmp_path / "face"), str(faces[0]), str(faces[1])]) == 0
    line = capsys.readouterr().out
    model = lcnn.load(tmp_path / "face")
    assert isinstance(model, lcnn.api.FaceEmbedder) and model.threshold == 0.5
    result = model.verify(faces[0], Image.open(faces[1]))
    assert line.startswith(f"cosine similarity {result['similarity']:.4f}")
    assert result["same"] == (result["similarity"] >= 0.5)
    assert model.embed(faces[0]).shape == (256,)
    with pytest.raises(UserError, match="expected an image path or a PIL.Image"):
        model.embed(np.zeros((128, 128)))
