"""--augment in spoof training: on the fly in the training split only, seeded per utterance and epoch, each
codec coded once per batch, refused up front when it cannot run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_spoof_task import make_la_tree

from lcnn.audio import FeaturePipeline, RawBoost, UtteranceAugment, frontend_config, parse_augment
from lcnn.audio import codecs as codec_module
from lcnn.cli import main
from lcnn.data.augmented import AugmentedCollate, AugmentedSpoofDataset
from lcnn.data.protocols import Trial
from lcnn.train import resolve_config, train


@pytest.fixture(scope="module")
def la_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_la_tree(tmp_path_factory.mktemp("asvspoof"))


def _trials(la_dir: Path, n: int = 6) -> list[Trial]:
    flac = sorted((la_dir / "LA" / "ASVspoof2019_LA_train" / "flac").iterdir())[:n]
    return [Trial(p.stem, "bonafide" if i % 2 else "spoof", path=p) for i, p in enumerate(flac)]


def test_items_are_seeded_by_run_epoch_and_trial(la_dir: Path) -> None:
    pipeline = FeaturePipeline(frontend_config("lfcc"))
    augment = UtteranceAugment(parse_augment(["speed"]))
    trials = _trials(la_dir)
    ds = AugmentedSpoofDataset(trials, pipeline, augment, run_seed=3, sizes=[1] * len(trials))
    first = [ds[i] for i in range(len(ds))]
    again = AugmentedSpoofDataset(trials, pipeline, augment, run_seed=3, sizes=[1] * len(trials))
    assert all(torch.equal(a[0], b[0]) and a[3] == b[3] for a, b in zip(first, [again[i] for i in range(len(ds))]))
    ds.set_epoch(1)
    later = [ds[i] for i in range(len(ds))]
    assert all(a[3] != b[3] for a, b in zip(first, later))  # a new epoch, new draws
    lengths = [(len(a[0]), len(b[0])) for a, b in zip(first, later)]
    assert any(x != y for x, y in lengths)  # speed perturbation changed some lengths between the epochs


def test_collate_codes_each_codec_once_per_batch(la_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("imageio_ffmpeg")
    spec = parse_augment(["codec:mulaw,alaw", "rawboost:3"])
    pipeline = FeaturePipeline(frontend_config("lfcc"))
    augment = UtteranceAugment(spec)
    trials = _trials(la_dir)
    ds = AugmentedSpoofDataset(trials, pipeline, augment, run_seed=0, sizes=[1] * len(trials))
    calls = []
    coded = codec_module.codec_roundtrip_many
    monkeypatch.setattr("lcnn.data.augmented.codec_roundtrip_many",
                        lambda waves, step, *a: calls.append((step.codec, len(waves))) or coded(waves, step, *a))
    collate = AugmentedCollate(pipeline, augment, RawBoost(3), frames=None)
    x, lengths, labels, index = collate([ds[i] for i in range(len(ds))])
    assert x.shape[:2] == (len(ds), 1) and x.shape[3] == 60 and lengths.tolist() == [
        1 + len(ds[i][0]) // 160 for i in range(len(ds))]  # fmt: skip
    assert sorted(c for c, _ in calls) == sorted(set(c for c, _ in calls))  # one round trip per codec drawn
    assert sum(n for _, n in calls) == sum(s is not None for s in (augment.codec_step(ds[i][3]) for i in range(6)))
    clean = pipeline.features(ds[0][0])
    assert not torch.allclose(x[0, 0, : clean.shape[0]], clean, atol=1e-3)  # augmented, not the clean features
    fixed = AugmentedCollate(pipeline, augment, None, frames=32)([ds[i] for i in range(3)])[0]
    assert fixed.shape == (3, 1, 32, 60)


def test_training_with_augmentation_repeats_and_caches_only_dev_and_eval(la_dir: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    results = []
    for run in ("a", "b"):
        cfg = resolve_config("spoof", "asvspoof2019-la", data_dir=str(la_dir), epochs=1, batch_size=8,
                             augment=["rawboost:5", "speed"], cache_dir=str(tmp_path / "cache"),
                             out=str(tmp_path / run))  # fmt: skip
        results.append(train(cfg))
    assert results[0]["eval_eer"] == results[1]["eval_eer"] and results[0]["dev_eer"] == results[1]["dev_eer"]
    cached = {p.name.split("-")[0][:4] for p in (tmp_path / "cache").rglob("*.npy")}
    assert cached == {"LA_D", "LA_E"}  # no training utterance was cached
    assert json.loads((tmp_path / "a" / "config.json").read_text())["augment"] == ["rawboost:5", "speed"]


def test_an_augmentation_that_cannot_run_stops_before_training(la_dir: Path, tmp_path: Path, capsys) -> None:
    base = ["train", "--task", "spoof", "--data", "asvspoof2019-la", "--data-dir", str(la_dir), "--out",
            str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    for spec, message in [(f"noise:{tmp_path / 'nowhere'}", "nowhere"), ("codec:mp5", "unknown codec 'mp5'"),
                          ("rawboost:9", "rawboost"), ("echo", "unknown augmentation 'echo'")]:  # fmt: skip
        capsys.readouterr()
        assert main([*base, "--augment", spec]) == 2
        err = capsys.readouterr().err
        assert err.startswith("lcnn: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()
    (tmp_path / "empty").mkdir()
    capsys.readouterr()
    assert main([*base, "--augment", f"noise:{tmp_path / 'empty'}"]) == 2
    assert "empty" in capsys.readouterr().err


def test_codec_round_trip_of_a_batch_keeps_each_wave(la_dir: Path) -> None:
    pytest.importorskip("imageio_ffmpeg")
    waves = [np.sin(np.arange(n) / (3 + i)).astype(np.float32) * 0.3 for i, n in enumerate((4000, 9000, 5500))]
    one_by_one = [codec_module.codec_roundtrip(w, "mulaw") for w in waves]
    together = codec_module.codec_roundtrip_many(waves, "mulaw")
    assert [len(w) for w in together] == [len(w) for w in waves]
    for a, b in zip(together, one_by_one):  # mu-law has no memory: the same but at the 8 kHz resampler's edges
        np.testing.assert_allclose(a[16:-16], b[16:-16], atol=1e-3)
        assert np.corrcoef(a, b)[0, 1] > 0.999


def test_degrade_writes_a_copy_that_evaluates_like_the_corpus(la_dir: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("imageio_ffmpeg")
    from lcnn.data.asvspoof import check_audio, load_split, resolve_sources

    out = tmp_path / "codec"
    assert main(["degrade", str(la_dir), "--data", "asvspoof2019-la", "--split", "eval", "--chain", "mulaw,alaw",
                 "--out", str(out)]) == 0  # fmt: skip
    original = load_split(resolve_sources("asvspoof2019-la", la_dir)["eval"])
    copy = load_split(resolve_sources("asvspoof2019-la", out)["eval"])  # what `lcnn evaluate --data-dir` reads
    assert [t.utt for t in copy] == [t.utt for t in original] and len(check_audio(copy, "eval")) == len(original)
    from lcnn.audio import load_audio

    a, b = load_audio(original[0].path), load_audio(copy[0].path)
    assert a.shape == b.shape and not torch.equal(a, b) and np.corrcoef(a, b)[0, 1] > 0.95
    summary = json.loads((out / "degrade.json").read_text())
    assert summary["chain"] == "mulaw,alaw" and summary["files"] == len(original)
    capsys.readouterr()
    assert main(["degrade", str(la_dir), "--data", "asvspoof2019-la", "--chain", "mulaw", "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["degrade", str(la_dir), "--chain", "mp3", "--out", str(tmp_path / "x")]) == 2  # no bitrate
    assert "needs a bitrate" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_degrade_keeps_wav_names_so_the_copied_protocol_finds_them(tmp_path: Path) -> None:
    """In-the-Wild ships WAV files named in meta.csv: the copy keeps the names (and WAV), or nothing would load."""
    pytest.importorskip("imageio_ffmpeg")
    import soundfile as sf

    from lcnn.data.asvspoof import check_audio, load_split, resolve_sources

    itw = tmp_path / "itw"
    itw.mkdir()
    rows = ["file,speaker,label"]
    for i, label in enumerate(("bona-fide", "spoof", "spoof")):
        sf.write(itw / f"{i}.wav", 0.2 * np.sin(np.arange(4000 + 500 * i) / 7), 16000, subtype="PCM_16")
        rows.append(f"{i}.wav,speaker {i},{label}")
    (itw / "meta.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "itw-mulaw"
    assert main(["degrade", str(itw), "--data", "in-the-wild", "--chain", "mulaw", "--out", str(out)]) == 0
    copy = load_split(resolve_sources("in-the-wild", out)["eval"])
    assert len(check_audio(copy, "eval")) == 3 and all(Path(t.path).suffix == ".wav" for t in copy)
    assert sf.info(copy[0].path).format == "WAV"
    (tmp_path / "a-file").write_text("x")
    not_a_folder = str(tmp_path / "a-file")
    assert main(["degrade", str(itw), "--data", "in-the-wild", "--chain", "mulaw", "--out", not_a_folder]) == 2


def test_crops_of_fixed_size_models_come_from_the_utterance_seed(la_dir: Path) -> None:
    """Whatever state torch's global generator is in (each DataLoader worker seeds its own), a batch crops the same."""
    pipeline = FeaturePipeline(frontend_config("lfcc"))
    trials = _trials(la_dir)
    ds = AugmentedSpoofDataset(trials, pipeline, None, run_seed=1, sizes=[1] * len(trials))
    collate = AugmentedCollate(pipeline, None, RawBoost(3), frames=16)
    batch = [ds[i] for i in range(len(ds))]
    torch.manual_seed(0)
    first = collate(batch)[0]
    torch.manual_seed(12345)
    assert torch.equal(collate(batch)[0], first) and first.shape[2] == 16
