"""The corpora: the ASVspoof 5, ASVspoof 2021 (keys with their conditions), In-the-Wild, Fake-or-Real and MLAAD
readers and layouts, on files generated in the exact distributed formats; the refusal of malformed lines, with file
and line number; and the registry contract over every corpus."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lcnn.data.asvspoof import check_audio, load_split, resolve_sources
from lcnn.data.corpora import SPLITS, corpora_help, get_corpus, list_corpora, register_corpus
from lcnn.data.protocols import read_protocol
from lcnn.errors import DataError, UserError

# ASVspoof 5: SPEAKER FILE GENDER CODEC CODEC_Q CODEC_SEED ATTACK_TAG ATTACK_LABEL KEY TMP, "-" where empty.
ASVSPOOF5_EVAL = """\
E_0001 E_0000000001 F - - - - bonafide bonafide -
E_0001 E_0000000002 F C05 3 E_0000000001 - bonafide bonafide -
E_0002 E_0000000003 M - - - AC1 A17 spoof -
E_0002 E_0000000004 M C05 3 E_0000000003 AC1 A17 spoof -
E_0003 E_0000000005 M C08 1 E_0000000009 AC2 A20 spoof -
E_0003 E_0000000006 F - - - - bonafide bonafide -
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_asvspoof5_protocol(tmp_path: Path) -> None:
    trials = read_protocol(_write(tmp_path / "ASVspoof5.eval.track_1.tsv", ASVSPOOF5_EVAL))
    assert Counter(t.key for t in trials) == {"bonafide": 3, "spoof": 3}
    assert [t.attack for t in trials] == ["-", "-", "A17", "A17", "A20", "-"]
    assert [t.speaker for t in trials[:3]] == ["E_0001", "E_0001", "E_0002"]
    assert trials[0].conditions == {"gender": "F", "codec": "-", "codec_q": "-"}
    assert trials[1].conditions == {"gender": "F", "codec": "C05", "codec_q": "3"}
    assert trials[4].conditions == {"gender": "M", "codec": "C08", "codec_q": "1", "attack_tag": "AC2"}
    assert Counter(t.conditions["codec"] for t in trials) == {"-": 3, "C05": 2, "C08": 1}
    assert trials[0].subset is None and trials[0].env == "-"


@pytest.mark.parametrize(
    "line, message",
    [
        ("E_0001 E_0000000001 F - - - - bonafide fake -", r"x.tsv, line 2: label 'fake', expected bonafide or spoof"),
        ("E_0001 E_0000000001 F - - - - A17 bonafide -", r"x.tsv, line 2: attack label 'A17' with key bonafide"),
        ("E_0001 E_0000000001 F - - - AC1 bonafide spoof -", r"x.tsv, line 2: attack label 'bonafide' with key spoof"),
        ("E_0001 E_0000000001 F - - - - bonafide bonafide", r"x.tsv, line 2: 9 fields, expected the 10 of ASVspoof 5"),
    ],
)
def test_asvspoof5_malformed_lines(tmp_path: Path, line: str, message: str) -> None:
    good = ASVSPOOF5_EVAL.splitlines()[0]
    with pytest.raises(DataError, match=message):
        read_protocol(_write(tmp_path / "x.tsv", f"{good}\n{line}\n"))


