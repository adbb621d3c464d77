"""Augmentation specs: parsing and validation (one-line UserErrors), JSON round trips, codec chains, and the
per-utterance augmenter's seeding."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from lcnn.audio import (
    DEFAULT_CODECS,
    AugmentSpec,
    CodecSpec,
    CodecStep,
    NoiseSpec,
    RawBoost,
    RawBoostSpec,
    SpeedSpec,
    UtteranceAugment,
    apply_chain,
    augment_seed,
    build_augmenters,
    codec_roundtrip,
    parse_augment,
    parse_chain,
)
from lcnn.audio.codecs import check_codecs
from lcnn.audio.ffmpeg import FFMPEG_ENV, _ffmpeg_candidates
from lcnn.errors import DataError, UserError

FS = 16000


@pytest.fixture(autouse=True)
def _fresh_ffmpeg_lookup():
    yield
    _ffmpeg_candidates.cache_clear()


@pytest.fixture
def corpora(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny MUSAN-like noise folder and RIRS_NOISES-like RIR folder."""
    rng = np.random.default_rng(0)
    noise = tmp_path / "musan" / "noise" / "free-sound"
    noise.mkdir(parents=True)
    for i in range(3):
        sf.write(noise / f"noise-free-sound-000{i}.wav", 0.1 * rng.standard_normal(6000 + 1000 * i), FS)
    rirs = tmp_path / "RIRS_NOISES" / "simulated_rirs" / "smallroom" / "Room001"
    rirs.mkdir(parents=True)
    for i in range(2):
        h = np.zeros(400)
        h[10] = 1.0
        h[11:] = 0.3 * rng.standard_normal(389) * np.exp(-np.arange(389) / 60)
        sf.write(rirs / f"Room001-0000{i}.wav", h, FS, subtype="FLOAT")
    return tmp_path / "musan", tmp_path / "RIRS_NOISES"


def need_codecs(*names: str) -> None:
    try:
        check_codecs(names)
    except UserError as err:
        pytest.skip(str(err))


def voice(n: int = 6000) -> np.ndarray:
    t = np.arange(n) / FS
    x = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 15)) * (0.6 - 0.4 * np.cos(2 * np.pi * 3 * t))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------
# Parsing


def test_parse_all_kinds_and_round_trip_through_json(corpora):
    need_codecs("mp3", "opus")
    noise, rirs = corpora
    spec = parse_augment(
        ["rawboost:5", "codec:mp3,opus@p=0.5", f"noise:{noise}@snr=5,20", f"reverb:{rirs}@p=0.3", "speed"]
    )
    assert spec.rawboost == RawBoostSpec(5)
    assert spec.codec == CodecSpec(("mp3", "opus"), p=0.5)
    assert spec.noise == NoiseSpec(str(noise), (5.0, 20.0))
    assert spec.reverb is not None and spec.reverb.p == 0.3
    assert spec.speed == SpeedSpec((0.9, 1.0, 1.1))
    again = AugmentSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert parse_augment(spec.to_args()) == spec


def test_defaults_and_empty():
    assert parse_augment([]).is_empty
    spec = parse_augment(["speed:0.95,1.05@p=0.25", "rawboost:3"])
    assert spec.speed == SpeedSpec((0.95, 1.05), p=0.25) and spec.rawboost == RawBoostSpec(3)
    assert not spec.is_empty and spec.per_utterance
    assert parse_augment(["codec"], check=False).codec == CodecSpec(DEFAULT_CODECS)


@pytest.mark.parametrize(
    "item, message",
    [
        ("flanger", "unknown augmentation 'flanger'; expected one of rawboost, codec, noise, reverb, speed"),
        ("rawboost:9", "unknown algo 9; expected 1..8"),
        ("rawboost:0", "unknown algo 0"),
        ("rawboost", "expected rawboost:ALGO"),
        ("rawboost:two", "expected rawboost:ALGO"),
        ("codec:mp3,wma", "unknown codec 'wma'"),
        ("codec:mp3,mp3", "codec listed twice"),
        ("noise", "expected noise:DIR"),
        ("reverb:", "expected reverb:DIR"),
        ("speed:0,1", "factors must be positive"),
        ("speed:fast", "speed factor 'fast' is not a number"),
        ("codec@p=2", "p must be a probability"),
        ("codec@q=1", "unknown option 'q'; codec takes p"),
        ("speed@snr=1,2", "unknown option 'snr'"),
        ("noise:/x@snr=20,10", "LO <= HI"),
        ("noise:/x@snr=20", "expected @snr=LO,HI"),
    ],
)
def test_bad_items(item, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(".", r"\.")) as info:
        parse_augment([item], check=False)
    assert "\n" not in str(info.value)


