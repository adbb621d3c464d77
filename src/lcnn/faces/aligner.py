"""From a photo to the aligned face the LightCNN networks read: detect, pick the subject, align.

:class:`Aligner` is the one rule every face path uses with ``--align`` (training, evaluate, predict, verify,
serve, the gallery): the largest face of the photo, aligned to the official 144x144 image. Its detector is
pluggable: any callable taking a list of uint8 RGB arrays and returning one :class:`~lcnn.faces.mtcnn.Faces`
per image (landmarks from another detector), or ``landmarks``, a mapping from image path to given points.
A training set is located once (:func:`lcnn.data.faces.locate_subjects`), so that each epoch's read only warps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from lcnn.errors import DataError
from lcnn.faces.align import ALIGNED, align_faces
from lcnn.faces.mtcnn import MTCNN, Faces

__all__ = ["Aligner", "NoFaceError", "rgb_array"]

Detector = Callable[[list[np.ndarray]], list[Faces]]


class NoFaceError(DataError):
    """An image in which the detector finds no face."""


def rgb_array(image: Image.Image) -> np.ndarray:
    """A Pillow image as uint8 RGB ``(H, W, 3)``."""
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


class Aligner:
    """Detects the faces of photos and aligns their subject (the largest face).

    ``colour``: keep RGB (LightCNN-V4) instead of grey; ``detector``: a callable as in the module's doc
    (default: :class:`~lcnn.faces.mtcnn.MTCNN`, made on first use, so that a data-loading worker builds its own);
    ``landmarks``: the subject's five points ``(5, 2)`` of the photos it names (``str`` of the path given to
    :meth:`__call__`), used instead of detecting them.
    """

    def __init__(self, colour: bool = False, detector: Detector | None = None, device: str = "cpu",
                 landmarks: Mapping[str, np.ndarray] | None = None) -> None:  # fmt: skip
        self.colour, self._detector, self.device = colour, detector, device
        self.landmarks = dict(landmarks or {})

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            self._detector = MTCNN().to(self.device).detect
        return self._detector

    def __getstate__(self) -> dict:  # a worker process builds its own detector
        state = dict(self.__dict__)
        if isinstance(getattr(state["_detector"], "__self__", None), MTCNN):
            state["_detector"] = None
        return state

    def detect(self, images: list[Image.Image]) -> list[Faces]:
        return self.detector([rgb_array(image) for image in images])

    def align(self, image: Image.Image, faces: Faces, name: str = "image") -> Image.Image:
        """The subject of ``image`` aligned (144x144, grey or RGB); :class:`NoFaceError` naming ``name``
        when ``faces`` is empty."""
        if len(faces) == 0:
            raise NoFaceError(f"{name}: no face found (give a photo with a face, or an aligned crop without --align)")
        return self._warp(image, faces.points[faces.largest()])

    def _warp(self, image: Image.Image, points: np.ndarray) -> Image.Image:
        array = align_faces(rgb_array(image), points, colour=self.colour, size=ALIGNED)
        return Image.fromarray(array, "RGB" if self.colour else "L")

    def __call__(self, image: Image.Image, name: str | Path = "image") -> Image.Image:
        """Align one photo: at its given points, or detected."""
        if str(name) in self.landmarks:
            return self._warp(image, self.landmarks[str(name)])
        return self.align(image, self.detect([image])[0], str(name))
