"""Models in the Hugging Face Hub layout: a folder of ``config.json``, ``model.safetensors`` and ``README.md``
(the model card), local or on the Hub as ``hf:ORG/NAME[@REVISION]``.

``config.json`` holds what rebuilds the model and its input pipeline: the task, the module's
``hyper_parameters`` (architecture, front-end, head), the calibration and the run's config without its local
paths; ``model.safetensors`` the module's whole state (weights, buffers such as the decision threshold).
:func:`read_folder` turns such a folder back into the form of an lcnn training checkpoint, so that everything
that loads checkpoints (:func:`lcnn.tasks.load_task`) loads it unchanged. From the Hub, only those three files
are downloaded (``huggingface_hub``: its cache, ``HF_HUB_OFFLINE``, ``HF_ENDPOINT``, its token); never a pickle.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from lcnn import __version__
from lcnn.errors import UserError
from lcnn.io import atomic_write, write_json

__all__ = ["CARD", "CONFIG", "PREFIX", "WEIGHTS", "cached_models", "download", "is_folder", "is_name", "parse_name",
           "read_folder", "source_of", "write_folder"]  # fmt: skip

PREFIX = "hf:"
CONFIG, WEIGHTS, CARD = "config.json", "model.safetensors", "README.md"
FORMAT = "lcnn-hub"  # config.json's "format": tells an lcnn folder from another library's config.json
_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")


def is_name(text: str | Path) -> bool:
    """``hf:ORG/NAME[@REVISION]``."""
    return isinstance(text, str) and text.startswith(PREFIX)


def parse_name(text: str) -> tuple[str, str | None]:
    """``hf:ORG/NAME[@REVISION]`` -> ``(ORG/NAME, REVISION or None)``; anything else is a UserError."""
    repo, _, revision = text.removeprefix(PREFIX).partition("@")
    if not _REPO.fullmatch(repo) or "--" in repo or ".." in repo or (revision == "" and text.endswith("@")):
        raise UserError(f"{text}: expected hf:ORG/NAME or hf:ORG/NAME@REVISION (a Hugging Face Hub model repository)")
    return repo, revision or None


def is_folder(path: str | Path) -> bool:
    """A folder in the Hub layout: ``model.safetensors`` beside ``config.json``."""
    path = Path(path)
    return path.is_dir() and (path / WEIGHTS).is_file() and (path / CONFIG).is_file()


def download(text: str) -> Path:
    """The snapshot folder of ``hf:ORG/NAME[@REVISION]`` in the Hugging Face cache, downloaded if needed
    (``config.json``, ``model.safetensors`` and ``README.md`` only). Every failure is one UserError line."""
    repo, revision = parse_name(text)
    try:
        import huggingface_hub as hub
        from huggingface_hub import errors
    except ImportError:
        raise UserError(f"{text}: loading from the Hub needs huggingface_hub: pip install huggingface_hub") from None
    try:
        folder = hub.snapshot_download(repo, revision=revision, allow_patterns=[CONFIG, WEIGHTS, CARD],
                                       library_name="lcnn", library_version=__version__)  # fmt: skip
    except errors.RevisionNotFoundError:
        raise UserError(f"{text}: no revision {revision!r} in the Hub repository {repo}") from None
    except (errors.RepositoryNotFoundError, errors.GatedRepoError):
        raise UserError(f"{text}: no Hub model repository {repo} (or it is private or gated: log in with "
                        "`hf auth login`)") from None  # fmt: skip
    except errors.LocalEntryNotFoundError:
        raise UserError(f"{text}: not in the Hugging Face cache and the Hub cannot be reached (HF_HUB_OFFLINE or no "
                        "connection)") from None  # fmt: skip
    except (errors.HfHubHTTPError, OSError, ValueError) as err:
        raise UserError(f"{text}: could not download from the Hub: {str(err).splitlines()[0]}") from None
    folder = Path(folder)
    if not is_folder(folder):
        raise UserError(f"{text}: not an lcnn model repository (no {WEIGHTS} beside {CONFIG})")
    return folder


def source_of(folder: str | Path) -> str | None:
    """``hf:ORG/NAME@COMMIT`` for a snapshot folder of the Hugging Face cache (``models--ORG--NAME/snapshots/
    COMMIT``), ``None`` for any other folder: the exact revision a Hub model's outputs record."""
    folder = Path(folder).absolute()
    if folder.parent.name != "snapshots" or not folder.parent.parent.name.startswith("models--"):
        return None
    return f"{PREFIX}{folder.parent.parent.name.removeprefix('models--').replace('--', '/', 1)}@{folder.name}"


