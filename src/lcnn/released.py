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

import http.client
import os
import tarfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lcnn.data.download import file_digest, file_md5
from lcnn.errors import UserError

__all__ = ["FACE_LICENCE", "LICENCE", "RELEASED", "Released", "cached", "convert", "fetch", "parameters",
           "provenance", "published", "sha256"]

_NII_CODE = "https://github.com/nii-yamagishilab/project-NN-Pytorch-scripts/tree/master/project/03-asvspoof-mega"
_NII_TARBALL = "https://zenodo.org/record/6456692/files/project-03-asvspoof-mega-pretrained.tar.gz"
_BASELINE_CODE = "https://github.com/asvspoof-challenge/2021/tree/main/{track}/Baseline-LFCC-LCNN"
_LIGHTCNN_CODE = "https://github.com/AlfredXiangWu/LightCNN"
#: The licence of the code (and, as far as their pages say, of the weights) each release comes with: the
#: ``LICENSE`` of asvspoof-challenge/2021's ``*/Baseline-LFCC-LCNN`` and of project-NN-Pytorch-scripts.
LICENCE = "BSD-3-Clause (Copyright (c) Xin Wang, National Institute of Informatics)"
#: AlfredXiangWu/LightCNN's ``LICENSE``; its README gives the weights no terms of their own.
FACE_LICENCE = "MIT (Copyright (c) 2017 Alfred Xiang Wu: the repository's; the README names none for the weights)"


@dataclass(frozen=True)
class Released:
    """One released system: its lcnn name, conversion format, what it was trained on, where it comes from, and its
    published results (``figures``: (metric, value as published) on ``evaluated_on``, read in ``reference``).

    ``downloadable``: whether :func:`fetch` can download ``source`` (the LightCNN files are shared on Google Drive
    without a checksum: the user downloads them and gives the file)."""

    name: str
    format: str
    trained_on: str
    source: str
    code: str
    archive_md5: str | None = None
    member: str = "trained_network.pt"
    note: str = ""
    task: str = "spoof"
    architecture: str = ""
    figures: tuple[tuple[str, str], ...] = ()
    evaluated_on: str = ""
    reference: str = ""
    licence: str = LICENCE
    downloadable: bool = True


_FEATURES = {"lfcc": "LFCC", "lfb": "LFB", "spec2": "spectrogram"}
_NETS = {"fixed": "LCNN-trim-pad", "attention": "LCNN-attention", "lstmsum": "LCNN-LSTM-sum"}
_HEADS = {"am": "AM-softmax", "oc": "OC-softmax", "p2s": "P2SGrad", "sig": "sigmoid"}


def _baselines() -> list[Released]:
    from lcnn.released_figures import BASELINES

    return [Released(f"asvspoof2021-{track.lower()}", "asvspoof2021", f"ASVspoof 2019 {train} train",
                     f"https://www.asvspoof.org/asvspoof2021/pre_trained_{track}_LFCC-LCNN.zip",
                     _BASELINE_CODE.format(track=track), note="the challenge's LFCC-LCNN baseline",
                     architecture="LFCC, LCNN-LSTM-sum, sigmoid", figures=BASELINES[track][0],
                     evaluated_on=BASELINES[track][1], reference=BASELINES[track][2])
            for track, train in (("LA", "LA"), ("DF", "LA"), ("PA", "PA"))]  # fmt: skip


