"""The models a server holds: one small class per task kind, each running a whole batch in one call.

- :class:`SpoofModel`: ``spoof(requests)`` scores waveforms through :func:`lcnn.score.waves.score_waveforms`
  (the scores of ``lcnn score`` and ``lcnn predict``): whole utterances, or the windows a request asks for
  (``segment``, ``hop``, ``aggregate``: those of ``lcnn score --segment``).
- :class:`FaceModel`: ``embed(images)``, 256-d embeddings; a verification compares their cosine similarity
  with the threshold stored at training (a released LightCNN file stores none).
- :class:`ClassifyModel`: ``classify(images)``, class probabilities.

Face and classification models run in int8 on the CPU (:func:`lcnn.inference.quantize_int8`) when
``load_models`` is given calibration images and the int8 model agrees with fp32 on them.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from lcnn.audio import FeaturePipeline
from lcnn.data.images import IMAGE_SUFFIXES, open_image, to_array
from lcnn.errors import DataError, UserError
from lcnn.inference import calibration_subset
from lcnn.metrics import Calibration
from lcnn.precision import check_int8, min_cosine, top1_agreement
from lcnn.score.waves import score_waveforms
from lcnn.speed import prepare_input
from lcnn.tasks import find_checkpoint, load_task, read_checkpoint

__all__ = ["ClassifyModel", "FaceModel", "ServedModel", "SpoofModel", "SpoofRequest", "load_model", "load_models",
           "model_name"]

log = logging.getLogger("lcnn.serve")

#: Most utterances (or windows) in one batch of a spoof model (:data:`lcnn.score.waves.BATCH_SECONDS` bounds
#: the audio of a batch).
SEGMENT_CHUNK = 64


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class ServedModel:
    """A loaded model under a name. ``run(batch)`` (one batch, in the inference thread) is the task's call."""

    task = ""

    def __init__(self, name: str, module: Any, arch: str) -> None:
        self.name, self.module, self.arch = name, module.eval(), arch
        self.threshold = _finite(float(getattr(module, "threshold", torch.tensor(math.nan))))
        self.precision = "fp32"
        self.source = str(getattr(module, "source", ""))  # hf:ORG/NAME@COMMIT for a Hub model: the exact revision

    def info(self) -> dict[str, Any]:
        """What ``GET /v1/models`` lists."""
        return {"name": self.name, "task": self.task, "architecture": self.arch, "threshold": self.threshold,
                "precision": self.precision, "source": self.source}  # fmt: skip

    def run(self, batch: list[Any]) -> list[Any]:
        raise NotImplementedError


