"""The official LightCNN alignment: from five landmarks to the 144x144 training crop (its 128x128 centre in tests).

The LightCNN README and paper: grey faces, the eyes made level, the eye centre (midpoint of the two eyes) at
``y = 48`` and the mouth centre (midpoint of the mouth corners) 48 pixels from it, in a 144x144 image; the
networks are tested on its 128x128 centre, where the eye centre sits at ``y = 40``. The transform is the
similarity that turns the eye line level (rotation), makes the eye-centre to mouth-centre distance 48
(scale) and puts the eye centre at ``(71.5, 48)``, the horizontal middle of the crop (translation).
LightCNN-V4 takes the same crop in colour (``colour=True``: RGB kept).

Coordinates are pixel indices (the centre of pixel ``(i, j)`` is ``x = j, y = i``), as the detector's points.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["ALIGNED", "EYE_Y", "EYE_TO_MOUTH", "TEST_CROP", "align_faces", "alignment_matrix", "centre_crop"]

ALIGNED = 144  # the side of the aligned training image
TEST_CROP = 128  # the side of its centre crop, the networks' test input
EYE_Y = 48.0  # the eye centre's row in the 144 image (40 in the 128 crop)
EYE_TO_MOUTH = 48.0  # pixels from the eye centre to the mouth centre
EYE_X = (ALIGNED - 1) / 2  # the horizontal middle


def alignment_matrix(points: np.ndarray) -> np.ndarray:
    """The 2x3 similarity matrix taking image coordinates to the 144x144 aligned image, from five points
    ``(5, 2)`` (left eye, right eye, nose, left and right mouth corner) or three (left eye, right eye, mouth
    centre)."""
    points = np.asarray(points, dtype=np.float64)
    if points.shape not in ((5, 2), (3, 2)):
        raise ValueError(f"landmarks must be (5, 2) or (3, 2) points, got shape {points.shape}")
    left, right = points[0], points[1]
    mouth = points[3:5].mean(0) if len(points) == 5 else points[2]
    eyes = (left + right) / 2
    dx, dy = right - left
    distance = float(np.hypot(*(mouth - eyes)))
    if distance < 1e-6 or np.hypot(dx, dy) < 1e-6:
        raise ValueError("landmarks too close together to align (eyes or eyes and mouth coincide)")
    angle = np.arctan2(dy, dx)
    scale = EYE_TO_MOUTH / distance
    cos, sin = scale * np.cos(-angle), scale * np.sin(-angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    shift = np.array([EYE_X, EYE_Y]) - rotation @ eyes
    return np.hstack([rotation, shift[:, None]])


def align_faces(image: np.ndarray | torch.Tensor, points: np.ndarray, colour: bool = False,
                size: int = ALIGNED) -> np.ndarray:
    """The aligned faces of one image: uint8 ``(n, size, size)`` (grey) or ``(n, size, size, 3)`` (RGB) for
    ``points`` ``(n, 5, 2)`` (or one face's ``(5, 2)``, giving ``(size, size[, 3])``). ``size`` 144 gives the
    training image, 128 its test centre crop. ``image``: uint8 ``(H, W)`` grey or ``(H, W, 3)`` RGB."""
    if size not in (ALIGNED, TEST_CROP):
        raise ValueError(f"size must be {ALIGNED} (the aligned image) or {TEST_CROP} (its centre crop), got {size}")
    points = np.asarray(points, dtype=np.float64)
    single = points.ndim == 2
    points = points[None] if single else points
    source = torch.from_numpy(np.array(image, dtype=np.uint8))
    if source.ndim == 2:
        source = source[:, :, None]
    source = source.permute(2, 0, 1).float()
    if colour and source.shape[0] == 1:
        source = source.expand(3, -1, -1)
    elif not colour and source.shape[0] == 3:
        # ITU-R 601-2 luma, as Pillow's convert("L") and so as the official grey images
        source = (source * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(0, keepdim=True)
    faces = [_warp(source, alignment_matrix(p)) for p in points]
    out = torch.stack(faces) if faces else source.new_zeros((0, source.shape[0], ALIGNED, ALIGNED))
    if size == TEST_CROP:
        out = centre_crop(out)
    out = out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = out[..., 0] if not colour else out
    return out[0] if single else out


def centre_crop(x: torch.Tensor, size: int = TEST_CROP) -> torch.Tensor:
    """The centre ``size x size`` of ``(..., H, W)`` (the official test crop of the 144 image)."""
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    return x[..., top : top + size, left : left + size]


def _warp(source: torch.Tensor, matrix: np.ndarray) -> torch.Tensor:
    """``source`` ``(C, H, W)`` float resampled (bilinear, black outside) into the 144 image through ``matrix``.
    Where the face shrinks by more than half, the image is first averaged over ``k x k`` blocks so that the
    bilinear samples do not alias."""
    scale = float(np.hypot(*matrix[:, 0]))
    k = int(1 / scale) if scale < 0.5 else 1
    if k > 1:
        source = F.avg_pool2d(source[None], k, k, ceil_mode=True)[0]
        # a pooled pixel j covers input pixels jk .. jk + k - 1, its centre at jk + (k - 1) / 2
        pooled = np.array([[k, 0, (k - 1) / 2], [0, k, (k - 1) / 2], [0, 0, 1]])
        matrix = matrix @ pooled
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    h, w = source.shape[1:]
    grid = np.stack(np.meshgrid(np.arange(ALIGNED), np.arange(ALIGNED)), -1).astype(np.float64)
    src = grid @ inverse[:, :2].T + inverse[:, 2]
    # grid_sample with align_corners=True maps -1 and 1 to the centres of the first and last pixels
    src = src / [max(w - 1, 1), max(h - 1, 1)] * 2 - 1
    grid_t = torch.from_numpy(src).float()[None]
    return F.grid_sample(source[None], grid_t, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