def _study() -> list[Released]:
    from lcnn.released_figures import STUDY, STUDY_REFERENCE
    from lcnn.tasks.spoof.official import FEATURES, LOSSES, NETS

    return [Released(f"nii-{feature}-lcnn-{net}-{loss}-{run}", f"nii-mega:{feature}-lcnn-{net}-{loss}",
                     "ASVspoof 2019 LA train", _NII_TARBALL, _NII_CODE, "ff1ce800fb14b3ed0f5af170925dfbbc",
                     f"{feature}-lcnn-{net}-{loss}/{run}/__pretrained/trained_network.pt",
                     "Wang & Yamagishi, Interspeech 2021 (arXiv 2103.11326), one of six training runs",
                     architecture=f"{_FEATURES[feature]}, {_NETS[net]}, {_HEADS[loss]}",
                     figures=(("EER of the six runs", " ".join(STUDY[f"{feature}-lcnn-{net}-{loss}"][0]) + " %"),
                              ("min t-DCF of the six runs", " ".join(STUDY[f"{feature}-lcnn-{net}-{loss}"][1]))),
                     evaluated_on="ASVspoof 2019 LA eval (the six runs sorted by EER; which run gave which is not "
                                  "published)", reference=STUDY_REFERENCE)
            for feature in FEATURES for net in NETS for loss in LOSSES
            for run in ("01", "02", "03", "04", "05", "06")]  # fmt: skip


def _lightcnn() -> list[Released]:
    from lcnn.released_figures import LIGHTCNN, LIGHTCNN_REFERENCE

    drive = "https://drive.google.com/"
    releases = (  # name, architecture, its title, training data, file, Google Drive address (official README)
        ("lightcnn-9", "lightcnn9", "LightCNN-9", "MS-Celeb-1M clean list (79,077 identities)",
         "LightCNN_9Layers_checkpoint.pth.tar", "open?id=0ByNaVHFekDPRWk5XUFRvTTRIVmc"),
        ("lightcnn-29", "lightcnn29", "LightCNN-29", "MS-Celeb-1M clean list (79,077 identities)",
         "LightCNN_29Layers_checkpoint.pth.tar", "file/d/0ByNaVHFekDPRMGlLWVBhbkVGVm8/view"),
        ("lightcnn-29v2", "lightcnn29v2", "LightCNN-29 v2", "CASIA-WebFace + MS-Celeb-1M (80,013 identities)",
         "LightCNN_29Layers_V2_checkpoint.pth.tar", "open?id=1Jn6aXtQ84WY-7J3Tpr2_j6sX0ch9yucS"),
        ("lightcnn-v4", "lightcnn_v4", "LightCNN v4", "- (the README does not say)",
         "LightCNN-V4_checkpoint.pth.tar", "file/d/1zFB8RmxeS00Nbq2fM0EoME15RIHtVOqn/view?usp=sharing"),
    )  # fmt: skip
    return [Released(name, f"lightcnn:{arch}", data, drive + where, _LIGHTCNN_CODE, member=file, task="face",
                     architecture=title, figures=LIGHTCNN[arch], evaluated_on="LFW (6,000 pairs)",
                     reference=LIGHTCNN_REFERENCE, licence=FACE_LICENCE, downloadable=False)
            for name, arch, title, data, file, where in releases]  # fmt: skip


#: Every released model lcnn converts, by name (``lcnn pretrained list``): the spoof systems, then the face ones.
RELEASED: dict[str, Released] = {r.name: r for r in [*_baselines(), *_study(), *_lightcnn()]}


def published(release: Released) -> str:
    """The release's published figures in one line (``-`` where none was found)."""
    figures = release.figures
    if release.format.startswith("nii-mega:"):  # six runs: their range
        eers, tdcfs = (sorted(float(v) for v in value.rstrip(" %").split()) for _, value in figures)
        return f"EER {eers[0]:.2f}-{eers[-1]:.2f} %, min t-DCF {tdcfs[0]:.3f}-{tdcfs[-1]:.3f} (six runs)"
    return ", ".join(f"{metric} {value}" for metric, value in figures) or "-"


def parameters(release: Released) -> int:
    """The number of values the released weights hold: the official ``trained_network.pt``'s tensors (spoof), the
    network with its released classifier (face)."""
    import math

    if release.task == "face":
        import torch

        from lcnn.models import create_model, model_info

        arch = release.format.partition(":")[2]
        with torch.device("meta"):
            model = create_model(arch, num_classes=model_info(arch).released_classes)
        return sum(p.numel() for p in model.state_dict().values())
    from lcnn.tasks.spoof.official import official_keys, parse_format

    return sum(math.prod(shape) for _, shape, _ in official_keys(parse_format(release.format)))