def test_2021_keys_keep_codec_transmission_and_subset(tmp_path: Path) -> None:
    la = read_protocol(_write(tmp_path / "LA" / "trial_metadata.txt", (
        "LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval\n"
        "LA_0009 LA_E_1000001 none - - bonafide notrim progress\n"
        "LA_0012 LA_E_1000002 opus loc_tx A19 spoof trim hidden_track\n")))  # fmt: skip
    assert [t.conditions for t in la] == [
        {"codec": "alaw", "transmission": "ita_tx", "subset": "eval"},
        {"codec": "none", "transmission": "-", "subset": "progress"},
        {"codec": "opus", "transmission": "loc_tx", "subset": "hidden_track"},
    ]
    assert [(t.env, t.subset, t.attack) for t in la] == [("alaw ita_tx", "eval", "A07"), ("none -", "progress", "-"),
                                                        ("opus loc_tx", "hidden_track", "A19")]  # as before
    df = read_protocol(_write(tmp_path / "DF" / "trial_metadata.txt", (
        "LA_0023 DF_E_2000011 nocodec asvspoof A14 spoof notrim progress traditional_vocoder - - - -\n"
        "TEF2 DF_E_2000013 low_m4a vcc2020 Task1-team20 spoof notrim eval neural_vocoder_nonautoregressive Task1 "
        "team20 FF E\n"
        "LA_0031 DF_E_2000014 mp3m4a asvspoof - bonafide notrim eval bonafide - - - -\n")))  # fmt: skip
    assert [t.conditions for t in df] == [
        {"codec": "nocodec", "source": "asvspoof", "subset": "progress", "vocoder": "traditional_vocoder"},
        {"codec": "low_m4a", "source": "vcc2020", "subset": "eval", "vocoder": "neural_vocoder_nonautoregressive"},
        {"codec": "mp3m4a", "source": "asvspoof", "subset": "eval"},  # the vocoder kind is a spoof's only
    ]
    assert [t.attack for t in df] == ["A14", "Task1-team20", "-"]
    with pytest.raises(DataError, match=r"trial_metadata.txt, line 2: label 'notrim'"):
        read_protocol(_write(tmp_path / "bad" / "trial_metadata.txt", "LA_0009 LA_E_1 alaw ita_tx A07 spoof notrim "
                             "eval\nLA_0009 LA_E_2 alaw A07 spoof notrim eval hidden\n"))


IN_THE_WILD_META = """\
file,speaker,label
0.wav,Alec Guinness,spoof
1.wav,Alec Guinness,spoof
2.wav,Barack Obama,bona-fide
3.wav,"Martin Luther King, Jr.",bona-fide
4.wav,Barack Obama,spoof
"""


def test_in_the_wild_meta_csv(tmp_path: Path) -> None:
    trials = read_protocol(_write(tmp_path / "meta.csv", IN_THE_WILD_META))
    assert [(t.utt, t.key, t.speaker) for t in trials] == [
        ("0.wav", "spoof", "Alec Guinness"), ("1.wav", "spoof", "Alec Guinness"), ("2.wav", "bonafide", "Barack Obama"),
        ("3.wav", "bonafide", "Martin Luther King, Jr."), ("4.wav", "spoof", "Barack Obama")]  # fmt: skip
    assert all(t.attack == "-" and t.conditions == {} for t in trials)
    with pytest.raises(DataError, match=r"meta.csv, line 3: label 'bonafide', expected bona-fide or spoof"):
        read_protocol(_write(tmp_path / "bad" / "meta.csv", "file,speaker,label\n0.wav,A,spoof\n1.wav,A,bonafide\n"))
    with pytest.raises(DataError, match=r"meta.csv, line 2: 2 columns, expected file,speaker,label"):
        read_protocol(_write(tmp_path / "short" / "meta.csv", "file,speaker,label\n0.wav,spoof\n"))


def test_asvspoof5_layout(tmp_path: Path) -> None:
    protocols = tmp_path / "ASVspoof5_protocols"
    _write(protocols / "ASVspoof5.train.tsv", "T_4850 T_0000000000 F - - - - bonafide bonafide -\n"
           "T_4850 T_0000000001 F - - - AC3 A05 spoof -\n")
    _write(protocols / "ASVspoof5.dev.track_1.tsv", "D_0062 D_0000000001 M - - - - bonafide bonafide -\n")
    _write(tmp_path / "ASVspoof5.eval.track_1.tsv", ASVSPOOF5_EVAL)  # beside the audio folders works too
    for folder in ("flac_T", "flac_D", "flac_E_prog"):
        (tmp_path / folder).mkdir()
    sources = resolve_sources("asvspoof5", tmp_path)
    assert {s: (src.protocol, src.audio_dir) for s, src in sources.items()} == {
        "train": (protocols / "ASVspoof5.train.tsv", tmp_path / "flac_T"),
        "dev": (protocols / "ASVspoof5.dev.track_1.tsv", tmp_path / "flac_D"),
        "eval": (tmp_path / "ASVspoof5.eval.track_1.tsv", tmp_path / "flac_E_prog"),  # no flac_E_eval here
    }
    (tmp_path / "flac_E_eval").mkdir()
    trials = load_split(resolve_sources("asvspoof5", tmp_path)["eval"])
    assert len(trials) == 6 and trials[2].path == tmp_path / "flac_E_eval" / "E_0000000003.flac"
    assert trials[2].conditions["codec"] == "-"  # conditions survive the path being resolved
    assert [t.attack for t in load_split(sources["train"])] == ["-", "A05"]
    with pytest.raises(DataError, match=r"none of the ASVspoof 5 protocols .* here or in .*ASVspoof5_protocols"):
        resolve_sources("asvspoof5", tmp_path / "flac_T")