def test_item_given_twice():
    with pytest.raises(UserError, match="speed given twice"):
        parse_augment(["speed", "speed:1.1"])


def test_folders_are_checked(tmp_path, corpora):
    noise, rirs = corpora
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="noise folder .*absent: not found .*musan/noise"):
        parse_augment([f"noise:{tmp_path / 'absent'}"])
    with pytest.raises(DataError, match="noise folder .*empty: no .wav/.flac files"):
        parse_augment([f"noise:{tmp_path / 'empty'}"])
    with pytest.raises(DataError, match="RIR folder .*empty: no impulse-response .*simulated_rirs"):
        parse_augment([f"reverb:{tmp_path / 'empty'}"])
    # Checking is separate from the structure: a stored spec loads without its folders.
    spec = parse_augment([f"noise:{tmp_path / 'absent'}"], check=False)
    assert AugmentSpec.from_dict(spec.to_dict()) == spec


def test_missing_ffmpeg_is_reported_up_front(monkeypatch, tmp_path):
    monkeypatch.setenv(FFMPEG_ENV, str(tmp_path / "nope"))
    with pytest.raises(UserError, match=f"{FFMPEG_ENV}=.*nope: no executable ffmpeg"):
        parse_augment(["codec:mulaw"])
    with pytest.raises(UserError, match="no executable ffmpeg"):
        parse_chain("mulaw")
    parse_augment(["speed", "rawboost:1"])  # needs no ffmpeg


def test_missing_encoder_is_reported_up_front(monkeypatch):
    try:
        check_codecs([])
    except UserError as err:
        pytest.skip(str(err))
    monkeypatch.setattr("lcnn.audio.codecs.ffmpeg_encoders", lambda _: frozenset({"libmp3lame"}))
    with pytest.raises(UserError, match="codec opus needs the ffmpeg encoder libopus"):
        parse_augment(["codec:mp3,opus"])


def test_from_dict_rejects_bad_configs():
    with pytest.raises(UserError, match="unknown augmentation 'echo'"):
        AugmentSpec.from_dict({"echo": {}})
    with pytest.raises(UserError, match="rawboost: unknown field 'N_f'"):
        AugmentSpec.from_dict({"rawboost": {"algo": 1, "N_f": 3}})
    with pytest.raises(UserError, match="rawboost: unknown algo 12"):
        AugmentSpec.from_dict({"rawboost": {"algo": 12}})
    with pytest.raises(UserError, match="rawboost"):
        AugmentSpec.from_dict({"rawboost": {}})
    with pytest.raises(UserError, match="expected a mapping"):
        AugmentSpec.from_dict([])  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------
# Chains


def test_parse_chain_steps():
    steps = parse_chain("mp3:32k, opus:16000,mulaw,amr:4.75k", check=False)
    assert steps == [CodecStep("mp3", 32000), CodecStep("opus", 16000), CodecStep("mulaw"), CodecStep("amr", 4750)]
    assert [str(s) for s in steps] == ["mp3:32k", "opus:16k", "mulaw", "amr:4.75k"]
    assert parse_chain("mulaw:64k", check=False) == [CodecStep("mulaw")]


