import pytest
import torch
from torch import nn

import lcnn
from lcnn.layers import MFMConv2d


def _trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_parameter_count_matches_the_article():
    model = lcnn.build_lcnn((1, 28, 28), num_classes=10)
    assert _trainable(model) == 164_266
    # Keras counts the BatchNorm moving mean and variance as (non-trainable) parameters too.
    moving = sum(b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var")))
    assert _trainable(model) + moving == 164_938


def test_layers_follow_the_article():
    model = lcnn.build_lcnn((1, 28, 28), num_classes=10)
    convs = [m.filter for m in model.modules() if isinstance(m, MFMConv2d)]
    assert [c.kernel_size[0] for c in convs] == [5, 1, 3, 1, 3, 1, 3, 1, 3]
    assert [c.out_channels for c in convs] == [64, 64, 96, 96, 128, 128, 64, 64, 64]  # Keras `dim` before MFM
    assert [c.padding[0] for c in convs] == [2, 0, 1, 0, 1, 0, 1, 0, 1]  # 'same'
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.features) == 4
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.features) == 6
    assert model.fc.filter.out_features == 160 and model.classifier.in_features == 80
    assert model.dropout.p == 0.75


@pytest.mark.parametrize("shape", [(1, 16, 16), (1, 28, 28), (3, 32, 32), (1, 17, 40), (1, 60, 64)])
def test_any_input_of_at_least_16(shape):
    model = lcnn.build_lcnn(shape, num_classes=3).eval()
    assert model(torch.randn(2, *shape)).shape == (2, 3)
    assert model.embed(torch.randn(2, *shape)).shape == (2, 80)


def test_refuses_too_small_and_mismatched_inputs():
    with pytest.raises(ValueError, match="at least 16x16"):
        lcnn.build_lcnn((1, 15, 28))
    model = lcnn.build_lcnn((1, 28, 28))
    with pytest.raises(ValueError, match=r"\(1, 28, 28\).*\(2, 3, 28, 28\)"):
        model(torch.randn(2, 3, 28, 28))


def test_registry():
    assert "lcnn" in lcnn.list_models()
    model = lcnn.create_model("lcnn", num_classes=0, input_shape=(1, 32, 32)).eval()
    assert model.classifier is None
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 80)
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        lcnn.create_model("nope")


@pytest.mark.parametrize("init", ["torch", "keras"])
def test_initialisation_and_training_step_learns(init):
    torch.manual_seed(0)
    model = lcnn.build_lcnn((1, 16, 16), num_classes=2, init=init)
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert all(not m.bias.detach().any() for m in layers) == (init == "keras")
    x = torch.randn(64, 1, 16, 16)
    y = (x.mean((1, 2, 3)) > 0).long()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    losses = []
    for _ in range(30):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.5
