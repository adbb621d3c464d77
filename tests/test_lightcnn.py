"""The official LightCNN face models: parity with the official code, official state_dict keys, loading of
released checkpoints and the fast inference path."""

from __future__ import annotations

import argparse
import json
import math
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lcnn
from lcnn.inference import WinogradConv2d, optimize_for_inference
from lcnn.layers import FusedMaxAvgPool2d, MaxAvgPool2d
from lcnn.models import CheckpointError, create_model, list_models, load_lightcnn

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
OFFICIAL = {
    "lightcnn9": "LightCNN_9Layers",
    "lightcnn29": "LightCNN_29Layers",
    "lightcnn29v2": "LightCNN_29Layers_v2",
    "lightcnn_v4": "LightCNN_V4",
}
ARCHS = list(OFFICIAL)


def _fixtures() -> tuple[dict, np.lib.npyio.NpzFile]:
    meta, arrays = FIXTURES / "lightcnn_parity.json", FIXTURES / "lightcnn_parity.npz"
    if not (meta.is_file() and arrays.is_file()):
        pytest.skip(f"LightCNN parity fixtures not found in {FIXTURES}")
    return json.loads(meta.read_text()), np.load(arrays)


def _official_weights(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """The fixture weights: crc32-seeded randn, scaled by 1/sqrt(fan-in) (matrices) or 0.01 (vectors)."""
    out = {}
    for key, shape in shapes.items():
        t = torch.randn(shape, generator=torch.Generator().manual_seed(zlib.crc32(key.encode())))
        out[key] = t / math.sqrt(math.prod(shape[1:])) if len(shape) >= 2 else t * 0.01
    return out


@pytest.fixture(scope="module")
def fixtures():
    return _fixtures()


@pytest.fixture(scope="module")
def official(fixtures):
    """arch -> (official state dict, input batch, feature, logits or None, num_classes)."""
    meta, arrays = fixtures
    out = {}
    for arch, name in OFFICIAL.items():
        entry = meta[name]
        logits = torch.from_numpy(arrays[f"{name}/logits"]) if f"{name}/logits" in arrays.files else None
        out[arch] = (
            _official_weights(entry["state_dict"]),
            torch.from_numpy(arrays[f"{name}/input"]),
            torch.from_numpy(arrays[f"{name}/feature"]),
            logits,
            entry["num_classes"] or 0,
        )
    return out


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _save(tmp_path: Path, obj, name: str = "ckpt.pth.tar") -> Path:
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_registered():
    assert set(ARCHS) <= set(list_models())


@pytest.mark.parametrize("arch", ARCHS)
def test_state_dict_keys_are_official(arch, fixtures):
    meta, _ = fixtures
    entry = meta[OFFICIAL[arch]]
    model = create_model(arch, num_classes=entry["num_classes"] or 0)
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert list(shapes) == list(entry["state_dict"])  # same keys, same order
    assert shapes == entry["state_dict"]


@pytest.mark.parametrize("arch", ARCHS)
def test_parity_with_official(arch, official):
    weights, x, feature, logits, num_classes = official[arch]
    model = create_model(arch, num_classes=num_classes).eval()
    model.load_state_dict(weights, strict=True)
    with torch.no_grad():
        ours = model.embed(x)
        assert ours.shape == (x.shape[0], 256)
        assert _rel(ours, feature) <= 1e-4
        if logits is not None:
            assert _rel(model.classify(ours), logits) <= 1e-4
            assert torch.equal(model.classify(ours), model.fc2(ours))  # no dropout in eval mode


def test_default_classes_are_the_released_ones():
    with torch.device("meta"):
        assert lcnn.models.lightcnn.lightcnn9().fc2.out_features == 79077
        assert lcnn.models.lightcnn.lightcnn29().fc2.out_features == 79077
        v2 = lcnn.models.lightcnn.lightcnn29v2()
        assert v2.fc2.out_features == 80013 and v2.fc2.bias is None
        assert lcnn.models.lightcnn.lightcnn_v4().fc2 is None


def test_train_mode_dropout_as_official():
    """Official: logits = fc2(dropout(feature, p=0.5)) while training; the feature itself is not dropped."""
    torch.manual_seed(0)
    model = create_model("lightcnn9", num_classes=7).train()
    x = torch.rand(2, 1, 128, 128)
    with torch.no_grad():
        feature = model.embed(x)
        torch.manual_seed(1)
        logits = model(x)
        torch.manual_seed(1)
        expected = model.fc2(F.dropout(feature, p=0.5, training=True))
        torch.manual_seed(2)
        other = model(x)
        assert torch.equal(model.embed(x), feature)
    torch.testing.assert_close(logits, expected)
    assert not torch.allclose(logits, other)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_embedder_has_no_classifier():
    for arch in ARCHS:
        with torch.device("meta"):
            model = create_model(arch, num_classes=0)
        assert not any(k.startswith("fc2.") for k in model.state_dict())
    model = create_model("lightcnn9", num_classes=0).eval()
    x = torch.rand(3, 1, 128, 128)
    with torch.no_grad():
        assert torch.equal(model(x), model.embed(x))
        assert model(x).shape == (3, 256)


def test_bad_input_is_refused():
    model = create_model("lightcnn9", num_classes=0).eval()
    with pytest.raises(ValueError, match="128x128"):
        model(torch.rand(1, 1, 96, 96))
    with pytest.raises(ValueError, match=r"\(N, 1, 128, 128\)"):
        model(torch.rand(1, 3, 128, 128))


@pytest.mark.parametrize("arch", ["lightcnn9", "lightcnn29v2"])
def test_round_trip_released_layout(arch, official, tmp_path):
    """A checkpoint as the official train.py writes it: DataParallel keys inside ``state_dict``."""
    weights, x, feature, logits, num_classes = official[arch]
    path = _save(tmp_path, {"epoch": 3, "arch": "LightCNN", "prec1": torch.tensor(97.0),
                            "state_dict": {"module." + k: v for k, v in weights.items()}})  # fmt: skip
    model = load_lightcnn(path, arch)
    assert not model.training
    assert model.fc2.out_features == num_classes
    loaded = model.state_dict()
    assert list(loaded) == list(weights) and all(torch.equal(loaded[k], v) for k, v in weights.items())
    with torch.no_grad():
        ours = model.embed(x)
        assert _rel(ours, feature) <= 1e-4
        assert _rel(model.classify(ours), logits) <= 1e-4


def test_bare_state_dict_and_official_arch_names(official, tmp_path):
    weights, x, feature, _, _ = official["lightcnn_v4"]
    path = _save(tmp_path, weights)
    for arch in ("lightcnn_v4", "LightCNN-V4"):
        model = load_lightcnn(path, arch)
        assert model.fc2 is None
        with torch.no_grad():
            assert _rel(model(x), feature) <= 1e-4
    assert isinstance(lcnn.load_lightcnn(_save(tmp_path, official["lightcnn9"][0], "nine.pth"), "LightCNN-9"),
                      lcnn.models.lightcnn.LightCNN9)  # fmt: skip


def test_num_classes_override_and_embedder(official, tmp_path):
    weights, x, feature, _, _ = official["lightcnn9"]
    path = _save(tmp_path, {"state_dict": {"module." + k: v for k, v in weights.items()}})
    tuned = load_lightcnn(path, "lightcnn9", num_classes=5)
    assert tuned.fc2.weight.shape == (5, 256)
    assert not torch.equal(tuned.fc2.bias, weights["fc2.bias"][:5])
    embedder = load_lightcnn(path, "lightcnn9", num_classes=0)
    assert embedder.fc2 is None and "fc2.weight" not in embedder.state_dict()
    with torch.no_grad():
        assert tuned(x).shape == (2, 5)
        assert _rel(tuned.embed(x), feature) <= 1e-4
        assert torch.equal(embedder(x), tuned.embed(x))


def test_wrong_architecture_is_refused(official, tmp_path):
    weights = official["lightcnn9"][0]
    path = _save(tmp_path, {"state_dict": {"module." + k: v for k, v in weights.items()}}, "LightCNN_9.pth.tar")
    with pytest.raises(CheckpointError) as info:
        load_lightcnn(path, "lightcnn29")
    message = str(info.value)
    assert "LightCNN_9.pth.tar" in message
    assert "missing keys" in message and "conv1.filter.weight" in message
    assert "unexpected keys" in message and "features.0.filter.weight" in message
    assert "'lightcnn9'" in message  # names the architecture the keys belong to
    with pytest.raises(CheckpointError):  # whatever num_classes: only the classifier may differ
        load_lightcnn(path, "lightcnn29", num_classes=0)


def test_shape_mismatch_is_refused(official, tmp_path):
    weights = dict(official["lightcnn9"][0])
    weights["features.2.conv.filter.bias"] = torch.zeros(10)
    path = _save(tmp_path, weights)
    with pytest.raises(CheckpointError, match=r"shape mismatches.*features\.2\.conv\.filter\.bias"):
        load_lightcnn(path, "lightcnn9")
    del weights["features.2.conv.filter.bias"]
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): features\.2\.conv\.filter\.bias"):
        load_lightcnn(_save(tmp_path, weights), "lightcnn9", num_classes=3)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pth.tar"
    path.write_text("this is not a checkpoint\n")
    with pytest.raises(CheckpointError) as info:
        load_lightcnn(path, "lightcnn9")
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    noise = tmp_path / "noise.bin"
    noise.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(CheckpointError, match="noise.bin: not a PyTorch checkpoint"):
        load_lightcnn(noise, "lightcnn9")
    unsafe = _save(tmp_path, {"state_dict": {}, "args": argparse.Namespace(lr=0.1)}, "unsafe.pth")
    with pytest.raises(CheckpointError, match=r"unsafe.pth: .* the argparse.Namespace object") as info:
        load_lightcnn(unsafe, "lightcnn9")
    assert "\n" not in str(info.value)
    junk = _save(tmp_path, {"state_dict": [1, 2, 3]}, "list.pth")
    with pytest.raises(CheckpointError, match="list.pth"):
        load_lightcnn(junk, "lightcnn9")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_lightcnn(tmp_path / "missing.pth", "lightcnn9")
    with pytest.raises(ValueError, match="unknown LightCNN architecture"):
        load_lightcnn(junk, "resnet50")