@pytest.mark.parametrize(
    "chain, message",
    [
        ("", "expected CODEC"),
        ("mp3:32k,,mulaw", "expected CODEC"),
        ("mp4:32k", "unknown codec 'mp4'"),
        ("mp3", "codec mp3 needs a bitrate in a chain, e.g. mp3:48k"),
        ("mp3:33k", "bitrate 33k is not one of 8k, 16k"),
        ("opus:512k", "bitrate 512k is outside 6k..256k"),
        ("mulaw:32k", "bitrate 32k is not one of 64k"),
        ("vorbis:fast", "bitrate 'fast' is not a number"),
    ],
)
def test_bad_chains(chain, message):
    with pytest.raises(UserError, match=message.replace(".", r"\.")) as info:
        parse_chain(chain, check=False)
    assert "\n" not in str(info.value)


def test_apply_chain_is_the_composition_and_deterministic():
    need_codecs("mp3", "opus", "mulaw")
    x = voice()
    steps = parse_chain("mp3:32k,opus:16k,mulaw")
    y = apply_chain(x, steps)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_array_equal(y, apply_chain(x, "mp3:32k,opus:16k,mulaw"))
    expected = codec_roundtrip(codec_roundtrip(codec_roundtrip(x, "mp3:32k"), "opus:16k"), "mulaw")
    np.testing.assert_array_equal(y, expected)
    assert np.corrcoef(x, y)[0, 1] > 0.95


# ---------------------------------------------------------------------------------------------------------
# Running a spec


def test_augment_seed():
    a = augment_seed(1234, 3, 17)
    assert a == augment_seed(1234, 3, 17) and 0 <= a < 2**63
    assert len({augment_seed(1234, e, i) for e in range(5) for i in range(200)}) == 1000
    assert augment_seed(-1, 0) != augment_seed(1, 0)
    torch.tensor([a], dtype=torch.int64)  # fits


def test_utterance_augment_is_seeded_and_typed(corpora):
    need_codecs("mulaw", "alaw", "mp3")
    noise, rirs = corpora
    spec = parse_augment(["codec:mulaw,alaw,mp3", f"noise:{noise}", f"reverb:{rirs}", "speed", "rawboost:4"])
    worker, batch = build_augmenters(spec)
    assert isinstance(worker, UtteranceAugment) and isinstance(batch, RawBoost) and batch.algo == 4
    x = voice()
    outs = [worker(x, seed) for seed in (7, 8, 7)]
    np.testing.assert_array_equal(outs[0], outs[2])
    assert outs[0].shape != outs[1].shape or not np.array_equal(outs[0], outs[1])
    lengths = {len(worker(x, seed)) for seed in range(6)}
    assert lengths <= {len(x), -(-len(x) * 10 // 9), -(-len(x) * 10 // 11)} and len(lengths) > 1
    as_tensor = worker(torch.from_numpy(x), 7)
    assert isinstance(as_tensor, torch.Tensor)
    np.testing.assert_array_equal(as_tensor.numpy(), outs[0])
    clone = pickle.loads(pickle.dumps(worker))  # for spawned workers
    np.testing.assert_array_equal(clone(x, 7), outs[0])


def test_utterance_augment_stages_draw_independently(corpora):
    """Adding an augmentation does not change the others' draws for the same seed."""
    noise, _ = corpora
    x = voice()
    noise_only = UtteranceAugment(parse_augment([f"noise:{noise}"]))
    with_speed_off = UtteranceAugment(parse_augment(["speed@p=0", f"noise:{noise}"]))
    for seed in range(5):
        np.testing.assert_array_equal(noise_only(x, seed), with_speed_off(x, seed))
    assert UtteranceAugment(parse_augment([f"noise:{noise}@p=0"]))(x, 1).tolist() == x.tolist()


def test_noise_stage_hits_the_snr_range(corpora):
    noise, _ = corpora
    worker = UtteranceAugment(parse_augment([f"noise:{noise}@snr=3,6"]))
    x = voice()
    for seed in range(10):
        y = worker(x, seed)
        snr = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum((y - x).astype(np.float64) ** 2))
        assert 3 - 1e-3 <= snr <= 6 + 1e-3


def test_build_augmenters_splits_the_spec():
    worker, batch = build_augmenters(parse_augment(["rawboost:2@p=0.5"]))
    assert worker is None and batch is not None and batch.p == 0.5
    worker, batch = build_augmenters(parse_augment(["speed"]))
    assert worker is not None and batch is None
