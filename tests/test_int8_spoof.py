"""Int8 of the LCNN spoof family (lcnn.inference.dynamic): scores close to fp32, a score that does not depend on
its batch mates, and `lcnn score --precision int8` / `lcnn predict --int8` end to end."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import lfilter
from torch import nn

from lcnn.audio import frontend_config
from lcnn.audio.pipeline import FeaturePipeline
from lcnn.cli import main
from lcnn.inference import int8_dynamic_unavailable, quantize_int8_dynamic
from lcnn.inference.dynamic import DynamicInt8MFMConv2d
from lcnn.models import create_model
from lcnn.score import read_scores

pytestmark = pytest.mark.skipif(bool(int8_dynamic_unavailable()), reason=str(int8_dynamic_unavailable()))

RATE = 16000
MODELS = ("lcnn_lstm", "lcnn_attention", "lcnn_fixed")


def speech_like(seconds: float, seed: int) -> torch.Tensor:
    """A voiced-speech-like wave: a jittered pulse train through two resonances, syllable-rate loudness, a noise
    floor and digital silence at both ends (exact zeros: the LFCC's log floor, a wide input range)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    pulses = np.zeros(n)
    t = 0.0
    while t < n:
        pulses[int(t)] = 1.0
        t += RATE / (110 + 40 * rng.random())
    wave = pulses
    for freq in (500 + 300 * rng.random(), 1500 + 800 * rng.random()):  # two-pole resonators
        r, theta = 0.97, 2 * math.pi * freq / RATE
        wave = lfilter([1.0], [1.0, -2 * r * math.cos(theta), r * r], wave)
    loud = 0.5 + 0.5 * np.sin(2 * math.pi * 4 * np.arange(n) / RATE + rng.random()) ** 2
    wave = wave / np.abs(wave).max() * loud + 0.003 * rng.standard_normal(n)
    edge = int(0.05 * RATE)
    wave[:edge], wave[-edge:] = 0.0, 0.0
    return torch.tensor(0.3 * wave, dtype=torch.float32)


@pytest.fixture(scope="module")
def utterances() -> list[torch.Tensor]:
    """LFCCs (the 2021 baseline's 60) of six speech-like waves of 0.6-1.6 s."""
    pipeline = FeaturePipeline(frontend_config("lfcc"))
    return [pipeline.features(pipeline.prepare(speech_like(0.6 + 0.2 * i, seed=i))) for i in range(6)]


def trained_statistics(name: str, utterances: list[torch.Tensor]) -> nn.Module:
    """A random-weight ``name`` whose BatchNorms hold the statistics of ``utterances`` (as training leaves them),
    in eval mode."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=1, **({"window": 160} if name == "lcnn_fixed" else {}))  # seconds of tests
    frames = min(len(u) for u in utterances)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.momentum = None  # the average over the batches seen
    with torch.no_grad():
        model.train()(torch.stack([u[:frames] for u in utterances])[:, None])
    return model.eval()


def padded(utterances: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    frames = max(len(u) for u in utterances)
    x = torch.stack([torch.nn.functional.pad(u, (0, 0, 0, frames - len(u))) for u in utterances])[:, None]
    return x, torch.tensor([len(u) for u in utterances])


@pytest.mark.parametrize("name", MODELS)
def test_int8_scores_are_close_to_fp32(name: str, utterances: list[torch.Tensor]) -> None:
    model = trained_statistics(name, utterances)
    int8 = quantize_int8_dynamic(model)
    # the kxk convolutions on several channels (four of the trunk's nine: not the first, not the 1x1 ones)
    assert sum(isinstance(m, DynamicInt8MFMConv2d) for m in int8.modules()) == 4
    x, lengths = padded(utterances)
    with torch.inference_mode():
        embeddings = model.embed(x, lengths), int8.embed(x, lengths)
        reference, scores = (m.classifier(e)[:, 0] for m, e in zip((model, int8), embeddings))
        embedded = torch.nn.functional.cosine_similarity(*embeddings)
    assert not torch.equal(reference, scores)  # int8 did run
    # Tolerances, on random weights (all utterances look alike to them: their scores barely spread, so a
    # trained model's evidence is the real one): embeddings within cosine 0.99 of fp32 (measured >= 0.994),
    # scores within 0.05 (measured <= 0.04, on scores of RMS 0.07-0.15). Int8 of the first convolution, on the
    # features themselves, or a wrong zero point fails them.
    assert float(embedded.min()) >= 0.99
    assert float((scores - reference).abs().max()) <= 0.05


@pytest.mark.parametrize("name", MODELS)
def test_an_int8_score_does_not_depend_on_its_batch_mates(name: str, utterances: list[torch.Tensor]) -> None:
    int8 = quantize_int8_dynamic(trained_statistics(name, utterances))
    x, lengths = padded(utterances[:4])
    with torch.inference_mode():
        batch = int8(x, lengths)
        for i, u in enumerate(utterances[:4]):
            assert torch.equal(batch[i], int8(u[None, None], torch.tensor([len(u)]))[0])
        # without lengths too: each item of a batch is quantized with its own ranges
        conv = next(m for m in int8.modules() if isinstance(m, DynamicInt8MFMConv2d))
        h = torch.randn(3, conv.qweight.shape[1], 20, 8) * torch.tensor([1.0, 10.0, 0.1]).view(3, 1, 1, 1)
        assert all(torch.equal(conv(h)[i], conv(h[i : i + 1])[0]) for i in range(3))


def test_score_and_predict_in_int8(checkpoint: Path, corpus: Path, tmp_path: Path, capsys) -> None:
    def score(out: Path, *extra: str) -> int:
        return main(["score", str(checkpoint), str(corpus / "protocol.txt"), "--audio-dir", str(corpus / "flac"),
                     "--out", str(out), "--no-cache", "--num-workers", "0", "--batch-size", "4", *extra])  # fmt: skip

    assert score(tmp_path / "fp32.txt") == 0 and score(tmp_path / "int8.txt", "--precision", "int8") == 0
    fp32, int8 = read_scores(tmp_path / "fp32.txt"), read_scores(tmp_path / "int8.txt")
    assert list(fp32.ids) == list(int8.ids) and not np.array_equal(fp32.scores, int8.scores)
    assert np.abs(fp32.scores - int8.scores).max() <= 0.05
    assert score(tmp_path / "again.txt", "--precision", "int8", "--batch-size", "1") == 0  # alone: the same scores
    assert np.array_equal(read_scores(tmp_path / "again.txt").scores, int8.scores)
    capsys.readouterr()
    utt = fp32.ids[0]
    assert main(["predict", str(checkpoint), str(corpus / "flac" / f"{utt}.flac"), "--int8"]) == 0
    assert float(capsys.readouterr().out.split("\t")[1]) == pytest.approx(float(int8.scores[0]), abs=1e-6)
    assert score(tmp_path / "gpu.txt", "--precision", "int8", "--accelerator", "gpu") == 2
    assert "--precision int8 runs on the CPU" in capsys.readouterr().err