def test_in_the_wild_layout(tmp_path: Path) -> None:
    folder = tmp_path / "release_in_the_wild"
    _write(folder / "meta.csv", IN_THE_WILD_META)
    for root in (tmp_path, folder):
        sources = resolve_sources("in-the-wild", root)
        assert list(sources) == ["eval"]
        trials = load_split(sources["eval"])
        assert len(trials) == 5 and trials[3].path == folder / "3.wav"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no meta.csv here or in .*empty/release_in_the_wild"):
        resolve_sources("in-the-wild", tmp_path / "empty")


# The registry contract, over every corpus: a generated tree of each gives the splits the entry claims, each split
# loads with audio for every trial, labels and conditions as the entry says; an empty folder is a one-line error.


def _tone(path: Path, seconds: float = 0.2, freq: float = 220.0, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, 0.2 * np.sin(2 * np.pi * freq * t), 16000, format=fmt)


def _asvspoof2019(root: Path, access: str = "LA") -> tuple[Path, dict]:
    proto = root / access / f"ASVspoof2019_{access}_cm_protocols"
    for split, name in (("train", "train.trn"), ("dev", "dev.trl"), ("eval", "eval.trl")):
        ids = [f"{access}_{split[0].upper()}_{i}" for i in range(2)]
        for utt in ids:
            _tone(root / access / f"ASVspoof2019_{access}_{split}" / "flac" / f"{utt}.flac")
        env = "aaa" if access == "PA" else "-"
        _write(proto / f"ASVspoof2019.{access}.cm.{name}.txt",
               f"S1 {ids[0]} {env} - bonafide\nS1 {ids[1]} {env} A01 spoof\n")  # fmt: skip
    return root, {}


def _asvspoof2021(track: str):
    def tree(root: Path) -> tuple[Path, dict]:
        _asvspoof2019(root)
        eval_dir = root / f"ASVspoof2021_{track}_eval"
        for utt in (f"{track}_E_1", f"{track}_E_2"):
            _tone(eval_dir / "flac" / f"{utt}.flac")
        _write(eval_dir / f"ASVspoof2021.{track}.cm.eval.trl.txt", f"{track}_E_1\n{track}_E_2\n")
        keys = (f"LA_1 {track}_E_1 alaw ita_tx - bonafide notrim eval\nLA_1 {track}_E_2 alaw ita_tx A07 spoof "
                "notrim eval\n") if track == "LA" else (
                "LA_1 DF_E_1 nocodec asvspoof - bonafide notrim eval bonafide - - - -\n"
                "LA_1 DF_E_2 mp3m4a vcc2020 A14 spoof notrim progress neural_vocoder - - - -\n")  # fmt: skip
        _write(root / "keys" / track / "CM" / "trial_metadata.txt", keys)
        return root, {}

    return tree


def _asvspoof5(root: Path) -> tuple[Path, dict]:
    for name, folder in (("ASVspoof5.train.tsv", "flac_T"), ("ASVspoof5.dev.track_1.tsv", "flac_D"),
                         ("ASVspoof5.eval.track_1.tsv", "flac_E_eval")):  # fmt: skip
        lines = ASVSPOOF5_EVAL.splitlines()[:4]
        for line in lines:
            _tone(root / folder / f"{line.split()[1]}.flac")
        _write(root / "ASVspoof5_protocols" / name, "\n".join(lines) + "\n")
    return root, {}


def _in_the_wild(root: Path) -> tuple[Path, dict]:
    folder = root / "release_in_the_wild"
    _write(folder / "meta.csv", IN_THE_WILD_META)
    for i in range(5):
        _tone(folder / f"{i}.wav")
    return root, {}


