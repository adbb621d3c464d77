"""Released anti-spoofing models: the ASVspoof 2021 LFCC-LCNN baselines and the LCNN systems of NII's
comparative study, converted into lcnn spoof checkpoints (`lcnn pretrained list | convert | get`).

:func:`convert` turns a ``trained_network.pt`` the user has (a plain ``state_dict`` of NII's ``Model``, read with
``weights_only=True``) into a checkpoint that every lcnn command taking a spoof checkpoint loads: the network
of :mod:`lcnn.models.lcnn_lstm` / :mod:`lcnn.models.lcnn_study` with the front-end and head of the system, and
its provenance (``lcnn_source``: format, file name, SHA-256, licence, where it was released). :func:`fetch`
downloads a released archive once (resumable, checked), takes the system's ``trained_network.pt`` out of it and
converts it once, into the cache (``$LCNN_CACHE/released``).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tarfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lcnn.errors import UserError

__all__ = ["RELEASED", "Released", "convert", "fetch", "sha256"]

_NII_CODE = "https://github.com/nii-yamagishilab/project-NN-Pytorch-scripts/tree/master/project/03-asvspoof-mega"
_NII_TARBALL = "https://zenodo.org/record/6456692/files/project-03-asvspoof-mega-pretrained.tar.gz"
_BASELINE_CODE = "https://github.com/asvspoof-challenge/2021/tree/main/{track}/Baseline-LFCC-LCNN"
#: The licence of the code (and, as far as their pages say, of the weights) each release comes with: the
#: ``LICENSE`` of asvspoof-challenge/2021's ``*/Baseline-LFCC-LCNN`` and of project-NN-Pytorch-scripts.
LICENCE = "BSD-3-Clause (Copyright (c) Xin Wang, National Institute of Informatics)"


@dataclass(frozen=True)
class Released:
    """One released system: its lcnn name, conversion format, what it was trained on, where it comes from."""

    name: str
    format: str
    trained_on: str
    source: str
    code: str
    archive_md5: str | None = None
    member: str = "trained_network.pt"
    note: str = ""


def _baselines() -> list[Released]:
    return [Released(f"asvspoof2021-{track.lower()}", "asvspoof2021", f"ASVspoof 2019 {train} train",
                     f"https://www.asvspoof.org/asvspoof2021/pre_trained_{track}_LFCC-LCNN.zip",
                     _BASELINE_CODE.format(track=track), note="the challenge's LFCC-LCNN baseline")
            for track, train in (("LA", "LA"), ("DF", "LA"), ("PA", "PA"))]  # fmt: skip


def _study() -> list[Released]:
    from lcnn.tasks.spoof.official import FEATURES, LOSSES, NETS

    return [Released(f"nii-{feature}-lcnn-{net}-{loss}-{run}", f"nii-mega:{feature}-lcnn-{net}-{loss}",
                     "ASVspoof 2019 LA train", _NII_TARBALL, _NII_CODE, "ff1ce800fb14b3ed0f5af170925dfbbc",
                     f"{feature}-lcnn-{net}-{loss}/{run}/__pretrained/trained_network.pt",
                     "Wang & Yamagishi, Interspeech 2021 (arXiv 2103.11326), one of six training runs")
            for feature in FEATURES for net in NETS for loss in LOSSES
            for run in ("01", "02", "03", "04", "05", "06")]  # fmt: skip


#: Every released system lcnn converts, by name (``lcnn pretrained list``).
RELEASED: dict[str, Released] = {r.name: r for r in [*_baselines(), *_study()]}


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def convert(file: str | os.PathLike, format: str, out: str | os.PathLike | None = None,
            source: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The lcnn spoof checkpoint of an official ``trained_network.pt``; written to ``out`` (atomically) if given.

    ``format``: ``asvspoof2021`` (the LA, DF and PA baselines) or ``nii-mega:VARIANT`` (e.g.
    ``nii-mega:lfb-lcnn-attention-am``). A file whose keys or shapes are not the format's is a one-line
    :class:`~lcnn.errors.UserError` naming the first key that differs. ``source``: where the file came from
    (a released name or URL), recorded with the file's name, SHA-256 and licence under ``lcnn_source``.
    """
    import torch

    from lcnn import __version__
    from lcnn.config import build
    from lcnn.tasks.spoof.module import SpoofModule
    from lcnn.tasks.spoof.official import map_official, parse_format

    file = Path(file)
    variant = parse_format(format)
    if not file.is_file():
        raise UserError(f"{file}: no such file")
    if out is not None and Path(out).resolve() == file.resolve():
        raise UserError(f"{out}: the output would overwrite its input")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a file that is not a checkpoint
        raise UserError(f"{file}: not a readable PyTorch state_dict ({type(err).__name__}: "
                        f"{str(err).splitlines()[0][:120] if str(err) else ''})") from None  # fmt: skip
    weights = map_official(state, variant, str(file))
    settings = variant.module_settings
    module = build(SpoofModule, settings)
    expected = module.state_dict()
    weights["threshold"] = expected["threshold"]
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in weights.items()})
    hparams = dict(module.hparams)
    checkpoint = {
        "lcnn_task": "spoof",
        "hyper_parameters": hparams,
        "state_dict": {k: v.contiguous() for k, v in module.state_dict().items()},
        "lcnn_config": {"task": "spoof", **{k: hparams[k] for k in ("model", "frontend", "loss")}},
        "lcnn_source": {"format": format, "variant": variant.name, "file": file.name, "sha256": sha256(file),
                        "licence": LICENCE, "source": source or str(file), "converted_by": f"lcnn {__version__}"},
    }  # fmt: skip
    if out is not None:
        from lcnn.io import atomic_path

        with atomic_path(out) as tmp:
            torch.save(checkpoint, tmp)
    return checkpoint