class SpoofModel(ServedModel):
    """A spoofing countermeasure: waveforms at ``sample_rate`` -> scores, higher = more bona fide, through the one
    spoof path (:func:`lcnn.score.waves.score_waveforms`): an upload scores as ``lcnn score`` scores its file."""

    task = "spoof"

    def __init__(self, name: str, module: Any, calibration: Calibration | None = None) -> None:
        super().__init__(name, module, module.hparams.model)
        self.pipeline = FeaturePipeline(module.hparams.frontend)
        self.sample_rate: int = module.hparams.frontend["sample_rate"]
        self.calibration = calibration if calibration is not None else getattr(module, "calibration", None)
        module.calibration = self.calibration

    def info(self) -> dict[str, Any]:
        return {**super().info(), "sample_rate": self.sample_rate, "calibrated": self.calibration is not None}

    def verdict(self, score: float, llr: float | None) -> dict[str, Any]:
        """``score``, ``llr`` (``None`` without a calibration) and ``decision`` (``None`` without a threshold)."""
        decision = None if self.threshold is None else "bonafide" if score >= self.threshold else "spoof"
        return {"score": score, "llr": llr, "decision": decision}

    def spoof(self, waves: list[SpoofRequest]) -> list[dict[str, Any]]:
        """Each request's ``score``, ``llr``, ``decision``, ``threshold`` and ``segments`` (``None`` unless the
        request asks for windows; else ``start`` / ``end`` in seconds with the window's verdict)."""
        results: list[dict[str, Any]] = [{} for _ in waves]
        groups: dict[tuple[Any, ...], list[int]] = {}
        for k, request in enumerate(waves):
            groups.setdefault(request.windows, []).append(k)
        for (segment, hop, aggregate), members in groups.items():
            got = score_waveforms(self.module, [waves[k].wave for k in members], segment=segment, hop=hop,
                                  aggregate=aggregate, batch_size=SEGMENT_CHUNK, pipeline=self.pipeline)  # fmt: skip
            for j, k in enumerate(members):
                score = float(got.scores[j])
                llr = None if got.llrs is None else float(got.llrs[j])
                segments = None
                if got.windows is not None:
                    own = got.window_scores[j]  # type: ignore[index]
                    llrs = self.calibration.apply(own) if self.calibration is not None else [None] * len(own)
                    segments = [{"start": s / self.sample_rate, "end": e / self.sample_rate,
                                 **self.verdict(float(v), None if w is None else float(w))}
                                for (s, e), v, w in zip(got.windows[j], own, llrs)]  # fmt: skip
                results[k] = {**self.verdict(score, llr), "threshold": self.threshold, "segments": segments}
        return results

    def run(self, batch: list[Any]) -> list[dict[str, Any]]:
        return self.spoof([item if isinstance(item, SpoofRequest) else SpoofRequest(item) for item in batch])


@dataclass(frozen=True)
class SpoofRequest:
    """One waveform to score and the windows asked for (``segment`` seconds every ``hop``, their ``aggregate``;
    ``segment`` ``None``: the whole utterance)."""

    wave: torch.Tensor
    segment: float | None = None
    hop: float | None = None
    aggregate: str = "mean"

    @property
    def windows(self) -> tuple[float | None, float | None, str]:
        return self.segment, self.hop, self.aggregate


class _ImageModel(ServedModel):
    """Shared by the image models: ``preprocess`` (in a decode thread), int8 with a check against fp32."""

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        raise NotImplementedError

    def _int8(self, calibration: torch.Tensor) -> tuple[Any, str, str]:
        """:func:`lcnn.precision.check_int8` of the model on ``calibration``, by the task's agreement."""
        raise NotImplementedError

    def use_int8(self, images: list[Image.Image]) -> str:
        """Run in int8 when it agrees with fp32 on ``images`` (:func:`lcnn.precision.check_int8`); says what
        happened."""
        self.module.model, self.precision, note = self._int8(torch.stack([self.preprocess(im) for im in images]))
        return note if self.precision == "int8" else f"fp32: {note}"


class FaceModel(_ImageModel):
    """A face embedder: images -> ``(256,)`` embeddings, the official LightCNN preprocessing."""

    task = "face"

    def __init__(self, name: str, module: Any) -> None:
        super().__init__(name, module, module.hparams.model)
        self.transform = module.transform(train=False)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.transform(image)

    def embed(self, images: list[torch.Tensor]) -> list[np.ndarray]:
        with torch.inference_mode():
            return list(self.module.embed(torch.stack(images)).float().numpy())

    def run(self, batch: list[torch.Tensor]) -> list[np.ndarray]:
        return self.embed(batch)

    def _int8(self, calibration: torch.Tensor) -> tuple[Any, str, str]:
        return check_int8(self.module.model, calibration, calibration, min_cosine)