def test_fused_pool_matches():
    x = torch.randn(2, 6, 16, 12)
    for layout in (torch.contiguous_format, torch.channels_last):
        y = x.contiguous(memory_format=layout)
        torch.testing.assert_close(FusedMaxAvgPool2d()(y), MaxAvgPool2d()(y))
    odd = torch.randn(1, 2, 7, 9)
    torch.testing.assert_close(FusedMaxAvgPool2d()(odd), MaxAvgPool2d()(odd))


@pytest.mark.parametrize("size", [16, 8, 4])
def test_winograd_matches_direct_convolution(size):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(24, 40, 3, padding=1)
    fast = WinogradConv2d(conv, max_size=16)
    x = torch.randn(3, 24, size, size).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        exact = F.conv2d(x.double(), conv.weight.double(), conv.bias.double(), padding=1)
        ours = fast(x)
    assert ours.shape == exact.shape and ours.is_contiguous(memory_format=torch.channels_last)
    assert float((ours - exact).abs().max() / exact.abs().max()) < 1e-5
    torch.testing.assert_close(fast(x.contiguous()), ours)  # any input layout


def test_winograd_falls_back_and_refuses():
    conv = torch.nn.Conv2d(4, 6, 3, padding=1)
    fast = WinogradConv2d(conv, max_size=16)
    for shape in [(1, 4, 18, 18), (1, 4, 32, 32), (1, 4, 16, 10)]:  # not a multiple of 4, too large
        x = torch.randn(shape)
        with torch.no_grad():
            torch.testing.assert_close(fast(x), conv(x))
    for bad in [torch.nn.Conv2d(4, 6, 3, stride=2, padding=1), torch.nn.Conv2d(4, 6, 5, padding=2),
                torch.nn.Conv2d(4, 6, 3, padding=0), torch.nn.Conv2d(4, 6, 3, padding=1, groups=2)]:  # fmt: skip
        assert not WinogradConv2d.supports(bad)
        with pytest.raises(ValueError, match="3x3"):
            WinogradConv2d(bad)