def _download(url: str, dest: Path, md5: str | None) -> Path:
    """``url`` into ``dest``, resuming a partial ``dest.part`` with an HTTP Range request; checked against ``md5``
    where it is known."""
    from tqdm import tqdm

    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            resumed = have > 0 and response.status == 206
            total = int(response.headers.get("Content-Length") or 0) + (have if resumed else 0)
            with open(part, "ab" if resumed else "wb") as out, \
                    tqdm(total=total or None, initial=have if resumed else 0, unit="B", unit_scale=True,
                         desc=dest.name, leave=False) as bar:  # fmt: skip
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    bar.update(len(block))
    except (OSError, http.client.HTTPException) as err:  # refused, HTTP errors, a dropped connection: the part
        # stays, to resume
        raise UserError(f"{url}: download failed ({err}); run the command again to resume") from None
    if total and part.stat().st_size != total:
        raise UserError(f"{url}: download failed (the connection closed after {part.stat().st_size} of {total} "
                        "bytes); run the command again to resume")  # fmt: skip
    if md5 is not None:
        digest = hashlib.md5()
        with open(part, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != md5:
            part.unlink()
            raise UserError(f"{url}: the download has md5 {digest.hexdigest()}, expected {md5}; removed it")
    part.replace(dest)
    return dest


def _extract(archive: Path, member: str, dest: Path) -> Path:
    """The archive's file whose path ends with ``member`` (the releases put a folder or none above it)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if n == member or n.endswith("/" + member)]
            if not names:
                raise UserError(f"{archive}: holds no {member}")
            data = z.read(names[0])
    else:
        with tarfile.open(archive) as t:
            infos = [i for i in t.getmembers() if i.isfile() and (i.name == member or i.name.endswith("/" + member))]
            if not infos:
                raise UserError(f"{archive}: holds no {member}")
            data = t.extractfile(infos[0]).read()
    from lcnn.io import atomic_path

    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return dest


def fetch(name: str, cache: str | os.PathLike | None = None) -> Path:
    """The converted checkpoint of released system ``name`` (``lcnn pretrained list``) in the cache: downloaded,
    extracted and converted the first time, found there afterwards."""
    from lcnn.data.download import cache_dir

    if name not in RELEASED:
        import difflib

        close = difflib.get_close_matches(name, RELEASED, n=3)
        raise UserError(f"unknown released model {name!r}" + (f"; did you mean {', '.join(close)}?" if close else
                                                              "; see lcnn pretrained list"))  # fmt: skip
    release = RELEASED[name]
    root = Path(cache) if cache is not None else cache_dir() / "released"
    checkpoint = root / f"{name}.ckpt"
    if checkpoint.is_file():
        return checkpoint
    archive = root / "archives" / release.source.rsplit("/", 1)[-1]
    if not archive.is_file():
        _download(release.source, archive, release.archive_md5)
    weights = _extract(archive, release.member, root / "weights" / name / "trained_network.pt")
    convert(weights, release.format, checkpoint, source=f"{release.source} ({release.member})")
    return checkpoint