def cached(name: str, cache: str | os.PathLike | None = None) -> Path:
    """Where the converted checkpoint of released model ``name`` lives in the cache (whether it is there or not)."""
    from lcnn.data.download import cache_dir

    return (Path(cache) if cache is not None else cache_dir() / "released") / f"{name}.ckpt"


def provenance(checkpoint: str | os.PathLike) -> dict[str, Any] | None:
    """The ``lcnn_source`` record of a converted checkpoint (source, file, SHA-256, licence), ``None`` without one."""
    import torch

    try:
        record = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True).get("lcnn_source")
    except Exception:  # torch raises many types for a file that is not a checkpoint: no record to show
        return None
    return dict(record) if isinstance(record, dict) else None


def sha256(path: str | os.PathLike) -> str:
    return file_digest(path, "sha256")


def convert(file: str | os.PathLike, format: str, out: str | os.PathLike | None = None,
            source: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The lcnn checkpoint of an official file; written to ``out`` (atomically) if given.

    ``format``: ``asvspoof2021`` (the LA, DF and PA baselines' ``trained_network.pt``), ``nii-mega:VARIANT`` (e.g.
    ``nii-mega:lfb-lcnn-attention-am``), both spoof checkpoints, or ``lightcnn:ARCH`` (a released LightCNN
    ``.pth.tar``, e.g. ``lightcnn:lightcnn29v2``: a face embedder). A file whose keys or shapes are not the
    format's is a one-line :class:`~lcnn.errors.UserError` naming the first key that differs. ``source``: where the
    file came from (a released name or URL), recorded with the file's name, SHA-256 and licence under
    ``lcnn_source``.
    """
    import torch

    from lcnn.tasks.spoof.official import parse_format

    if format.startswith("lightcnn:"):
        _lightcnn_arch(format)
    else:
        parse_format(format)  # an unknown format is named before the file is looked at
    file = Path(file)
    if not file.is_file():
        raise UserError(f"{file}: no such file")
    if out is not None and Path(out).resolve() == file.resolve():
        raise UserError(f"{out}: the output would overwrite its input")
    if format.startswith("lightcnn:"):
        checkpoint = _face_checkpoint(file, _lightcnn_arch(format))
        licence = FACE_LICENCE
    else:
        checkpoint = _spoof_checkpoint(file, format)
        licence = LICENCE
    from lcnn import __version__

    checkpoint["lcnn_source"] = {"format": format, "variant": checkpoint.pop("variant"), "file": file.name,
                                 "sha256": sha256(file), "licence": licence, "source": source or str(file),
                                 "converted_by": f"lcnn {__version__}"}  # fmt: skip
    if out is not None:
        from lcnn.io import atomic_path

        with atomic_path(out) as tmp:
            torch.save(checkpoint, tmp)
    return checkpoint


def _lightcnn_arch(format: str) -> str:
    from lcnn.models.pretrained import released_architectures

    arch = format.partition(":")[2]
    if arch not in released_architectures():
        raise UserError(f"unknown format {format!r}; expected lightcnn:ARCH with ARCH one of "
                        f"{', '.join(released_architectures())}")  # fmt: skip
    return arch


def _face_checkpoint(file: Path, arch: str) -> dict[str, Any]:
    """A released LightCNN file as an lcnn face checkpoint: the embedder (no classifier) that ``--model ARCH FILE``
    loads, read by :func:`lcnn.load_lightcnn` (through the face task)."""
    from lcnn.tasks.face.task import FaceTask

    module = FaceTask().load_released(file, arch)
    return {"lcnn_task": "face", "hyper_parameters": dict(module.hparams), "variant": arch,
            "state_dict": {k: v.contiguous() for k, v in module.state_dict().items()},
            "lcnn_config": {"task": "face", "model": arch}}  # fmt: skip


def _spoof_checkpoint(file: Path, format: str) -> dict[str, Any]:
    import torch

    from lcnn.config import build
    from lcnn.tasks.spoof.module import SpoofModule
    from lcnn.tasks.spoof.official import map_official, parse_format

    variant = parse_format(format)
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
    return {"lcnn_task": "spoof", "hyper_parameters": hparams, "variant": variant.name,
            "state_dict": {k: v.contiguous() for k, v in module.state_dict().items()},
            "lcnn_config": {"task": "spoof", **{k: hparams[k] for k in ("model", "frontend", "loss")}}}  # fmt: skip


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
    got = None if md5 is None else file_md5(part)
    if got != md5:
        part.unlink()
        raise UserError(f"{url}: the download has md5 {got}, expected {md5}; removed it")
    part.replace(dest)
    return dest


def _extract(archive: Path, member: str, dest: Path) -> Path:
    """The archive's file whose path ends with ``member`` (the releases put a folder or none above it); in a zip
    without one, its only ``.pt`` file (the baselines' download script looks for ``la_trained_network.pt`` and the
    like in theirs)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if n == member or n.endswith("/" + member)]
            weights = [n for n in z.namelist() if n.endswith(".pt")]
            names = names or (weights if len(weights) == 1 else [])
            if not names:
                raise UserError(f"{archive}: holds no {member}")
            data = z.read(names[0])
    else:
        try:
            with tarfile.open(archive) as t:
                infos = [i for i in t.getmembers() if i.isfile() and (i.name == member or
                                                                     i.name.endswith("/" + member))]  # fmt: skip
                if not infos:
                    raise UserError(f"{archive}: holds no {member}")
                data = t.extractfile(infos[0]).read()
        except (tarfile.TarError, EOFError, OSError) as err:
            raise UserError(f"{archive}: not a zip or tar archive ({err})") from None
    from lcnn.io import atomic_path

    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return dest


