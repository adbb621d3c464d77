"""NII's LCNN family (Wang & Yamagishi 2021) in lcnn: the official arithmetic (floored pooled lengths, the fixed
back-end's window), scores that do not depend on batch mates, the heads, the new front-ends, and (slow) every
design of the study trained for an epoch through ``lcnn train --task spoof``."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from lcnn.audio import LFB, LFCC, LogPowerSpectrogram, PowerSpectrogram
from lcnn.models import create_model
from lcnn.tasks.spoof.module import SpoofModule


def _randomise_norms(model: torch.nn.Module) -> torch.nn.Module:
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.normal_()  # BatchNorm's shift makes padding non-zero unless it is masked
    return model.eval()


@pytest.mark.parametrize("name, kw", [("lcnn_lstm", {}), ("lcnn_lstm", {"pooling": "sum"}), ("lcnn_attention", {}),
                                      ("lcnn_fixed", {}), ("lcnn_attention", {"filterbank": 60})])  # fmt: skip
def test_a_score_is_the_utterance_s_alone_to_the_bit(name: str, kw: dict) -> None:
    torch.manual_seed(0)
    features = 257 if kw.get("filterbank") else 60
    model = _randomise_norms(create_model(name, num_classes=1, input_shape=(1, None, features), **kw))
    longest = 803 if name == "lcnn_fixed" else 203  # past the fixed back-end's 750 frames
    x = torch.rand(3, 1, longest, features)
    lengths = torch.tensor([41, longest, 130])  # none a multiple of 16
    with torch.no_grad():
        batch = model(x, lengths)
        for i, n in enumerate(lengths.tolist()):
            alone = x[i : i + 1, :, :n].clone()
            assert torch.equal(model(alone), batch[i : i + 1])            # what the official computes
            assert torch.equal(model(alone, torch.tensor([n])), batch[i : i + 1])


def test_pooled_lengths_floor_as_the_official_network() -> None:
    torch.manual_seed(0)
    model = _randomise_norms(create_model("lcnn_lstm", num_classes=1, pooling="sum"))
    x = torch.rand(1, 1, 47, 60)  # 47 frames: 2 pooled steps (47 // 16), not 3
    with torch.no_grad():
        h = model.features(x).permute(0, 2, 1, 3).flatten(2)
        assert h.shape[1] == 2
        expected = model.classifier((model.lstm(h)[0] + h).sum(1))
        assert torch.equal(model(x, torch.tensor([47])), expected)
        # the rule lcnn had (a pooled length rounded up: 3 steps, the last one of zero padding) scores otherwise
        ceil = model(torch.nn.functional.pad(x, (0, 0, 0, 1)))
        assert (ceil - expected).abs().max() > 1e-4


def test_fixed_back_end_window() -> None:
    model = create_model("lcnn_fixed", num_classes=1).eval()
    x = torch.arange(900.0)[None, None, :, None].expand(2, 1, 900, 60)
    window = model.trim_or_tile(x, torch.tensor([41, 900]))[:, 0, :, 0]
    assert window.shape == (2, 750)
    assert torch.equal(window[0], torch.arange(750.0) % 40)  # 41 frames count 40 (samples // hop), tiled
    assert torch.equal(window[1], torch.arange(750.0))  # longer: the first 750 frames (pinned, not random)
    model.train()
    torch.manual_seed(0)
    starts = {int(model.trim_or_tile(x[1:], torch.tensor([900]))[0, 0, 0, 0]) for _ in range(20)}
    assert len(starts) > 1 and max(starts) < 899 - 750  # training: a random window


@pytest.mark.parametrize("loss", ["amsoftmax", "p2sgrad", "ocsoftmax"])
def test_angular_heads_train_and_score(loss: str) -> None:
    torch.manual_seed(0)
    module = SpoofModule(model="lcnn_attention", n_features=60, loss=loss, embedding=64)
    x, labels = torch.randn(4, 1, 48, 60), torch.tensor([1, 0, 1, 0])
    out = module(x, torch.tensor([48, 40, 48, 33]))
    assert out.shape == (4, 64)
    value = module.loss(out, labels)
    value.backward()
    assert math.isfinite(value.item())
    scores = module.eval().score(module(x, torch.tensor([48, 40, 48, 33])))
    if loss == "amsoftmax":  # softmax of two cosines: within (1 / (1 + e^2), 1 / (1 + e^-2))
        assert scores.min() > 1 / (1 + math.e**2) and scores.max() < 1 / (1 + math.e**-2)
    else:
        assert scores.abs().max() <= 1


def test_lfb_and_power_front_ends() -> None:
    torch.manual_seed(0)
    wave = torch.randn(2, 8000)
    lfb, lfcc = LFB(), LFCC(n_fft=512, n_filters=60, with_energy=False, with_delta=False)
    assert lfb.n_features == 60 and lfb(wave).shape == (2, 51, 60)
    torch.testing.assert_close(lfb(wave) @ lfcc.dct, lfcc(wave))  # LFB: the LFCC before its DCT
    power = PowerSpectrogram()(wave)
    log = LogPowerSpectrogram(n_fft=512, win_length=320, window="hamming", pre_emphasis=0.97)(wave)
    assert power.shape == (2, 51, 257) and (power >= 0).all()
    torch.testing.assert_close(torch.log(power + 1e-10), log)


@pytest.mark.slow
def test_every_design_of_the_study_trains_an_epoch(tmp_path: Path) -> None:
    from test_spoof_task import make_la_tree

    from lcnn.cli import main
    from lcnn.tasks.spoof.official import FEATURES, LOSSES, NETS, Variant, train_arguments

    data = make_la_tree(tmp_path / "data")
    variants = [Variant("asvspoof2021", "lfcc2021", "lstmsum", "sig")] + [
        Variant(f"{f}-lcnn-{n}-{lo}", f, n, lo) for f in FEATURES for n in NETS for lo in LOSSES]
    for variant in variants:
        out = tmp_path / variant.name
        assert main(["train", "--task", "spoof", "--data", "asvspoof2019-la", "--data-dir", str(data),
                     *train_arguments(variant), "--epochs", "1", "--batch-size", "8",
                     "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]) == 0, variant.name  # fmt: skip
        assert (out / "checkpoints" / "best.ckpt").exists(), variant.name


def test_fixed_back_end_takes_the_recipes_frames_as_its_window() -> None:
    """Trained by lcnn, ``lcnn_fixed`` windows ``--frames`` (MiniSpoof: 64); loaded without one, the study's 750."""
    from types import SimpleNamespace

    from lcnn.tasks import get_task

    data = SimpleNamespace(n_features=60, frames=None, frontend_config={"name": "lfcc"})
    task = get_task("spoof")
    assert task.module_settings({"model": "lcnn_fixed", "frames": 64}, data)["window"] == 64
    assert task.module_settings({"model": "lcnn_lstm", "frames": 64}, data)["window"] is None
    assert SpoofModule(model="lcnn_fixed", window=64).model.frames == 64
    assert SpoofModule(model="lcnn_fixed").model.frames == 750
