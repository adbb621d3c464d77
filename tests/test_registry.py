"""The model contract, over every registered name: logits, ``embed``, ``num_classes=0``, shapes, and the
export formats its registry entry claims."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from lcnn.errors import UserError
from lcnn.models import create_model, list_models, model_info


def _example(name: str, batch: int = 2) -> torch.Tensor:
    shape = [64 if size is None else size for size in model_info(name).input_shape]  # 64 frames for any length
    return torch.rand(batch, *shape)


@pytest.mark.parametrize("name", list_models())
def test_model_contract(name: str) -> None:
    info = model_info(name)
    assert info.name == name and info.family in ("lcnn", "lightcnn") and info.tasks
    torch.manual_seed(0)
    model = create_model(name, num_classes=5).eval()
    x = _example(name)
    with torch.inference_mode():
        logits, embedding = model(x), model.embed(x)
    assert logits.shape == (2, 5)
    assert embedding.shape == (2, model.embedding_dim)
    embedder = create_model(name, num_classes=0).eval()
    embedder.load_state_dict({k: v for k, v in model.state_dict().items() if k in embedder.state_dict()})
    with torch.inference_mode():
        torch.testing.assert_close(embedder(x), embedding)  # num_classes=0: forward is the embedding
    if info.variable_length:
        with torch.inference_mode():
            assert model(_example(name)[:, :, :37]).shape == (2, 5)  # another number of frames


@pytest.mark.parametrize("name", [n for n in list_models() if "torchscript" in model_info(n).exports])
def test_torchscript_export_where_claimed(name: str) -> None:
    model = create_model(name, num_classes=3).eval()
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # input checks become constants in a trace
        traced = torch.jit.trace(model, _example(name, 1))
        others = [_example(name, 3)] + ([_example(name, 2)[:, :, :23]] if model_info(name).variable_length else [])
        for other in others:
            torch.testing.assert_close(traced(other), model(other), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", [n for n in list_models() if "onnx" in model_info(n).exports])
def test_onnx_export_where_claimed(name: str, tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    from lcnn.export import export_model

    model = create_model(name, num_classes=3).eval()
    frames_axis = 2 if model_info(name).variable_length else None
    result = export_model(model, _example(name, 1), tmp_path / "m.onnx", "onnx", frames_axis=frames_axis)
    assert result["max_abs_diff"] <= 1e-4
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    inputs = [_example(name, 3)] + ([_example(name, 2)[:, :, :23], torch.rand(1, 1, 517, 60)] if frames_axis else [])
    for x in inputs:  # other batch sizes and, for variable-length models, other numbers of frames
        with torch.inference_mode():
            np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], model(x).numpy(), atol=1e-4)


def test_registry_lookups() -> None:
    assert list_models("face") == ["lightcnn29", "lightcnn29v2", "lightcnn9", "lightcnn_v4"]
    assert list_models("spoof") == ["lcnn", "lcnn_attention", "lcnn_fixed", "lcnn_lstm"]
    assert list_models("classify") == ["lcnn"]
    assert model_info("lightcnn_v4").input_channels == 3 and model_info("lightcnn29v2").released_classes == 80013
    assert model_info("lcnn_lstm").variable_length and not model_info("lcnn").variable_length
    with pytest.raises(UserError, match="unknown model 'lcnn9'; choose one of: lcnn, lcnn_attention, lcnn_fixed"):
        create_model("lcnn9")
    with pytest.raises(UserError, match="model 'lcnn_lstm' is not built for the face task"):
        model_info("lcnn_lstm", task="face")

