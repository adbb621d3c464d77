"""Export a trained model: ONNX (checked in onnxruntime against PyTorch), TorchScript, safetensors."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lcnn.errors import UserError
from lcnn.io import atomic_path

FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}


def export_model(
    model: nn.Module, example: torch.Tensor, path: str | Path, fmt: str, metadata: dict | None = None,
    frames_axis: int | None = None,
) -> dict:
    """Write ``model`` (in eval mode) to ``path`` as ``fmt``; return what was checked.

    ONNX and TorchScript exports are run on ``example``, on a batch of another size and, for a model taking
    inputs of any length along ``frames_axis``, on inputs of other lengths; their outputs are compared with
    PyTorch's, and a difference above 1e-4 is an error (nothing is written). ONNX needs the ``export`` extra.
    """
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    model = model.eval().float()
    path = Path(path)
    if fmt == "safetensors":
        from safetensors.torch import save_file

        tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
        meta = {k: json.dumps(v) for k, v in (metadata or {}).items()}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        return {"path": str(path), "format": fmt, "tensors": len(tensors)}
    if fmt == "onnx":
        _require_onnx()
    checks = _check_inputs(example, frames_axis)
    with torch.inference_mode():
        expected = [model(x).numpy() for x in checks]
    with atomic_path(path) as tmp:
        if fmt == "onnx":
            _export_onnx(model, example, tmp, frames_axis)
            got = _run_onnx(tmp, checks)
        else:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks are constant here
                scripted = torch.jit.trace(model, example)
            scripted.save(str(tmp))
            loaded = torch.jit.load(str(tmp))
            with torch.inference_mode():
                got = [loaded(x).numpy() for x in checks]
        diff = max(float(np.abs(a - b).max()) for a, b in zip(expected, got))
        if diff > 1e-4:
            raise UserError(f"{fmt} export differs from PyTorch by {diff:.2e} (> 1e-4); not written")
    return {"path": str(path), "format": fmt, "max_abs_diff": diff, "checked_shapes": [list(x.shape) for x in checks]}


def _check_inputs(example: torch.Tensor, frames_axis: int | None) -> list[torch.Tensor]:
    """``example``, a batch of another size and, along ``frames_axis``, a shorter and a longer input."""
    other = torch.cat([example, example[:1]]) if len(example) > 1 else torch.cat([example, example])
    checks = [example, other]
    if frames_axis is not None:
        frames = example.shape[frames_axis]
        shorter = example.narrow(frames_axis, 0, max(16, frames // 2 - 3))
        longer = torch.cat([example, example.narrow(frames_axis, 0, frames // 3 + 5)], frames_axis)
        checks += [shorter, torch.cat([longer, longer])]
    return checks


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise UserError("ONNX export needs onnx and onnxruntime: pip install 'lcnn[export]'") from None


def _export_onnx(model: nn.Module, example: torch.Tensor, path: Path, frames_axis: int | None) -> None:
    inputs = {0: "batch"} if frames_axis is None else {0: "batch", frames_axis: "frames"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks are constant here
        # An LSTM's warning that other batch sizes "can cause an error": the check after the export runs one.
        warnings.filterwarnings("ignore", "Exporting a model to ONNX with a batch_size other than 1", UserWarning)
        torch.onnx.export(
            model, (example,), str(path), input_names=["input"], output_names=["output"],
            dynamic_axes={"input": inputs, "output": {0: "batch"}}, opset_version=17, dynamo=False,
        )  # fmt: skip


def _run_onnx(path: Path, inputs: list[torch.Tensor]) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [session.run(None, {"input": x.numpy()})[0] for x in inputs]
