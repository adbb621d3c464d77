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
    model: nn.Module, example: torch.Tensor, path: str | Path, fmt: str, metadata: dict | None = None
) -> dict:
    """Write ``model`` (in eval mode) to ``path`` as ``fmt``; return what was checked.

    ONNX and TorchScript exports are run on ``example`` and on a batch of another size, and their outputs
    compared with PyTorch's; a difference above 1e-4 is an error.
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
    other = torch.cat([example, example[:1]]) if len(example) > 1 else torch.cat([example, example])
    with torch.inference_mode():
        expected = [model(example).numpy(), model(other).numpy()]
    with atomic_path(path) as tmp:
        if fmt == "onnx":
            _export_onnx(model, example, tmp)
            got = _run_onnx(tmp, [example, other])
        else:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks are constant here
                scripted = torch.jit.trace(model, example)
            scripted.save(str(tmp))
            loaded = torch.jit.load(str(tmp))
            with torch.inference_mode():
                got = [loaded(example).numpy(), loaded(other).numpy()]
        diff = max(float(np.abs(a - b).max()) for a, b in zip(expected, got))
        if diff > 1e-4:
            raise RuntimeError(f"{fmt} export differs from PyTorch by {diff:.2e} (> 1e-4); not written")
    return {"path": str(path), "format": fmt, "max_abs_diff": diff, "checked_batches": [len(example), len(other)]}


def _export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    dynamic = {"input": {0: "batch"}, "output": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks are constant here
        torch.onnx.export(
            model, (example,), str(path), input_names=["input"], output_names=["output"],
            dynamic_axes=dynamic, opset_version=17, dynamo=False,
        )


def _run_onnx(path: Path, inputs: list[torch.Tensor]) -> list[np.ndarray]:
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("ONNX export needs onnx and onnxruntime: pip install 'lcnn[export]'") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [session.run(None, {"input": x.numpy()})[0] for x in inputs]