class ClassifyModel(_ImageModel):
    """An image classifier: images (resized to the model's input) -> class probabilities."""

    task = "classify"

    def __init__(self, name: str, module: Any) -> None:
        super().__init__(name, module, module.hparams.model)
        self.shape = tuple(module.hparams.input_shape)
        self.classes = list(module.hparams.classes or range(module.hparams.num_classes))

    def info(self) -> dict[str, Any]:
        return {**super().info(), "classes": [str(c) for c in self.classes], "input_shape": list(self.shape)}

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        channels, height, width = self.shape
        array = to_array(image.resize((width, height), Image.BILINEAR), channels)
        return torch.from_numpy(array).float().div_(255)

    def classify(self, images: list[torch.Tensor]) -> list[np.ndarray]:
        with torch.inference_mode():
            return list(self.module.log_probs(torch.stack(images)).exp().numpy())

    def run(self, batch: list[torch.Tensor]) -> list[np.ndarray]:
        return self.classify(batch)

    def _int8(self, calibration: torch.Tensor) -> tuple[Any, str, str]:
        x = prepare_input(calibration)
        return check_int8(self.module.model, x, x, top1_agreement, run=lambda m, batch: m(batch))


def model_name(path: str | Path) -> str:
    """The default name of a served checkpoint: its run folder's name, else the file name without suffixes
    (``NAME`` of ``hf:ORG/NAME@REVISION``)."""
    if str(path).startswith("hf:"):
        return str(path).partition("@")[0].rpartition("/")[2]
    path = Path(path)
    if path.is_dir():
        return path.resolve().name
    if path.parent.name == "checkpoints":
        return path.resolve().parent.parent.name
    return path.name.split(".")[0]


def load_model(path: str | Path, name: str | None = None, arch: str | None = None) -> ServedModel:
    """The checkpoint (or run folder) ``path`` as a served model; ``arch`` is the architecture of a released
    LightCNN file (an lcnn checkpoint carries its own). Spoof checkpoints may hold a score calibration
    (``lcnn_calibration``: a :meth:`lcnn.metrics.Calibration.to_dict`), which gives the LLRs."""
    ckpt = find_checkpoint(path)
    try:
        stored: dict[str, Any] | None = read_checkpoint(ckpt)
    except UserError:
        if arch is None:
            raise
        stored = None  # not an lcnn checkpoint: a released LightCNN file of architecture ``arch``
    module, _, task = load_task(ckpt, None if stored else arch)
    name = name or model_name(path)
    if task.name == "spoof":
        return SpoofModel(name, module, _calibration(stored, ckpt))
    return FaceModel(name, module) if task.name == "face" else ClassifyModel(name, module)


def _calibration(stored: dict[str, Any] | None, ckpt: Path) -> Calibration | None:
    data = (stored or {}).get("lcnn_calibration")
    if data is None:
        return None
    try:
        return Calibration.from_dict(data)
    except DataError as err:
        raise UserError(f"{ckpt}: lcnn_calibration: {err}") from None


def _calibration_images(folder: str | Path, count: int = 64) -> list[Image.Image]:
    paths = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise UserError(f"{folder}: no images to calibrate int8 on ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return [open_image(p) for p in calibration_subset(paths, count)]


_NAMED = re.compile(r"([A-Za-z0-9_.-]+)=(.+)")


def load_models(specs: list[str], arch: str | None = None, int8_images: str | Path | None = None) -> list[ServedModel]:
    """Load ``[NAME=]CHECKPOINT`` items (names default to :func:`model_name`; each must be unique), warm each
    up with one batch, and calibrate the image models to int8 on the images of folder ``int8_images``."""
    models: list[ServedModel] = []
    images = _calibration_images(int8_images) if int8_images else None
    for spec in specs:
        named = _NAMED.fullmatch(spec)
        name, path = named.groups() if named and not Path(spec).exists() else (None, spec)
        model = load_model(path, name, arch)
        if any(m.name == model.name for m in models):
            raise UserError(f"two models are called {model.name!r}; name them: NAME=CHECKPOINT")
        if images and isinstance(model, _ImageModel):
            log.info("%s: %s", model.name, model.use_int8(images))
        warm_up(model)
        models.append(model)
    return models


def warm_up(model: ServedModel) -> None:
    """One batch through the model, so that the first request does not pay for the kernels' set-up."""
    if isinstance(model, SpoofModel):
        model.run([torch.zeros(model.sample_rate)])
    else:
        model.run([model.preprocess(Image.new("L", (128, 128)))])
