"""Int8 inference (lcnn.inference.quantize): exact MFM on the codes, embeddings close to fp32, refusals."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lcnn import build_lcnn
from lcnn.inference import fold_batchnorms, optimize_for_inference, quantize_int8
from lcnn.inference.quantize import Int8MFMConv2d, Int8ResBlock, _mfm_codes
from lcnn.layers import MFMConv2d
from lcnn.models import create_model

pytestmark = pytest.mark.skipif(
    not {"x86", "fbgemm", "onednn"} & set(torch.backends.quantized.supported_engines),
    reason="no x86 quantized engine in this torch build",
)


def smooth_images(n: int, channels: int, size: int, seed: int) -> torch.Tensor:
    """Natural-looking test images in [0, 1]: low-resolution noise, upsampled and normalised per image."""
    low = torch.rand(n, channels, size // 8, size // 8, generator=torch.Generator().manual_seed(seed))
    x = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    x = x - x.amin(dim=(1, 2, 3), keepdim=True)
    return x / x.amax(dim=(1, 2, 3), keepdim=True)


def test_mfm_on_codes_is_exact():
    """Both halves share one scale, so the max of the uint8 codes is the quantized max, bit for bit."""
    x = torch.randn(3, 8, 5, 7).contiguous(memory_format=torch.channels_last)
    q = torch.quantize_per_tensor(x, 0.02, 100, torch.quint8)
    codes = q.int_repr()
    out = _mfm_codes(q)
    expected = torch.maximum(*q.dequantize().chunk(2, 1))
    assert out.shape == (3, 4, 5, 7) and out.q_scale() == 0.02 and out.q_zero_point() == 100
    assert torch.equal(out.dequantize(), expected)
    assert torch.equal(q.int_repr(), codes)  # the input is left as it was


@pytest.mark.parametrize(("arch", "channels"), [("lightcnn9", 1), ("lightcnn29", 1), ("lightcnn29v2", 1),
                                                ("lightcnn_v4", 3)])  # fmt: skip
def test_lightcnn_int8_embeddings_close_to_fp32(arch, channels):
    torch.manual_seed(0)
    model = create_model(arch, num_classes=10).eval()
    calibration, x = smooth_images(16, channels, 128, seed=1), smooth_images(6, channels, 128, seed=2)
    int8 = quantize_int8(model, calibration)
    assert any(isinstance(m, Int8MFMConv2d) for m in int8.modules())
    assert not any(isinstance(m, MFMConv2d) for m in int8.modules())  # every convolution converted
    if arch in ("lightcnn29", "lightcnn29v2"):
        assert sum(isinstance(m, Int8ResBlock) for m in int8.modules()) == 10
    if arch == "lightcnn9":  # its four max-pools follow MFM convolutions in one Sequential: taken before the MFM
        assert sum(isinstance(m, Int8MFMConv2d) and m.pool is not None for m in int8.modules()) == 4
    with torch.inference_mode():
        reference, feature = model.embed(x), int8.embed(x)
        logits = int8(x)
    assert feature.dtype == torch.float32 and not feature.is_quantized
    assert F.cosine_similarity(feature, reference).min() > 0.995
    assert float((feature - reference).norm() / reference.norm()) < 0.1
    assert logits.shape == (6, 10)
    assert any(isinstance(m, MFMConv2d) for m in model.modules())  # the model passed in is left as it was


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_pool_before_the_mfm_is_exact(ceil_mode):
    """Pooling the 2C channels and then taking the MFM gives the codes of the MFM then the pool, odd sizes too."""
    torch.manual_seed(0)
    layer = Int8MFMConv2d(MFMConv2d(3, 8, 3), inputs=(1 / 255, 0), conv_out=(0.01, 128))
    pool = nn.MaxPool2d(2, 2, ceil_mode=ceil_mode)
    x = smooth_images(4, 3, 16, seed=10)[..., :15, :15]
    with torch.inference_mode():
        expected = pool(layer(x))
        layer.pool = pool
        out = layer(x)
    assert out.shape == expected.shape == (4, 8, 8 if ceil_mode else 7, 8 if ceil_mode else 7)
    assert torch.equal(out.int_repr(), expected.int_repr())


def trained_looking_lcnn(seed: int = 0) -> nn.Module:
    """The article's LCNN with BatchNorms that are not the identity, some of their scales negative."""
    torch.manual_seed(seed)
    model = build_lcnn((1, 28, 28), 10).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(-1.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model


def test_fold_batchnorms_is_exact():
    """Every BatchNorm of the LCNN sits between two MFM convolutions (some behind a max-pool): all six fold away,
    the negative scales included, and the network computes what it did."""
    model = trained_looking_lcnn()
    assert any((m.weight < 0).any() for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    x = smooth_images(8, 1, 28, seed=9)
    with torch.no_grad():
        reference = model(x)
        folded = fold_batchnorms(copy.deepcopy(model))
        out = folded(x)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.features) == 6
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.features)
    assert isinstance(folded.bn_fc, nn.BatchNorm1d)  # after the fully connected layer: not a convolution's
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # a BatchNorm not followed by an MFM convolution is left alone
        tail = nn.Sequential(MFMConv2d(1, 4, 3), nn.BatchNorm2d(4).eval())
        assert isinstance(fold_batchnorms(tail)[1], nn.BatchNorm2d)


def test_lcnn_int8_predictions():
    model = trained_looking_lcnn()
    calibration, x = smooth_images(64, 1, 28, seed=3), smooth_images(64, 1, 28, seed=4)
    int8 = quantize_int8(model, calibration, run=lambda m, batch: m(batch))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in int8.features)  # folded, not run in int8
    with torch.inference_mode():
        reference, logits = model(x), int8(x)
    assert float((logits - reference).norm() / reference.norm()) < 0.05
    assert (logits.argmax(1) == reference.argmax(1)).float().mean() >= 0.9


def test_optimize_for_inference_int8_workers():
    model = create_model("lightcnn9", num_classes=0).eval()
    calibration, x = smooth_images(8, 1, 128, seed=5), smooth_images(4, 1, 128, seed=6)
    fast = optimize_for_inference(model, precision="int8", calibration=calibration, workers=2)
    direct = quantize_int8(model, calibration)
    with torch.inference_mode():
        expected = direct.embed(x)
    first, second = fast.embed(x), fast.embed(x)  # the second call runs the two slices in parallel
    torch.testing.assert_close(first, expected)
    torch.testing.assert_close(second, expected)
    with pytest.raises(ValueError, match="calibration"):
        optimize_for_inference(model, precision="int8")
    with pytest.raises(ValueError, match="calibration"):
        optimize_for_inference(model, precision="int8", calibration=calibration, backend="compile")


def test_refusals():
    three_halves = nn.Sequential(MFMConv2d(1, 4, 3, kind="3/2"))
    with pytest.raises(ValueError, match="2/1"):
        quantize_int8(three_halves, smooth_images(2, 1, 16, seed=7), run=lambda m, x: m(x))
    conv = MFMConv2d(4, 4, 3)
    shared = nn.Sequential(MFMConv2d(1, 4, 3), conv, conv)  # one module in two places
    with pytest.raises(ValueError, match="more than once"):
        quantize_int8(shared, smooth_images(2, 1, 16, seed=8), run=lambda m, x: m(x))
