"""MTCNN face detection with 5 landmarks (Zhang et al., IEEE SPL 2016), in plain torch.

Three small networks in a cascade: P-Net slides over an image pyramid and proposes boxes, R-Net rescores and
refines 24x24 crops of them, O-Net 48x48 crops, giving the final box, score and five points (left eye, right
eye, nose, left and right mouth corner, left/right as seen in the image). Between stages: non-maximum
suppression, box regression and squaring. The weights are the published ones (``weights/``, MIT, see its
LICENSE); they were trained on RGB scaled to ``(x - 127.5) / 128``, and their dense layers read features in
the original Caffe order (width before height), hence the permute before flattening.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MTCNN", "Faces", "nms"]

STRIDE, CELL = 2, 12  # P-Net's output grid: one 12x12 window every 2 pixels


@dataclass
class Faces:
    """The faces found in one image: ``boxes`` float32 ``(n, 4)`` (x1, y1, x2, y2, pixels), ``scores`` ``(n,)``,
    ``points`` ``(n, 5, 2)`` (x, y of left eye, right eye, nose, left and right mouth corner). ``n == 0`` when the
    image has no face; the faces are ordered by score, best first."""

    boxes: np.ndarray
    scores: np.ndarray
    points: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def none(cls) -> Faces:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))

    def largest(self) -> int:
        """The index of the face with the largest box (the subject of a portrait)."""
        area = (self.boxes[:, 2] - self.boxes[:, 0]) * (self.boxes[:, 3] - self.boxes[:, 1])
        return int(np.argmax(area))


class PNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), self.conv4_1(x).softmax(1)[:, 1]


class RNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).flatten(1)
        x = self.prelu4(self.dense4(x))
        return self.dense5_2(x), self.dense5_1(x).softmax(1)[:, 1]


class ONet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).flatten(1)
        x = self.prelu5(self.dense5(x))
        return self.dense6_2(x), self.dense6_3(x), self.dense6_1(x).softmax(1)[:, 1]


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float, groups: torch.Tensor | None = None,
        mode: str = "union") -> torch.Tensor:
    """Greedy non-maximum suppression: the indices of the boxes kept, best score first. A box is dropped when
    its overlap with a kept box of the same group exceeds ``threshold``; overlap is intersection over union
    (``mode="union"``) or over the smaller box (``"min"``)."""
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    area = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    # Stable, and groups compared rather than boxes shifted apart: an image's faces must not depend on the other
    # images of its batch (saturated scores tie, and shifted coordinates round differently).
    order = scores.argsort(descending=True, stable=True)
    keep = []
    while len(order):
        best, order = order[0], order[1:]
        keep.append(best)
        lo = torch.maximum(boxes[best, :2], boxes[order, :2])
        hi = torch.minimum(boxes[best, 2:], boxes[order, 2:])
        inter = (hi - lo).clamp(min=0).prod(1)
        base = torch.minimum(area[best], area[order]) if mode == "min" else area[best] + area[order] - inter
        apart = groups[order] != groups[best] if groups is not None else False
        order = order[(inter <= threshold * base) | apart]
    return torch.stack(keep)


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Each box grown to a square of its longer side around its centre."""
    wh = boxes[:, 2:4] - boxes[:, :2]
    side = wh.max(1, keepdim=True).values
    top_left = boxes[:, :2] + wh / 2 - side / 2
    return torch.cat([top_left, top_left + side, boxes[:, 4:]], 1)


def _regress(boxes: torch.Tensor, offsets: torch.Tensor, plus: float = 1.0) -> torch.Tensor:
    """Boxes moved by the network's offsets (fractions of the box's side)."""
    wh = (boxes[:, 2:4] - boxes[:, :2] + plus).repeat(1, 2)
    return torch.cat([boxes[:, :4] + offsets * wh, boxes[:, 4:]], 1)


