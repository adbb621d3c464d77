import pytest
import torch

from lcnn.layers import MaxFeatureMap, MFMConv2d, MFMLinear


def test_mfm_2_1_pairs_channel_i_with_i_plus_half():
    x = torch.randn(3, 8, 5, 5)
    out = MaxFeatureMap("2/1")(x)
    assert out.shape == (3, 4, 5, 5)
    for i in range(4):
        torch.testing.assert_close(out[:, i], torch.maximum(x[:, i], x[:, i + 4]))


def test_mfm_2_1_on_last_dim():
    x = torch.randn(4, 10)
    torch.testing.assert_close(MaxFeatureMap("2/1", dim=-1)(x), torch.maximum(x[:, :5], x[:, 5:]))


def test_mfm_3_2_keeps_max_and_median_of_thirds():
    x = torch.randn(2, 9, 4, 4)
    out = MaxFeatureMap("3/2")(x)
    assert out.shape == (2, 6, 4, 4)
    triples = torch.stack([x[:, :3], x[:, 3:6], x[:, 6:]], dim=0)
    ordered = triples.sort(dim=0).values
    torch.testing.assert_close(out[:, :3], ordered[2])
    torch.testing.assert_close(out[:, 3:], ordered[1])


def test_mfm_3_2_gradient_reaches_max_and_median_only():
    x = torch.tensor([[1.0, 3.0, 2.0]], requires_grad=True)  # one unit: thirds are 1, 3, 2
    MaxFeatureMap("3/2", dim=1)(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([[0.0, 1.0, 1.0]]))


@pytest.mark.parametrize(("kind", "channels"), [("2/1", 5), ("3/2", 8)])
def test_mfm_refuses_indivisible_channels(kind, channels):
    with pytest.raises(ValueError, match=r"divisible by .*shape \(1, " + str(channels)):
        MaxFeatureMap(kind)(torch.zeros(1, channels, 2, 2))


def test_mfm_refuses_unknown_kind():
    with pytest.raises(ValueError, match="2/1"):
        MaxFeatureMap("4/3")


def test_mfm_conv_inner_layer_is_named_filter():
    conv = MFMConv2d(3, 16, 3, 1, 1)
    assert set(conv.state_dict()) == {"filter.weight", "filter.bias"}
    assert conv.filter.out_channels == 32
    assert conv(torch.randn(2, 3, 8, 8)).shape == (2, 16, 8, 8)
    conv32 = MFMConv2d(3, 16, 3, 1, 1, kind="3/2")
    assert conv32.filter.out_channels == 24
    assert conv32(torch.randn(2, 3, 8, 8)).shape == (2, 16, 8, 8)


def test_mfm_linear():
    fc = MFMLinear(20, 6)
    assert fc.filter.out_features == 12
    x = torch.randn(4, 20)
    y = fc.filter(x)
    torch.testing.assert_close(fc(x), torch.maximum(y[:, :6], y[:, 6:]))
    with pytest.raises(ValueError, match="odd"):
        MFMLinear(20, 5, kind="3/2")


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dim", [1, -1])
def test_mfm_2to1_gradient_equals_torch_maximum_without_ties(channels_last: bool, dim: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 8, 5, 6)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    weights = torch.randn(3, 4, 5, 6) if dim == 1 else torch.randn(3, 8, 5, 3)
    (MaxFeatureMap("2/1", dim=dim)(x) * weights).sum().backward()
    reference = x.detach().clone().requires_grad_(True)
    a, b = reference.chunk(2, dim)
    (torch.maximum(a, b) * weights).sum().backward()
    torch.testing.assert_close(x.grad, reference.grad)
    if channels_last and dim == 1:
        assert x.grad.is_contiguous(memory_format=torch.channels_last)


def test_mfm_2to1_tie_sends_whole_gradient_to_first_half() -> None:
    x = torch.ones(1, 4, requires_grad=True)
    MaxFeatureMap("2/1")(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([[1.0, 1.0, 0.0, 0.0]]))
