"""The ASVspoof 5, ASVspoof 2021 (keys with their conditions) and In-the-Wild readers and layouts, on files
generated in the exact distributed formats; and the refusal of malformed lines, with file and line number."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from lcnn.data.asvspoof import load_split, resolve_sources
from lcnn.data.protocols import read_protocol
from lcnn.errors import DataError

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