class MTCNN(nn.Module):
    """The detector. ``MTCNN()`` loads the packaged weights; ``detect(images)`` finds the faces.

    ``min_size``: the smallest face side searched, in pixels; ``thresholds``: the three stages' score cuts;
    ``factor``: the pyramid's scale step.
    """

    def __init__(self, min_size: float = 20.0, thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
                 factor: float = 0.709, pretrained: bool = True) -> None:
        super().__init__()
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        self.min_size, self.thresholds, self.factor = float(min_size), tuple(thresholds), float(factor)
        if pretrained:
            from safetensors.torch import load_file

            path = resources.files("lcnn.faces") / "weights" / "mtcnn.safetensors"
            with resources.as_file(path) as file:
                self.load_state_dict(load_file(str(file)))
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.pnet.conv1.weight.device

    @torch.inference_mode()
    def detect(self, images: list[np.ndarray] | np.ndarray | torch.Tensor) -> list[Faces]:
        """The faces of each image: uint8 RGB ``(H, W, 3)`` arrays (grey ``(H, W)`` is repeated), a list of them
        (of any sizes: images of one size run as one batch), or a float tensor ``(N, 3, H, W)`` in [0, 255]."""
        if isinstance(images, torch.Tensor):
            return self._detect(images.to(self.device, torch.float32))
        if isinstance(images, np.ndarray) and (images.ndim == 2 or images.ndim == 3 and images.shape[-1] in (1, 3)):
            images = [images]  # one image, not a batch
        arrays = [_rgb(np.asarray(a)) for a in images]
        out: list[Faces | None] = [None] * len(arrays)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, a in enumerate(arrays):
            by_size.setdefault(a.shape[:2], []).append(i)
        for indices in by_size.values():
            batch = torch.from_numpy(np.stack([arrays[i] for i in indices])).to(self.device)
            for i, faces in zip(indices, self._detect(batch.permute(0, 3, 1, 2).float())):
                out[i] = faces
        return out  # type: ignore[return-value]

    def _detect(self, imgs: torch.Tensor) -> list[Faces]:
        n, _, h, w = imgs.shape
        boxes, image = self._propose(imgs)
        boxes, image = self._refine(imgs, boxes, image)
        boxes, image, points = self._output(imgs, boxes, image)
        result = []
        for i in range(n):
            mine = (image == i).nonzero().flatten()
            if len(mine) == 0:
                result.append(Faces.none())
                continue
            b, p = boxes[mine].cpu().numpy(), points[mine].cpu().numpy()
            order = np.argsort(-b[:, 4], kind="stable")
            result.append(Faces(b[order, :4].astype(np.float32), b[order, 4].astype(np.float32),
                                p[order].astype(np.float32)))
        return result

    def _scales(self, h: int, w: int) -> list[float]:
        scale, side, scales = 12.0 / self.min_size, min(h, w) * 12.0 / self.min_size, []
        while side >= 12:
            scales.append(scale)
            scale, side = scale * self.factor, side * self.factor
        return scales

    def _propose(self, imgs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """P-Net over the pyramid: candidate boxes ``(k, 9)`` (x1, y1, x2, y2, score, 4 offsets) and their image."""
        h, w = imgs.shape[2:]
        all_boxes, all_images = [], []
        for scale in self._scales(h, w):
            scaled = F.interpolate(imgs, size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
            offsets, probs = self.pnet(_normalise(scaled))
            where = (probs >= self.thresholds[0]).nonzero()  # (image, row, col)
            xy = where[:, [2, 1]].float()
            top_left = ((STRIDE * xy + 1) / scale).floor()
            bottom_right = ((STRIDE * xy + CELL) / scale).floor()
            score = probs[where[:, 0], where[:, 1], where[:, 2]]
            offset = offsets.permute(0, 2, 3, 1)[where[:, 0], where[:, 1], where[:, 2]]
            boxes = torch.cat([top_left, bottom_right, score[:, None], offset], 1)
            keep = nms(boxes[:, :4], boxes[:, 4], 0.5, where[:, 0])
            all_boxes.append(boxes[keep])
            all_images.append(where[keep, 0])
        if not all_boxes:
            return imgs.new_zeros((0, 9)), torch.zeros(0, dtype=torch.long, device=imgs.device)
        boxes, image = torch.cat(all_boxes), torch.cat(all_images)
        keep = nms(boxes[:, :4], boxes[:, 4], 0.7, image)
        boxes, image = boxes[keep], image[keep]
        boxes = _regress(boxes[:, :5], boxes[:, 5:], plus=0.0)
        return _square(boxes), image

    def _refine(self, imgs: torch.Tensor, boxes: torch.Tensor, image: torch.Tensor):
        if len(boxes) == 0:
            return boxes, image
        offsets, score = self.rnet(_crops(imgs, boxes, image, 24))
        keep = score > self.thresholds[1]
        boxes = torch.cat([boxes[keep, :4], score[keep, None]], 1)
        image, offsets = image[keep], offsets[keep]
        keep = nms(boxes[:, :4], boxes[:, 4], 0.7, image)
        return _square(_regress(boxes[keep], offsets[keep])), image[keep]

    def _output(self, imgs: torch.Tensor, boxes: torch.Tensor, image: torch.Tensor):
        if len(boxes) == 0:
            return boxes, image, boxes.new_zeros((0, 5, 2))
        offsets, marks, score = self.onet(_crops(imgs, boxes, image, 48))
        keep = score > self.thresholds[2]
        boxes = torch.cat([boxes[keep, :4], score[keep, None]], 1)
        image, offsets, marks = image[keep], offsets[keep], marks[keep]
        wh = boxes[:, 2:4] - boxes[:, :2] + 1
        # the points are fractions of the box, counted from its 1-based corner
        points = torch.stack([marks[:, :5], marks[:, 5:]], 2) * wh[:, None] + boxes[:, None, :2] - 1
        boxes = _regress(boxes, offsets)
        keep = nms(boxes[:, :4], boxes[:, 4], 0.7, image, mode="min")
        return boxes[keep], image[keep], points[keep]


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - 127.5) * 0.0078125


def _crops(imgs: torch.Tensor, boxes: torch.Tensor, image: torch.Tensor, size: int) -> torch.Tensor:
    """Each box cut from its image (clipped to the image, in 1-based whole pixels as the weights were trained)
    and resized to ``size x size`` by area averaging."""
    h, w = imgs.shape[2:]
    corners = boxes[:, :4].trunc().long().cpu().tolist()
    crops = []
    for (x1, y1, x2, y2), i in zip(corners, image.cpu().tolist()):
        x1, y1, x2, y2 = max(x1, 1), max(y1, 1), min(x2, w), min(y2, h)
        patch = imgs[i : i + 1, :, y1 - 1 : max(y2, y1), x1 - 1 : max(x2, x1)]
        crops.append(F.interpolate(patch, size=(size, size), mode="area"))
    return _normalise(torch.cat(crops))


def _rgb(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8:
        raise ValueError(f"images must be uint8 arrays, got {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3):
        raise ValueError(f"images must be (H, W), (H, W, 1) or (H, W, 3), got {array.shape}")
    return np.ascontiguousarray(np.repeat(array, 3, 2) if array.shape[2] == 1 else array)
