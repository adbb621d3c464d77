"""The tasks (:class:`~lcnn.tasks.base.Task` subclasses, one package each), and the rebuilding of a trained
task from its checkpoint (:func:`load_task`), whatever the task.

:data:`TASKS` holds each task's declarations (``spec.py``: name, recipes, options), which import nothing
heavy, so that the command line builds its parser at once; :func:`get_task` gives the task that runs
(``task.py``, which imports what it uses at its top), imported when a command runs."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from lcnn.errors import UserError
from lcnn.tasks.base import Option, Task
from lcnn.tasks.classify import ClassifySpec
from lcnn.tasks.face import FaceSpec
from lcnn.tasks.spoof import SpoofSpec

__all__ = ["TASKS", "Option", "Task", "find_checkpoint", "get_task", "load_task", "read_checkpoint"]

#: Each task's declarations (options, recipes), by name: what the parser reads.
TASKS: dict[str, Task] = {spec.name: spec for spec in (ClassifySpec(), SpoofSpec(), FaceSpec())}
_RUNNING: dict[str, Task] = {}


def get_task(name: str) -> Task:
    """The task called ``name`` (``classify``, ``spoof`` or ``face``) that runs: its ``task.py`` class, one
    instance per process."""
    if name not in TASKS:
        raise UserError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
    if name not in _RUNNING:
        _RUNNING[name] = TASKS[name].running()
    return _RUNNING[name]


def find_checkpoint(path: str | Path) -> Path:
    """What the user named, as a loadable path: a checkpoint file, a run folder's best checkpoint, a folder in
    the Hub layout (``config.json`` and ``model.safetensors``: :mod:`lcnn.hub`), or ``hf:ORG/NAME[@REVISION]``
    (its snapshot folder in the Hugging Face cache, downloaded if needed), or the name of a released model
    (``lcnn pretrained list``)."""
    from lcnn import hub

    if hub.is_name(path):
        return hub.download(str(path))
    path = Path(path)
    if hub.is_folder(path):
        return path
    if path.is_dir():
        for candidate in (path / "checkpoints" / "best.ckpt", path / "best.ckpt"):
            if candidate.exists():
                return candidate
        seeds = sorted(p.name for p in path.glob("seed-*") if (p / "checkpoints" / "best.ckpt").exists())
        if seeds:
            raise UserError(f"{path}: a run of several seeds; give one of its seed folders ({', '.join(seeds)}), "
                            f"e.g. {path / seeds[0]}")  # fmt: skip
        raise UserError(f"{path}: no checkpoints/best.ckpt in this run folder (nor model.safetensors and config.json)")
    if not path.exists():
        released = _released(str(path))
        if released is not None:
            return released
        raise UserError(f"{path}: no such checkpoint or run folder (a model on the Hugging Face Hub: hf:ORG/NAME)")
    return path


def _released(name: str) -> Path | None:
    """The converted checkpoint of a released model the registry lists by ``name`` (:func:`lcnn.released.fetch`:
    downloaded and converted once, into the cache), ``None`` for any other name."""
    from lcnn.released import RELEASED, fetch

    return Path(fetch(name)) if name in RELEASED else None


def _lcnn_checkpoint(path: Path, model: str) -> bool:
    """Whether ``path``, given with ``--model``, is an lcnn face checkpoint of that architecture (a released name
    after ``lcnn pretrained get``) rather than a released LightCNN file; another lcnn checkpoint is refused."""
    try:
        ckpt = read_checkpoint(path)
    except UserError:  # a released file (or no checkpoint at all: the face task's loader says which)
        return False
    stored = ckpt["hyper_parameters"].get("model")
    if ckpt["lcnn_task"] != "face" or stored != model:
        raise UserError(f"{path}: an lcnn {ckpt['lcnn_task']} checkpoint of {stored}; --model names the architecture "
                        f"of a released LightCNN file, which this is not")  # fmt: skip
    return True


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """An lcnn training checkpoint, read with ``weights_only=True`` (memory-mapped: cheap to peek into), or a
    Hub-layout folder in the same form (:func:`lcnn.hub.read_folder`: safetensors only)."""
    import torch

    from lcnn import hub
    from lcnn.models.pretrained import load_failure

    path = find_checkpoint(path)
    if path.is_dir():
        ckpt = hub.read_folder(path)
    else:
        if not zipfile.is_zipfile(path):  # memory-mapping needs torch's zip format; say so rather than mmap's words
            raise UserError(f"{path}: not a PyTorch checkpoint (expected the zip archive that torch.save writes)")
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as err:  # torch raises many types for a file that is not a checkpoint
            raise UserError(load_failure(path, err)) from None
        if not isinstance(ckpt, dict) or "lcnn_task" not in ckpt:
            raise UserError(f"{path}: not an lcnn training checkpoint (no 'lcnn_task' entry); for a released "
                            f"LightCNN checkpoint name its architecture with --model")  # fmt: skip
    if ckpt["lcnn_task"] not in TASKS or not isinstance(ckpt.get("hyper_parameters"), dict):
        raise UserError(f"{path}: an inconsistent checkpoint (task {ckpt['lcnn_task']!r}, hyper_parameters "
                        f"{type(ckpt.get('hyper_parameters')).__name__})")  # fmt: skip
    return ckpt


def load_task(path: str | Path, model: str | None = None) -> tuple[Any, dict[str, Any], Task]:
    """Rebuild the task saved in checkpoint ``path`` (or a run folder): ``(module, run config, task)``.

    The module is in eval mode on the CPU. Weights are read with ``weights_only=True``; any key that does
    not fit the architecture is reported by name; what the checkpoint holds beyond the weights is the task's
    (:meth:`~lcnn.tasks.base.Task.restore_extras`: a spoof checkpoint's calibration becomes
    ``module.calibration``). ``model`` names the architecture of a released LightCNN
    checkpoint (``.pth.tar``, not an lcnn run), loaded as a face embedder. ``path`` is anything
    :func:`find_checkpoint` takes; ``module.source`` says where the weights came from (``hf:ORG/NAME@COMMIT``
    for a Hub model: the exact revision); ``module.provenance`` is a converted release's record (``lcnn_source``:
    source, file, SHA-256, licence; :func:`lcnn.released.convert`), ``None`` for any other checkpoint.
    """
    from lcnn import hub

    path = find_checkpoint(path)
    if model is not None and _lcnn_checkpoint(path, model):  # a converted LightCNN release, given with --model too
        model = None
    if model is not None:
        face = get_task("face")
        module = face.load_released(path, model)
        module.source, module.provenance = str(path), None
        return module, {"task": "face", "model": model}, face
    ckpt = read_checkpoint(path)
    task = get_task(ckpt["lcnn_task"])
    module = task.restore(dict(ckpt["hyper_parameters"]), str(path))
    expected, found = module.state_dict(), ckpt.get("state_dict")
    if not isinstance(found, dict):
        raise UserError(f"{path}: holds no state_dict")
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or unexpected:
        raise UserError(f"{path}: weights do not fit {ckpt['hyper_parameters'].get('model')}: "
                        f"missing {missing[:8]}, unexpected {unexpected[:8]}")  # fmt: skip
    try:
        module.load_state_dict(found)
    except RuntimeError as err:
        raise UserError(f"{path}: weights do not fit the architecture: {str(err).splitlines()[-1].strip()}") from None
    task.restore_extras(module, ckpt, str(path))
    module.source = hub.source_of(path) or str(path)
    module.provenance = ckpt.get("lcnn_source")  # a converted release's source, file hash and licence
    return module.eval(), dict(ckpt.get("lcnn_config") or {}), task