def _custom(root: Path) -> tuple[Path, dict]:
    for name in ("a.wav", "b.wav"):
        _tone(root / "audio" / name)
    protocols = {s: str(_write(root / f"{s}.csv", "audio/a.wav,bonafide\naudio/b.wav,spoof,,tts\n")) for s in SPLITS}
    return root, protocols


def _fakeorreal(root: Path, version: str = "for-norm") -> tuple[Path, dict]:
    for folder in ("training", "validation", "testing"):
        for label in ("real", "fake"):
            for i in range(2):
                _tone(root / version / version / folder / label / f"file{i}.wav_16k.wav_norm.wav",
                      freq=(200 if label == "real" else 1500) + 50 * i + 7 * len(folder))  # fmt: skip
    return root / version, {}


MLAAD_HEADER = "path|original_file|language|is_original_language|duration|training_data|model_name|architecture|" \
    "transcript\n"
BOOKS = ["en_US/by_book/female/judy_bieber/emerald_city", "en_UK/by_book/female/elizabeth_klett/jane_eyre",
         "de_DE/by_book/male/karlsson/kleinzaches", "en_US/by_book/male/elliot_miller/poisoned_pen",
         "en_US/by_book/female/mary_ann/northandsouth", "de_DE/by_book/female/eva_k/grune_haus",
         "fr_FR/by_book/male/bernard/les_mysteres", "it_IT/by_book/mix/lisa_caputo/malavoglia"]  # fmt: skip


def _mlaad(root: Path, models: int = 2) -> tuple[Path, dict]:
    """Fakes of two models in two languages, each spoken from M-AILABS utterances of the books above (whose
    splits by book cover train, dev and eval), with those sources beside fake/."""
    for m, (language, model, arch) in enumerate([("de", "tts_models_de_thorsten_vits", "vits"),
                                                 ("pt", "tts_models_multilingual_multi-dataset_xtts_v2", "xtts_v2")]
                                                [:models]):  # fmt: skip
        rows = []
        for b, book in enumerate(BOOKS):
            source = f"{book}/wavs/{book.split('/')[-1]}_f{b:06d}.wav"
            _tone(root / source, freq=150 + 10 * b)
            name = f"{book.split('/')[-1]}_f{b:06d}.wav"
            _tone(root / "fake" / language / model / name, freq=300 + 10 * b + m)
            rows.append(f"./fake/{language}/{model}/{name}|{source}|{language}|{language == 'de'}|0.2|multi-dataset|"
                        f"tts_models/{language}/{arch}|{arch}|Ein Satz | mit Strich.\n")  # fmt: skip
        _write(root / "fake" / language / model / "meta.csv", MLAAD_HEADER + "".join(rows))
    return root, {}


TREES = {
    "asvspoof2019-la": _asvspoof2019,
    "asvspoof2019-pa": lambda root: _asvspoof2019(root, "PA"),
    "asvspoof2021-la": _asvspoof2021("LA"),
    "asvspoof2021-df": _asvspoof2021("DF"),
    "asvspoof5": _asvspoof5,
    "custom": _custom,
    "fakeorreal": _fakeorreal,
    "in-the-wild": _in_the_wild,
    "minispoof": _asvspoof2019,
    "mlaad": _mlaad,
}


def test_every_corpus_has_a_generated_tree() -> None:
    assert sorted(TREES) == sorted(list_corpora())