def fetch(name: str, cache: str | os.PathLike | None = None, file: str | os.PathLike | None = None) -> Path:
    """The converted checkpoint of released model ``name`` (``lcnn pretrained list``) in the cache: downloaded,
    extracted and converted the first time, found there afterwards. ``file``: the release as the user downloaded
    it (the archive; a LightCNN ``.pth.tar``), used instead of a download; the only way for the LightCNN files,
    which Google Drive shares without a checksum or a non-interactive download."""
    if name not in RELEASED:
        import difflib

        close = difflib.get_close_matches(name, RELEASED, n=3)
        raise UserError(f"unknown released model {name!r}" + (f"; did you mean {', '.join(close)}?" if close else
                                                              "; see lcnn pretrained list"))  # fmt: skip
    release = RELEASED[name]
    checkpoint = cached(name, cache)
    root = checkpoint.parent
    if checkpoint.is_file() and file is None:
        return checkpoint
    if release.task == "face":
        if file is None:
            arch = release.format.partition(":")[2]
            raise UserError(f"{name}: the official weights are on Google Drive without a checksum, which lcnn cannot "
                            f"download for you: download {release.member} from {release.source}, then run "
                            f"`lcnn pretrained get {name} --file FILE` (or give FILE to a face command with "
                            f"--model {arch})")  # fmt: skip
        convert(file, release.format, checkpoint, source=f"{release.source} ({release.member})")
        return checkpoint
    if file is not None:
        archive = Path(file)
        if not archive.is_file():
            raise UserError(f"{archive}: no such file")
        got = None if release.archive_md5 is None else file_md5(archive)
        if got != release.archive_md5:
            raise UserError(f"{archive}: md5 {got}, not the release's {release.archive_md5}")
    else:
        archive = root / "archives" / release.source.rsplit("/", 1)[-1]
        if not archive.is_file():
            _download(release.source, archive, release.archive_md5)
    weights = _extract(archive, release.member, root / "weights" / name / "trained_network.pt")
    convert(weights, release.format, checkpoint, source=f"{release.source} ({release.member})")
    return checkpoint
