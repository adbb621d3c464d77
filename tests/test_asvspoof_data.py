"""lcnn.data (protocols, asvspoof, speech, samplers, features): protocol readers, corpus layouts, sampler,
collate, feature cache."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from lcnn.audio import frontend_config, trim_silence
from lcnn.data.asvspoof import audio_path, check_audio, load_split, resolve_sources
from lcnn.data.features import FeatureCache, config_hash
from lcnn.data.protocols import Trial, read_protocol
from lcnn.data.samplers import BucketBatchSampler
from lcnn.data.speech import SpoofDataset, collate, fit_frames
from lcnn.errors import DataError, UserError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LA_PROTOCOLS = SHARED / "asvspoof2019-la-protocols"


@pytest.mark.parametrize(
    "split, bonafide, spoof, attacks",
    [
        ("train.trn", 2580, 22800, [f"A0{i}" for i in range(1, 7)]),
        ("dev.trl", 2548, 22296, [f"A0{i}" for i in range(1, 7)]),
        ("eval.trl", 7355, 63882, [f"A{i:02d}" for i in range(7, 20)]),
    ],
)
def test_real_2019_la_protocols(split: str, bonafide: int, spoof: int, attacks: list[str]) -> None:
    path = LA_PROTOCOLS / f"ASVspoof2019.LA.cm.{split}.txt"
    if not path.is_file():
        pytest.skip(f"{path} is absent (shared data not checked out)")
    trials = read_protocol(path)
    keys = Counter(t.key for t in trials)
    assert keys == {"bonafide": bonafide, "spoof": spoof}
    assert sorted({t.attack for t in trials if t.key == "spoof"}) == attacks
    assert {t.attack for t in trials if t.key == "bonafide"} == {"-"}
    assert all(t.label in (0, 1) for t in trials)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_protocol_formats(tmp_path: Path) -> None:
    la = read_protocol(_write(tmp_path / "la.txt", "LA_0079 LA_T_1 - - bonafide\n\nLA_0080 LA_T_2 - A01 spoof\n"))
    assert la == [Trial("LA_T_1", "bonafide", "-", "LA_0079"), Trial("LA_T_2", "spoof", "A01", "LA_0080")]
    assert [t.label for t in la] == [1, 0]
    pa = read_protocol(_write(tmp_path / "pa.txt", "PA_0079 PA_T_1 aaa - bonafide\nPA_0079 PA_T_2 bcc AB spoof\n"))
    assert (pa[1].env, pa[1].attack) == ("bcc", "AB")
    keys = read_protocol(_write(tmp_path / "meta.txt", "LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval\n"
                                "LA_0023 DF_E_2 nocodec asvspoof - bonafide notrim progress vocoder - - - -\n"))
    assert keys[0] == Trial("LA_E_9332881", "spoof", "A07", "LA_0009", "alaw ita_tx", "eval")
    assert (keys[1].key, keys[1].subset) == ("bonafide", "progress")
    listed = read_protocol(_write(tmp_path / "trl.txt", "LA_E_1\nLA_E_2\n"))
    assert [(t.utt, t.key, t.label) for t in listed] == [("LA_E_1", None, -1), ("LA_E_2", None, -1)]
    rows = read_protocol(_write(tmp_path / "own.csv", "path,label,speaker,attack\nrec/a.wav,bonafide,bob,\n"
                                "rec/b.flac,spoof,,tts1\nc,spoof\n"))
    assert rows == [Trial("rec/a.wav", "bonafide", "-", "bob"), Trial("rec/b.flac", "spoof", "tts1"),
                    Trial("c", "spoof")]


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("bad.txt", "LA_1 LA_T_1 - - bonafide\nLA_1 LA_T_2 - A01 fake\n", r"bad.txt, line 2: label 'fake'"),
        ("dup.txt", "A a - - bonafide\nA b - - spoof\nA a - - spoof\n", r"1 duplicate file ids, e.g. a"),
        ("short.txt", "A a spoof\n", r"line 1: 3 fields"),
        ("bad.csv", "x.wav,genuine\n", r"bad.csv, line 1: label 'genuine'"),
        ("dup.csv", "x.wav,spoof\nx.wav,bonafide\n", r"duplicate file ids, e.g. x.wav"),
        ("empty.txt", "\n\n", r"no trials"),
    ],
)
def test_protocol_refusals(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_protocol(_write(tmp_path / name, text))


def test_audio_path_stays_in_data_folder(tmp_path: Path) -> None:
    assert audio_path(tmp_path, "LA_T_1") == tmp_path / "LA_T_1.flac"
    assert audio_path(tmp_path, "sub/x.wav") == tmp_path / "sub" / "x.wav"
    (tmp_path / "only.wav").touch()
    assert audio_path(tmp_path, "only") == tmp_path / "only.wav"
    assert audio_path(tmp_path, "sub/../y") == tmp_path / "y.flac"
    for bad in ("../x.wav", "sub/../../x", "/etc/passwd", ".."):
        with pytest.raises(DataError, match="leaves the data folder"):
            audio_path(tmp_path, bad)


def test_check_audio_reports_missing(tmp_path: Path) -> None:
    (tmp_path / "a.flac").write_bytes(b"1234")
    trials = [Trial(u, "spoof", path=tmp_path / f"{u}.flac") for u in ("a", "m1", "m2", "m3", "m4")]
    with pytest.raises(DataError, match=r"eval: 4 of 5 trials have no audio file, e\.g\. .*m1\.flac, .*m2\.flac, "
                                        r".*m3\.flac$"):
        check_audio(trials, "eval")
    assert check_audio(trials[:1], "eval") == [4]


def _la_tree(root: Path) -> None:
    proto = root / "LA" / "ASVspoof2019_LA_cm_protocols"
    proto.mkdir(parents=True)
    for split, name in (("train", "train.trn"), ("dev", "dev.trl"), ("eval", "eval.trl")):
        (root / "LA" / f"ASVspoof2019_LA_{split}" / "flac").mkdir(parents=True)
        _write(proto / f"ASVspoof2019.LA.cm.{name}.txt", f"S X_{split} - - bonafide\n")


def test_resolve_sources_layouts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _la_tree(tmp_path)
    for data_dir in (tmp_path, tmp_path / "LA"):  # the folder holding LA/ or LA/ itself
        sources = resolve_sources("asvspoof2019-la", data_dir)
        assert sources["eval"].audio_dir == tmp_path / "LA" / "ASVspoof2019_LA_eval" / "flac"
        assert load_split(sources["dev"])[0].path == tmp_path / "LA" / "ASVspoof2019_LA_dev" / "flac" / "X_dev.flac"
    with pytest.raises(UserError, match="needs --data-dir"):
        resolve_sources("asvspoof2019-la", None)
    with pytest.raises(DataError, match="no ASVspoof2019_PA_"):
        resolve_sources("asvspoof2019-pa", tmp_path)
    with pytest.raises(UserError, match="unknown spoofing data"):
        resolve_sources("asvspoof2020", tmp_path)
    # minispoof: --data-dir, else $LCNN_MINISPOOF; the working directory is never searched
    minispoof = tmp_path / "work" / "shared" / "data" / "minispoof"
    _la_tree(minispoof)
    (tmp_path / "work" / "main").mkdir()
    monkeypatch.chdir(tmp_path / "work" / "main")
    monkeypatch.delenv("LCNN_MINISPOOF", raising=False)
    with pytest.raises(UserError, match=r"--data minispoof needs --data-dir .* \$LCNN_MINISPOOF"):
        resolve_sources("minispoof", None)
    monkeypatch.setenv("LCNN_MINISPOOF", str(minispoof))
    assert resolve_sources("minispoof", None)["train"].audio_dir == minispoof / "LA" / "ASVspoof2019_LA_train" / "flac"
    monkeypatch.chdir(tmp_path)
    # own data: protocol files, relative to the working directory or to the data folder
    _write(tmp_path / "own.csv", "a.wav,bonafide\n")
    _write(tmp_path / "LA" / "inside.csv", "a.wav,bonafide\n")
    sources = resolve_sources("custom", tmp_path / "LA", {"eval": "own.csv", "dev": "inside.csv"})
    assert sources["eval"].protocol.resolve() == tmp_path / "own.csv" and sources["eval"].audio_dir == tmp_path / "LA"
    assert sources["dev"].protocol == tmp_path / "LA" / "inside.csv"
    with pytest.raises(UserError, match="needs --protocol"):
        resolve_sources("custom", tmp_path)


def test_2021_trial_list_and_keys_must_agree(tmp_path: Path) -> None:
    _la_tree(tmp_path)
    eval_dir = tmp_path / "ASVspoof2021_LA_eval"
    (eval_dir / "flac").mkdir(parents=True)
    _write(eval_dir / "ASVspoof2021.LA.cm.eval.trl.txt", "LA_E_1\nLA_E_2\n")
    sources = resolve_sources("asvspoof2021-la", tmp_path)
    assert sources["train"].audio_dir == tmp_path / "LA" / "ASVspoof2019_LA_train" / "flac"
    assert [t.key for t in load_split(sources["eval"])] == [None, None]  # no keys: unlabelled
    _write(eval_dir / "trial_metadata.txt", "LA_1 LA_E_2 alaw ita_tx A07 spoof notrim eval\n"
           "LA_1 LA_E_1 none - - bonafide notrim eval\n")
    trials = load_split(resolve_sources("asvspoof2021-la", tmp_path)["eval"])
    assert [(t.utt, t.key) for t in trials] == [("LA_E_1", "bonafide"), ("LA_E_2", "spoof")]  # trial-list order
    _write(eval_dir / "trial_metadata.txt", "LA_1 LA_E_2 alaw ita_tx A07 spoof notrim eval\n"
           "LA_1 LA_E_3 none - - bonafide notrim eval\n")
    with pytest.raises(DataError, match=r"disagree: 1 listed trials without a key \(e\.g\. LA_E_1\), 1 keys for "
                                        r"trials not listed \(e\.g\. LA_E_3\); refusing to score"):
        load_split(resolve_sources("asvspoof2021-la", tmp_path)["eval"])
    # evaluating DF needs its own folder only (the keys in the official keys layout)
    df = tmp_path / "df"
    (df / "ASVspoof2021_DF_eval" / "flac").mkdir(parents=True)
    _write(df / "ASVspoof2021_DF_eval" / "ASVspoof2021.DF.cm.eval.trl.txt", "DF_E_1\n")
    (df / "keys" / "DF" / "CM").mkdir(parents=True)
    _write(df / "keys" / "DF" / "CM" / "trial_metadata.txt",
           "LA_0023 DF_E_1 nocodec asvspoof A14 spoof notrim progress traditional_vocoder - - - -\n")
    sources = resolve_sources("asvspoof2021-df", df)
    assert list(sources) == ["eval"]
    assert load_split(sources["eval"]) == [Trial("DF_E_1", "spoof", "A14", "LA_0023", "nocodec asvspoof", "progress")]


def test_fit_frames_and_collate() -> None:
    feats = torch.arange(10.0).repeat(3, 1).T  # (10, 3), row t == t
    assert fit_frames(feats, 4)[:, 0].tolist() == [0, 1, 2, 3]
    assert fit_frames(feats, 25)[:, 0].tolist() == list(range(10)) * 2 + [0, 1, 2, 3, 4]
    torch.manual_seed(0)
    crops = {int(fit_frames(feats, 4, random_crop=True)[0, 0]) for _ in range(50)}
    assert crops == set(range(7))
    x, lengths, labels, index = collate([(torch.ones(5, 3), 1, 7), (torch.ones(20, 3), 0, 2)])
    assert x.shape == (2, 1, 20, 3) and lengths.tolist() == [5, 20]
    assert labels.tolist() == [1, 0] and index.tolist() == [7, 2]
    assert x[0, 0, 5:].abs().sum() == 0 and x[0, 0, :5].sum() == 15
    assert collate([(torch.ones(3, 2), -1, 0)])[0].shape == (1, 1, 16, 2)  # padded to the LCNN's minimum


def test_bucket_batch_sampler() -> None:
    lengths = torch.randint(1, 1000, (203,), generator=torch.Generator().manual_seed(1)).tolist()
    scoring = BucketBatchSampler(range(203), 10, lengths=lengths, pool=0, shuffle=False)
    batches = list(scoring)
    assert len(batches) == len(scoring) == 21
    assert sorted(i for b in batches for i in b) == list(range(203))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat)  # one global sort when scoring
    torch.manual_seed(0)
    training = BucketBatchSampler(torch.randperm(203).tolist(), 10, lengths=lengths, pool=4, shuffle=True)
    epoch = list(training)
    assert len(epoch) == len(training) == 5 * 4 + 1  # pools of 40: 5 full ones (4 batches) + 3 trials
    assert sorted(i for b in epoch for i in b) == list(range(203))
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in epoch])
    assert spread < 400  # random batches of 10 would spread over ~800
    dropping = BucketBatchSampler(range(203), 10, drop_last=True, lengths=lengths, pool=4, shuffle=False)
    assert len(list(dropping)) == len(dropping) == 20 and all(len(b) == 10 for b in dropping)


def _tone(path: Path, seconds: float = 0.3, freq: float = 440.0) -> Path:
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, 0.3 * np.sin(2 * np.pi * freq * t), 16000, subtype="PCM_16")
    return path


def test_feature_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    audio = _tone(tmp_path / "a.flac")
    config = frontend_config("lfcc")
    assert config["n_fft"] == 1024 and config["f_max"] == 4000.0
    cache = FeatureCache(config, tmp_path / "cache")
    assert cache.n_features == 60
    calls = []
    pipeline = cache.pipeline
    monkeypatch.setattr(cache, "pipeline", lambda p: calls.append(p) or pipeline(p))
    first = cache.get("a", audio)
    assert first.shape == (1 + 4800 // 160, 60) and first.dtype == torch.float32
    assert torch.equal(cache.get("a", audio), first) and len(calls) == 1  # second read: from disk
    entry = cache.entry("a", audio)
    assert entry.parent.parent.name == f"lfcc-{config_hash(config)}" and entry.exists()  # in a subfolder of 256
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # no temp files
    assert sorted(p.name for p in entry.parent.parent.iterdir()) == sorted(["config.json", entry.parent.name])
    # a changed file is a new key; so is another configuration
    _tone(audio, seconds=0.5)
    os.utime(audio, ns=(1, 1))
    assert cache.get("a", audio).shape[0] == 51 and len(calls) == 2
    other = FeatureCache(frontend_config("lfcc", n_filters=30), tmp_path / "cache")
    assert other.get("a", audio).shape == (51, 90) and other.dir != cache.dir
    # an unreadable entry (e.g. written by hand) is recomputed
    cache.entry("a", audio).write_bytes(b"garbage")
    assert cache.get("a", audio).shape == (51, 60) and len(calls) == 3
    # ids with folders are kept apart after sanitising
    assert cache.entry("x/y", audio) != cache.entry("x_y", audio)
    # digital silence at both ends is dropped with trim_silence (a separate cache entry)
    wave = np.concatenate([np.zeros(1600), 0.3 * np.sin(np.arange(3200) / 5), np.zeros(800)])
    sf.write(tmp_path / "padded.flac", wave, 16000, subtype="PCM_16")
    trimmed = FeatureCache(frontend_config("lfcc", trim_silence=True), tmp_path / "cache")
    assert trimmed.dir != cache.dir
    assert cache.get("p", tmp_path / "padded.flac").shape[0] == 1 + 5600 // 160
    assert trimmed.get("p", tmp_path / "padded.flac").shape[0] == 1 + 3199 // 160
    assert trim_silence(torch.zeros(5)).shape == (5,)
    spec = FeatureCache(frontend_config("spec", f_max=4000.0), None)
    assert spec.n_features == 128 and spec.get("a", audio).shape == (51, 128)
    with pytest.raises(ValueError, match="no settings"):
        frontend_config("spec", n_filters=3)


def test_dataset_items(tmp_path: Path) -> None:
    trials = [Trial("a", "bonafide", path=_tone(tmp_path / "a.flac", 0.3)),
              Trial("b", "spoof", "A01", path=_tone(tmp_path / "b.flac", 0.6))]
    cache = FeatureCache(frontend_config("lfcc"), tmp_path / "cache")
    ds = SpoofDataset(trials, cache)
    assert [ds[i][0].shape[0] for i in range(2)] == [31, 61] and ds[1][1:] == (0, 1)
    fixed = SpoofDataset(trials, cache, frames=40, train=True)
    assert [fixed[i][0].shape for i in range(2)] == [(40, 60), (40, 60)]
