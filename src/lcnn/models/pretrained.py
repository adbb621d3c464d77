"""Released LightCNN checkpoints (``LightCNN_9Layers_checkpoint.pth.tar`` and its siblings): read with
``weights_only=True``, ``module.`` prefixes dropped, and any key that does not fit the architecture named.

The official architectures are those of the registry with a release (``ModelInfo.released_classes``); their
``state_dict`` keys are the official ones (:mod:`lcnn.models.lightcnn`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from lcnn.errors import UserError
from lcnn.models.registry import create_model, list_models, model_info

__all__ = ["CheckpointError", "load_lightcnn", "released_architectures"]

# Names the official code and release files use.
_ALIASES = {
    "lightcnn-9": "lightcnn9", "lightcnn_9layers": "lightcnn9",
    "lightcnn-29": "lightcnn29", "lightcnn_29layers": "lightcnn29",
    "lightcnn-29v2": "lightcnn29v2", "lightcnn_29layers_v2": "lightcnn29v2", "lightcnn29_v2": "lightcnn29v2",
    "lightcnn-v4": "lightcnn_v4", "lightcnnv4": "lightcnn_v4", "lightcnn-4": "lightcnn_v4",
}  # fmt: skip


def released_architectures() -> list[str]:
    """The registered architectures with an official release, whose checkpoints :func:`load_lightcnn` reads."""
    return [name for name in list_models() if model_info(name).released_classes is not None]


class CheckpointError(UserError):
    """A checkpoint that does not fit the requested architecture, or is no PyTorch checkpoint at all."""


def _arch_name(arch: str) -> str:
    key = arch.strip().lower()
    key = _ALIASES.get(key, key)
    choices = released_architectures()
    if key not in choices:
        raise ValueError(f"unknown LightCNN architecture {arch!r}; choose one of: {', '.join(choices)}")
    return key


def load_failure(path: Path, err: Exception) -> str:
    """One line saying why ``torch.load(path, weights_only=True)`` failed, without torch's advice to load with
    ``weights_only=False`` (which would run whatever the file holds)."""
    text = str(err)
    refused = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if refused:
        return (
            f"{path}: torch.load(weights_only=True) refuses to unpickle the {refused.group(1).rstrip('.')} object it "
            "holds; save the state_dict alone (or load it only if you trust the file)"
        )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Check the documentation")]
    detail = (lines[-1] if "Weights only load failed" in text else lines[0]) if lines else ""
    return f"{path}: not a PyTorch checkpoint ({type(err).__name__}{': ' + detail if detail else ''})"


def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of a checkpoint file: bare or under ``state_dict``, ``module.`` prefixes removed."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # the unpickler raises anything (IndexError, KeyError...) on foreign bytes
        raise CheckpointError(load_failure(path, err)) from None
    state = obj.get("state_dict", obj) if isinstance(obj, Mapping) else obj
    if (
        not isinstance(state, Mapping)
        or not state
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    ):
        raise CheckpointError(
            f"{path}: holds no state dict (expected a mapping of parameter names to tensors, bare or under "
            f"'state_dict'; got {type(state).__name__})"
        )
    prefix = "module."
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in state.items()}


def _key_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    """Every state_dict key of ``arch`` without classifier, with its shape (built on the meta device)."""
    with torch.device("meta"):
        model = create_model(arch, num_classes=0)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _guess_arch(keys: set[str]) -> str | None:
    for name in released_architectures():
        if set(_key_shapes(name)) == {k for k in keys if not k.startswith("fc2.")}:
            return name
    return None


def _listing(label: str, items: list[str], limit: int = 40) -> str:
    shown = ", ".join(items[:limit])
    more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
    return f"\n  {label} ({len(items)}): {shown}{more}"


def load_lightcnn(path: str | Path, arch: str, num_classes: int | None = None) -> nn.Module:
    """Build ``arch`` and load a released LightCNN checkpoint (``.pth.tar``) into it, on the CPU, in eval mode.

    ``arch`` is a registered name (``lightcnn9``, ``lightcnn29``, ``lightcnn29v2``, ``lightcnn_v4``) or an
    official one (``LightCNN-9``, ``LightCNN_29Layers_v2``, ...). The file is read with
    ``torch.load(weights_only=True)``; its state dict may be bare or under ``state_dict``, with or without
    the ``module.`` prefix of ``DataParallel``.

    ``num_classes=None`` keeps the checkpoint's classifier ``fc2`` (its size read from the checkpoint; no
    classifier in the file gives an embedder); ``num_classes=N`` drops it and puts a fresh ``N``-way
    classifier in its place (for fine-tuning); ``num_classes=0`` gives an embedder whose ``forward`` returns
    the 256-d feature.

    Everything except the classifier must fit exactly: otherwise :class:`CheckpointError` lists the missing
    and unexpected keys and the shape mismatches, naming the file. A file that is not a PyTorch checkpoint
    also raises :class:`CheckpointError`.
    """
    path = Path(path)
    name = _arch_name(arch)
    state = _read_checkpoint(path)
    classifier = {k: v for k, v in state.items() if k.startswith("fc2.")}
    if num_classes is None:
        weight = classifier.get("fc2.weight")
        num_classes = int(weight.shape[0]) if weight is not None and weight.dim() == 2 else 0
        keep_classifier = bool(classifier)
    else:
        if num_classes < 0:
            raise ValueError(f"num_classes must be None or >= 0, got {num_classes}")
        keep_classifier = False
    model = create_model(name, num_classes=num_classes)
    expected = model.state_dict()
    if not keep_classifier:
        state = {k: v for k, v in state.items() if not k.startswith("fc2.")}
        expected_fit = {k: v for k, v in expected.items() if not k.startswith("fc2.")}
    else:
        expected_fit = expected
    missing = sorted(k for k in expected_fit if k not in state)
    unexpected = sorted(k for k in state if k not in expected_fit)
    mismatched = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected_fit[k].shape)}"
        for k in expected_fit
        if k in state and state[k].shape != expected_fit[k].shape
    )
    if missing or unexpected or mismatched:
        guess = _guess_arch(set(state) | set(classifier))
        hint = f"\n  the keys are those of {guess!r}" if guess and guess != name else ""
        raise CheckpointError(
            f"{path}: does not fit {name}"
            + (_listing("missing keys", missing) if missing else "")
            + (_listing("unexpected keys", unexpected) if unexpected else "")
            + (_listing("shape mismatches", mismatched) if mismatched else "")
            + hint
        )
    if not keep_classifier:  # the fresh classifier keeps its own initialisation
        state = {**state, **{k: v for k, v in expected.items() if k.startswith("fc2.")}}
    model.load_state_dict(state, strict=True)
    return model.eval()
