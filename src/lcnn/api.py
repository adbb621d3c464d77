"""The Python API: ``lcnn.load(NAME_OR_PATH)``, a trained model with the command line's pipeline.

``NAME_OR_PATH`` is whatever the commands take (:func:`lcnn.tasks.find_checkpoint`): a run folder, a ``.ckpt``,
a folder in the Hugging Face Hub layout (``lcnn export RUN --format hf``) or ``hf:ORG/NAME[@REVISION]``. The
model is one of three kinds, by the task it was trained for:

- :class:`Countermeasure` (spoof): ``score(path | waveform, sample_rate=None)``, ``score_files(paths)``: the
  score (higher = more bona fide) that ``lcnn score`` writes, the LLR where calibrated and the decision;
- :class:`FaceEmbedder` (face): ``embed(image)``, ``verify(a, b)``: the embedding and the cosine similarity
  of ``lcnn verify``, with its same / different decision;
- :class:`Classifier` (classify): ``predict(image)``: the class and probability of ``lcnn predict``.

Images are paths or Pillow images; audio is a path, or a mono waveform (NumPy array or tensor) at
``sample_rate`` (default: the model's). Everything runs in fp32 on the CPU, the reference precision.

>>> import lcnn
>>> model = lcnn.load("runs/digits")
>>> model
<lcnn Classifier lcnn from runs/digits/checkpoints/best.ckpt>
>>> result = model.predict("digit.png", resize=True)
>>> result["label"] in model.classes, 0 < result["probability"] <= 1
(True, True)

(``tests/test_hub.py`` runs these lines on a run folder of its own.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from lcnn.data.images import image_tensor, open_image
from lcnn.errors import DataError, UserError
from lcnn.metrics.dcf import bayes_threshold
from lcnn.score import TrialTable, score_trials, score_waveforms
from lcnn.tasks import load_task
from lcnn.tasks.face.verification import cosine_similarity, embed_faces, face_input

__all__ = ["Classifier", "Countermeasure", "FaceEmbedder", "Model", "load"]


def load(name_or_path: str | Path, arch: str | None = None) -> Model:
    """The trained model ``name_or_path`` names (a run, a checkpoint, a Hub-layout folder, ``hf:ORG/NAME[@REV]``),
    as a :class:`Countermeasure`, :class:`FaceEmbedder` or :class:`Classifier`; ``arch`` is the architecture of a
    released LightCNN file (``LightCNN_29Layers_V2_checkpoint.pth.tar``, ``arch="lightcnn29v2"``).

    Errors are :class:`lcnn.errors.UserError` (no such model, a missing Hub revision, weights that do not fit)."""
    module, config, task = load_task(name_or_path, arch)
    kinds: dict[str, type[Model]] = {"spoof": Countermeasure, "face": FaceEmbedder, "classify": Classifier}
    return kinds[task.name](module, config, task)


class Model:
    """A loaded model: ``task`` (``spoof``, ``face``, ``classify``), ``architecture``, ``source`` (where its
    weights came from: a path, or ``hf:ORG/NAME@COMMIT``), ``config`` (its run's), ``module`` (the
    LightningModule, in eval mode)."""

    def __init__(self, module: Any, config: dict[str, Any], task: Any) -> None:
        self.module, self.config, self._task = module.eval(), config, task
        self.task: str = task.name
        self.architecture: str = module.hparams.model
        self.source: str = str(getattr(module, "source", ""))

    def __repr__(self) -> str:
        return f"<lcnn {type(self).__name__} {self.architecture} from {self.source}>"


class Countermeasure(Model):
    """A spoofing countermeasure. ``threshold``: the dev EER threshold of training (``None`` if none);
    ``calibration``: the :class:`lcnn.metrics.Calibration` of its scores to LLRs, or ``None``."""

    def __init__(self, module: Any, config: dict[str, Any], task: Any) -> None:
        super().__init__(module, config, task)
        self.sample_rate: int = module.hparams.frontend["sample_rate"]
        threshold = float(module.threshold)
        self.threshold: float | None = threshold if math.isfinite(threshold) else None
        self.calibration = getattr(module, "calibration", None)

    def score(self, audio: str | Path | np.ndarray | torch.Tensor, sample_rate: int | None = None) -> dict[str, Any]:
        """``{"score", "llr", "decision"}`` of one file or mono waveform (at ``sample_rate``, default the
        model's): the score ``lcnn score`` gives the file, the LLR (``None`` when uncalibrated) and
        ``"bonafide"`` / ``"spoof"`` (``None`` without a threshold) as ``lcnn predict`` decides."""
        if isinstance(audio, (str, Path)):
            return self.score_files([audio])[0]
        return self._verdicts(self._score_waves([audio], sample_rate))[0]

    def score_files(self, paths: Sequence[str | Path], batch_size: int = 32) -> list[dict[str, Any]]:
        """:meth:`score` of each file, in order, each with its ``"file"``; scored in batches like ``lcnn score``."""
        missing = [str(p) for p in paths if not Path(p).is_file()]
        if missing:
            raise DataError(f"{missing[0]}: no such audio file")
        scores = self._score_files(list(paths), batch_size)
        return [{"file": str(p), **v} for p, v in zip(paths, self._verdicts(scores))]

    def _score_files(self, paths: list[str | Path], batch_size: int) -> np.ndarray:
        """The engine of ``lcnn score`` (:func:`lcnn.score.score_trials`) on whole files, in fp32."""
        import tempfile

        table = TrialTable("", "the files given")
        for k, path in enumerate(paths):
            table.add(str(k), str(path))
        hp = self.module.hparams
        with tempfile.TemporaryDirectory() as tmp:
            summary = score_trials(self.module, table.check(), Path(tmp) / "scores.txt", frontend=hp.frontend,
                                   frames=hp.frames, batch_size=batch_size, strict=True, progress=False,
                                   accelerator="cpu")  # fmt: skip
        return np.asarray(summary.scores, dtype=np.float64)

    def _score_waves(self, waves: list[Any], sample_rate: int | None) -> np.ndarray:
        """Decoded waveforms through the one spoof path (:func:`lcnn.score.score_waveforms`: the steps of the
        engine, in memory), resampled from ``sample_rate`` as a file would be."""
        try:
            return score_waveforms(self.module, waves, sample_rate).scores
        except ValueError as err:  # not a mono waveform
            raise UserError(str(err)) from None

    def _verdicts(self, scores: np.ndarray) -> list[dict[str, Any]]:
        """Score, LLR and decision, as ``lcnn predict`` decides: the Bayes decision of the LLR for a calibrated
        model (:func:`lcnn.tasks.spoof.calibrate.calibrated_lines`), else the stored threshold."""
        cal = self.calibration
        llrs = cal.apply(scores) if cal is not None else [None] * len(scores)
        out = []
        for score, llr in zip(scores.tolist(), llrs):
            if cal is not None:
                decision = "bonafide" if llr >= bayes_threshold(cal.p_spoof, cal.c_miss, cal.c_fa) else "spoof"
            else:
                decision = None if self.threshold is None else "bonafide" if score >= self.threshold else "spoof"
            out.append({"score": score, "llr": None if llr is None else float(llr), "decision": decision})
        return out


class FaceEmbedder(Model):
    """A face model: 256-d embeddings through the one face path of ``lcnn verify`` and the service
    (:func:`lcnn.tasks.face.verification.face_input`, ``embed_faces``, ``cosine_similarity``); ``threshold``: the
    same / different threshold stored at training (``None`` for a released file)."""

    def __init__(self, module: Any, config: dict[str, Any], task: Any) -> None:
        super().__init__(module, config, task)
        self._transform = module.transform(train=False)
        threshold = float(module.threshold)
        self.threshold: float | None = threshold if math.isfinite(threshold) else None

    def embed(self, image: Any) -> np.ndarray:
        """The ``(256,)`` float32 embedding of an image (a path or a PIL image); :meth:`embed_many` for several."""
        return self.embed_many([image])[0]

    def embed_many(self, images: Sequence[Any]) -> np.ndarray:
        """``(N, 256)`` float32 embeddings, row i = image i."""
        for image in images:
            if not isinstance(image, (str, Path, Image.Image)):
                raise UserError(f"expected an image path or a PIL.Image, got {type(image).__name__}")
        return embed_faces(self.module, torch.stack([face_input(self._transform, image) for image in images]))

    def verify(self, a: Any, b: Any, threshold: float | None = None) -> dict[str, Any]:
        """``{"similarity", "same", "threshold"}``: the cosine similarity of two faces and whether it reaches
        ``threshold`` (default: the stored one; ``same`` is ``None`` without any)."""
        first, second = self.embed_many([a, b])
        similarity = cosine_similarity(first, second)
        threshold = self.threshold if threshold is None else float(threshold)
        return {"similarity": similarity, "same": None if threshold is None else similarity >= threshold,
                "threshold": threshold}  # fmt: skip


class Classifier(Model):
    """An image classifier: ``classes`` in the model's order, ``input_shape`` ``(C, H, W)``."""

    def __init__(self, module: Any, config: dict[str, Any], task: Any) -> None:
        super().__init__(module, config, task)
        self.input_shape = tuple(module.hparams.input_shape)
        self.classes = [str(c) for c in (module.hparams.classes or range(module.hparams.num_classes))]

    def predict(self, image: Any, resize: bool = False) -> dict[str, Any]:
        """``{"label", "probability", "probabilities"}`` of an image (a path or a PIL image), as ``lcnn predict``
        reads it: an image of another size than the model's is refused unless ``resize``."""
        return self.predict_many([image], resize)[0]

    def predict_many(self, images: Sequence[Any], resize: bool = False) -> list[dict[str, Any]]:
        """:meth:`predict` of each image."""
        tensors = []
        for image in images:
            if isinstance(image, (str, Path)):
                tensors.append(image_tensor(open_image(Path(image)), self.input_shape, resize, str(image)))
            elif isinstance(image, Image.Image):
                tensors.append(image_tensor(image, self.input_shape, resize))
            else:
                raise UserError(f"expected an image path or a PIL.Image, got {type(image).__name__}")
        x = torch.stack(tensors)
        with torch.inference_mode():
            probs = self.module.predict_step(x, 0).float()
        return [{"label": self.classes[int(p.argmax())], "probability": float(p.max()),
                 "probabilities": dict(zip(self.classes, p.tolist()))} for p in probs]  # fmt: skip