@pytest.mark.parametrize("name", list_corpora())
def test_corpus_contract(name: str, tmp_path: Path) -> None:
    corpus = get_corpus(name)
    assert corpus.name == name and set(corpus.splits) <= set(SPLITS) and corpus.splits
    data_dir, protocols = TREES[name](tmp_path / "tree")
    sources = resolve_sources(name, data_dir, protocols)
    assert list(sources) == list(corpus.splits)
    conditions = set()
    for split, source in sources.items():
        trials = load_split(source)
        assert check_audio(trials, split) and len({t.utt for t in trials}) == len(trials)
        keys = {t.key for t in trials}
        assert keys == {"bonafide", "spoof"}, (split, keys)
        conditions |= {c for t in trials for c in t.conditions}
    assert conditions == set(corpus.conditions)  # the entry names exactly the conditions its reader fills
    assert isinstance(corpus.revised_tdcf, bool) and (corpus.asv_rates is None or len(corpus.asv_rates) == 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises((DataError, UserError), match="empty|--protocol"):  # one line naming the folder
        resolve_sources(name, tmp_path / "empty")


def test_registry_lookups() -> None:
    with pytest.raises(UserError, match=r"unknown spoofing data 'asvspoof2020'; expected one of asvspoof2019-la, "):
        get_corpus("asvspoof2020")
    with pytest.raises(ValueError, match="registered twice"):
        register_corpus("mlaad")(lambda root: {})
    assert get_corpus("asvspoof5").asv_rates is not None and get_corpus("asvspoof2021-df").revised_tdcf
    assert not get_corpus("asvspoof2019-la").revised_tdcf and get_corpus("in-the-wild").splits == ("eval",)
    assert "in-the-wild (evaluation only)" in corpora_help() and "fakeorreal" in corpora_help()


def test_fakeorreal_layout(tmp_path: Path) -> None:
    """Labels from the real/ and fake/ folders, training / validation / testing as train / dev / eval; a version's
    folder found one level down (Kaggle's for-norm/for-norm/), several versions refused, MP3 read as audio."""
    data_dir, _ = _fakeorreal(tmp_path)
    version = data_dir / "for-norm"
    sources = resolve_sources("fakeorreal", data_dir)
    assert {s: src.protocol for s, src in sources.items()} == {
        "train": version / "training", "dev": version / "validation", "eval": version / "testing"}
    trials = load_split(sources["dev"])
    assert [(t.utt, t.key, t.attack) for t in trials] == [
        ("validation/real/file0.wav_16k.wav_norm.wav", "bonafide", "-"),
        ("validation/real/file1.wav_16k.wav_norm.wav", "bonafide", "-"),
        ("validation/fake/file0.wav_16k.wav_norm.wav", "spoof", "-"),
        ("validation/fake/file1.wav_16k.wav_norm.wav", "spoof", "-")]  # fmt: skip
    assert trials[2].path == version / "validation" / "fake" / "file0.wav_16k.wav_norm.wav"
    _fakeorreal(tmp_path, "for-2sec")
    with pytest.raises(DataError, match=r"several Fake-or-Real versions \(for-2sec/for-2sec, for-norm/for-norm\); "
                                        r"give --data-dir one of them"):
        resolve_sources("fakeorreal", tmp_path)
    original = tmp_path / "for-original"
    for label in ("real", "fake"):
        _tone(original / "testing" / label / "file9.mp3", fmt="MP3")
        (original / "testing" / label / "notes.txt").write_text("not audio")
    trials = load_split(resolve_sources("fakeorreal", original)["eval"])
    assert [t.utt for t in trials] == ["testing/real/file9.mp3", "testing/fake/file9.mp3"]
    assert check_audio(trials, "eval")
    (original / "validation" / "real").mkdir(parents=True)
    with pytest.raises(DataError, match=r"validation: no fake/ folder \(Fake-or-Real: validation/real/ and fake/\)"):
        load_split(resolve_sources("fakeorreal", original)["dev"])


def test_mlaad_fakes_and_their_sources(tmp_path: Path) -> None:
    """Every fake of every meta.csv, with the M-AILABS utterance it was made from as a bona fide trial in the same
    split (split by the source's book); the model folder is the attack, language and architecture conditions."""
    from lcnn.data.corpora.mlaad import split_of

    root, _ = _mlaad(tmp_path)
    sources = resolve_sources("mlaad", root)
    splits = {split: load_split(source) for split, source in sources.items()}
    spoofs = [t for trials in splits.values() for t in trials if t.key == "spoof"]
    bona = [t for trials in splits.values() for t in trials if t.key == "bonafide"]
    assert len(spoofs) == 2 * len(BOOKS) and len(bona) == len(BOOKS)  # each source once, though two fakes name it
    assert {split_of(b) for b in BOOKS} == set(SPLITS)
    for split, trials in splits.items():
        books = {"/".join(t.utt.split("/")[:5]) for t in trials if t.key == "bonafide"}
        assert books == {b for b in BOOKS if split_of(b) == split}
        for t in trials:
            if t.key == "spoof":  # its source sits in the same split
                assert any(b.utt.endswith(Path(t.utt).name) for b in trials if b.key == "bonafide")
    fake = next(t for t in spoofs if t.utt == "fake/de/tts_models_de_thorsten_vits/emerald_city_f000000.wav")
    assert (fake.attack, fake.speaker, fake.conditions) == ("tts_models_de_thorsten_vits", "judy_bieber",
                                                            {"language": "de", "architecture": "vits"})  # fmt: skip
    assert fake.path == root / fake.utt and all(t.conditions == {} for t in bona)
    source = next(t for t in bona if t.speaker == "judy_bieber")
    assert source.path == root / BOOKS[0] / "wavs" / "emerald_city_f000000.wav"
    # a missing source is an error when the split is checked; no M-AILABS at all, at once
    (root / BOOKS[1] / "wavs" / "jane_eyre_f000001.wav").unlink()
    split = split_of(BOOKS[1])
    with pytest.raises(DataError, match=rf"{split}: 1 of \d+ trials have no audio file, e\.g\. .*jane_eyre_f000001"):
        check_audio(load_split(resolve_sources("mlaad", root)[split]), split)
    for language in ("en_US", "en_UK", "de_DE", "fr_FR", "it_IT"):
        shutil.rmtree(root / language)
    with pytest.raises(DataError, match=r"no (en_US|de_DE)/ here; MLAAD's bona fide trials are the M-AILABS utterances "
                                        r"its fakes were made from .*: unpack M-AILABS beside fake/"):
        resolve_sources("mlaad", root)


@pytest.mark.parametrize(
    "text, message",
    [
        ("path|language|architecture\n", r"meta.csv, line 1: no original_file column"),
        (MLAAD_HEADER + "./fake/de/m/a.wav|en_US/by_book/f/s/b/wavs/a.wav|de\n", r"meta.csv, line 2: 3 fields, "
         r"expected the 9 of its header"),
        (MLAAD_HEADER + "./fake/de/m/a.wav|../../etc/x.wav|de|True|1|d|m|vits|t\n", r"meta.csv, line 2: path "
         r"'../../etc/x.wav' leaves the data folder"),
    ],
)  # fmt: skip
def test_mlaad_malformed_meta(tmp_path: Path, text: str, message: str) -> None:
    _write(tmp_path / "fake" / "de" / "m" / "meta.csv", text)
    with pytest.raises(DataError, match=message):
        load_split(resolve_sources("mlaad", tmp_path)["train"])


@pytest.mark.parametrize("name", ["fakeorreal", "mlaad"])
def test_datamodule_splits(name: str, tmp_path: Path) -> None:
    """The spoof task's DataModule sets up the generated trees: every split, both classes, audio checked."""
    from lcnn.tasks.spoof.data import SpoofDataModule

    data_dir, _ = TREES[name](tmp_path / "tree")
    dm = SpoofDataModule(name, str(data_dir), frames=16, cache_dir=str(tmp_path / "cache"))
    dm.setup()
    counts = {split: Counter(t.key for t in ds.trials) for split, ds in dm.splits.items()}
    assert list(counts) == ["train", "dev", "eval"] and dm.test_splits == ["dev", "eval"]
    if name == "fakeorreal":
        assert all(c == {"bonafide": 2, "spoof": 2} for c in counts.values())
    else:
        assert sum(c["spoof"] for c in counts.values()) == 2 * sum(c["bonafide"] for c in counts.values()) == 16


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fakeorreal", "mlaad"])
def test_train_one_epoch(name: str, tmp_path: Path) -> None:
    """``lcnn train --task spoof --data fakeorreal`` (``mlaad``) on the generated tree: one epoch, and its test
    scores every file of the eval split once."""
    from lcnn.cli import main

    data_dir, _ = TREES[name](tmp_path / "tree")
    run = tmp_path / "run"
    assert main(["train", "--task", "spoof", "--data", name, "--data-dir", str(data_dir), "--model", "lcnn",
                 "--frames", "16", "--epochs", "1", "--batch-size", "4", "--cache-dir", str(tmp_path / "cache"),
                 "--out", str(run)]) == 0  # fmt: skip
    ids = [line.split()[0] for line in (run / "scores-eval.txt").read_text().splitlines()]
    assert sorted(ids) == sorted(t.utt for t in load_split(resolve_sources(name, data_dir)["eval"]))
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["eval_eer"] <= 1 and metrics["eval_min_tdcf"] is None