def test_optimize_for_inference(official):
    weights, x, feature, logits, num_classes = official["lightcnn29v2"]
    model = create_model("lightcnn29v2", num_classes=num_classes)
    model.load_state_dict(weights)
    fast32 = optimize_for_inference(model, precision="fp32")
    assert sum(isinstance(m, WinogradConv2d) for m in fast32.modules()) == 24  # every 3x3 MFM convolution
    assert any(isinstance(m, MaxAvgPool2d) for m in model.modules())  # the model itself is left as it was
    assert _rel(fast32.embed(x), feature) <= 1e-4
    assert _rel(fast32(x), logits) <= 1e-4
    fast16 = optimize_for_inference(model, precision="bf16")
    emb = fast16.embed(x)
    assert emb.dtype == torch.float32
    assert F.cosine_similarity(emb, feature).min() > 0.99
    with pytest.raises(ValueError, match="precision"):
        optimize_for_inference(model, precision="fp8")
    with pytest.raises(ValueError, match="backend"):
        optimize_for_inference(model, backend="tensorrt")


def test_optimize_for_inference_script(official):
    weights, x, feature, logits, num_classes = official["lightcnn9"]
    model = create_model("lightcnn9", num_classes=num_classes)
    model.load_state_dict(weights)
    fast = optimize_for_inference(model, backend="script", inplace=True)
    assert _rel(fast.embed(x), feature) <= 1e-4
    assert _rel(fast(x), logits) <= 1e-4