def cached_models() -> list[tuple[str, dict[str, Any]]]:
    """The lcnn models already in the Hugging Face cache, ``(hf:ORG/NAME@COMMIT, config)`` per snapshot holding an
    lcnn ``config.json``, by name: the ``hf:`` entries that ``lcnn pretrained list`` shows beside the released
    systems (each loads offline). ``[]`` without huggingface_hub or a cache."""
    try:
        from huggingface_hub import scan_cache_dir
        from huggingface_hub.errors import CacheNotFound
    except ImportError:
        return []
    try:
        repos = scan_cache_dir().repos
    except (CacheNotFound, OSError):
        return []
    found = []
    for repo in repos:
        for revision in repo.revisions if repo.repo_type == "model" else ():
            try:
                config = json.loads((revision.snapshot_path / CONFIG).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(config, dict) and config.get("format") == FORMAT:
                found.append((f"{PREFIX}{repo.repo_id}@{revision.commit_hash}", config))
    return sorted(found, key=lambda entry: entry[0])


def read_folder(folder: str | Path) -> dict[str, Any]:
    """A Hub-layout folder as an lcnn checkpoint dict: ``lcnn_task``, ``hyper_parameters``, ``state_dict``,
    ``lcnn_config`` and ``lcnn_calibration`` (where calibrated). Only safetensors weights are read."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{folder / CONFIG}: not readable JSON ({type(err).__name__})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise UserError(f"{folder / CONFIG}: not an lcnn model (no \"format\": \"{FORMAT}\"); "
                        f"export one with lcnn export RUN --format hf --out DIR")  # fmt: skip
    if not isinstance(config.get("hyper_parameters"), dict) or not isinstance(config.get("task"), str):
        raise UserError(f"{folder / CONFIG}: no task or hyper_parameters")
    try:
        state = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError) as err:
        raise UserError(f"{folder / WEIGHTS}: not a readable safetensors file ({err})") from None
    ckpt = {"lcnn_task": config["task"], "hyper_parameters": config["hyper_parameters"], "state_dict": state,
            "lcnn_config": config.get("run_config") or {"task": config["task"]}}  # fmt: skip
    if config.get("calibration") is not None:
        ckpt["lcnn_calibration"] = config["calibration"]
    return ckpt


def write_folder(out: str | Path, state: dict[str, Any], config: dict[str, Any], card: str,
                 extra: dict[str, Path] | None = None) -> Path:  # fmt: skip
    """Write the folder ``out``: ``model.safetensors`` (``state``: name -> tensor), ``config.json`` (``config``
    with the ``format`` and lcnn version), ``README.md`` (``card``) and the ``extra`` files (name -> file to
    copy: the plots the card shows). Each file is written whole (atomically); other files are left alone."""
    from safetensors.torch import save_file

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; --format hf writes a folder")
    out.mkdir(parents=True, exist_ok=True)
    # Tensors that share memory (tied weights) cannot be saved as such: each is stored whole.
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    atomic_write(out / WEIGHTS, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    config = {"format": FORMAT, "library_name": "lcnn", "lcnn_version": __version__, **config}
    write_json(out / CONFIG, config)
    atomic_write(out / CARD, lambda tmp: tmp.write_text(card, encoding="utf-8"))
    for name, source in (extra or {}).items():
        atomic_write(out / name, lambda tmp, source=source: shutil.copyfile(source, tmp))
    return out