def test_optimize_for_inference_workers(official):
    """Batches cut into slices run by single-threaded workers give the same features."""
    weights, x, feature, _, num_classes = official["lightcnn9"]
    model = create_model("lightcnn9", num_classes=num_classes)
    model.load_state_dict(weights)
    threads = torch.get_num_threads()
    fast = optimize_for_inference(model, workers=2, channels_last=False, winograd=False)
    assert fast.embed(x).is_contiguous() and _rel(fast.embed(x), feature) <= 1e-4  # the plain way, batch 2
    fast = optimize_for_inference(model, workers=2)
    batch = torch.cat([x, x.flip(0)])  # 4 images: two slices of 2
    first, second = fast.embed(batch), fast.embed(batch)  # the first call runs the slices one by one
    torch.testing.assert_close(first, second)
    assert _rel(second[:2], feature) <= 1e-4 and _rel(second[2:], feature.flip(0)) <= 1e-4
    assert torch.get_num_threads() == threads  # the caller's thread setting is left as it was
    with pytest.raises(ValueError, match="workers"):
        optimize_for_inference(model, workers=0)


@pytest.mark.slow
def test_optimize_for_inference_compile(official):
    """torch.compile needs a C++ compiler and a minute or more: run with -m slow."""
    weights, x, feature, logits, num_classes = official["lightcnn29v2"]
    model = create_model("lightcnn29v2", num_classes=num_classes)
    model.load_state_dict(weights)
    fast = optimize_for_inference(model, backend="compile", inplace=True)
    assert _rel(fast.embed(x), feature) <= 1e-4
    assert _rel(fast(x), logits) <= 1e-4
