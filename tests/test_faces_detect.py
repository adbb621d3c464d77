"""lcnn.faces: MTCNN detection against facenet-pytorch's outputs, the official LightCNN alignment's geometry,
and --align through FaceTransform."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from lcnn.data.faces import FaceTransform
from lcnn.errors import DataError
from lcnn.faces.align import EYE_TO_MOUTH, EYE_Y, align_faces, alignment_matrix
from lcnn.faces.mtcnn import MTCNN, Faces, nms

ORL = Path(__file__).resolve().parents[2] / "shared" / "data" / "orl-faces"
REFERENCE = Path(__file__).parent / "data" / "mtcnn_reference.json"
needs_orl = pytest.mark.skipif(not ORL.is_dir(), reason=f"{ORL} absent")


@pytest.fixture(scope="module")
def detector() -> MTCNN:
    return MTCNN()


def collage() -> np.ndarray:
    """Four ORL faces at several sizes on a grey canvas (the image the reference outputs were made on)."""
    canvas = np.full((300, 420, 3), 128, np.uint8)
    for name, x, y, s in [("s1/1.pgm", 10, 10, 1.0), ("s7/3.pgm", 120, 30, 1.5), ("s22/5.pgm", 280, 150, 1.2),
                          ("s35/9.pgm", 20, 170, 0.9)]:  # fmt: skip
        im = Image.open(ORL / name).convert("RGB").resize((round(92 * s), round(112 * s)), Image.BILINEAR)
        a = np.array(im)
        canvas[y : y + a.shape[0], x : x + a.shape[1]] = a
    return canvas


@needs_orl
def test_detection_matches_facenet_pytorch(detector: MTCNN) -> None:
    """Boxes, scores and points of facenet-pytorch 2.6.0's detect_face on the same image and weights."""
    ref = json.loads(REFERENCE.read_text())
    faces = detector.detect(collage())[0]
    assert len(faces) == len(ref["scores"]) == 4
    np.testing.assert_allclose(faces.boxes, ref["boxes"], atol=0.01)
    np.testing.assert_allclose(faces.points, ref["points"], atol=0.01)
    np.testing.assert_allclose(faces.scores, ref["scores"], atol=1e-4)


@needs_orl
def test_batches_and_sizes_give_the_same_faces(detector: MTCNN) -> None:
    a = np.array(Image.open(ORL / "s3/2.pgm"))  # grey (H, W)
    padded = np.pad(a, 30)
    single = detector.detect(padded)[0]
    batch = detector.detect([padded, np.zeros_like(padded), collage(), padded])
    assert [len(f) for f in batch] == [1, 0, 4, 1]
    for faces in (batch[0], batch[3]):
        np.testing.assert_allclose(faces.points, single.points, atol=1e-3)
    left, right, nose, mouth_l, mouth_r = single.points[0]
    assert left[0] < right[0] and max(left[1], right[1]) < nose[1] < min(mouth_l[1], mouth_r[1])
    tensor = detector.detect(torch.from_numpy(np.repeat(padded[None, None], 3, 1)).float())[0]
    np.testing.assert_allclose(tensor.points, single.points, atol=1e-3)
    # a batch of one size: each image's faces are its own, whatever its batch mates (s10/5 once moved 3 px:
    # its two best boxes tie on a saturated score, and the sort that broke the tie saw the whole batch)
    photos = [np.array(Image.open(ORL / person / f"{i}.pgm")) for person in ("s10", "s11") for i in range(1, 9)]
    for alone, together in zip((detector.detect(a)[0] for a in photos), detector.detect(photos)):
        np.testing.assert_allclose(together.boxes, alone.boxes, atol=1e-3)
        np.testing.assert_allclose(together.points, alone.points, atol=1e-3)


def test_no_face_is_a_clear_empty_result(detector: MTCNN) -> None:
    rng = np.random.default_rng(0)
    for image in (np.full((200, 160, 3), 90, np.uint8), rng.integers(0, 256, (120, 100, 3), dtype=np.uint8)):
        faces = detector.detect(image)[0]
        assert isinstance(faces, Faces) and len(faces) == 0
        assert faces.boxes.shape == (0, 4) and faces.points.shape == (0, 5, 2)
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(np.zeros((50, 50, 3), np.float32))


def test_nms() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    assert nms(boxes, scores, 0.5).tolist() == [3, 2]
    assert nms(boxes, scores, 0.5, groups=torch.tensor([0, 0, 0, 1])).tolist() == [3, 0, 2]
    tied = torch.tensor([0.9, 0.9, 0.9, 0.9])  # ties go to the first box, in every group
    assert nms(boxes, tied, 0.5).tolist() == [0, 2]
    assert nms(boxes, tied, 0.5, groups=torch.tensor([1, 0, 1, 0])).tolist() == [0, 1, 2]
    inner = torch.tensor([[0, 0, 10, 10], [2, 2, 6, 6.0]])  # IoU 0.16, over the smaller box 1
    assert nms(inner, torch.tensor([1.0, 0.5]), 0.7).tolist() == [0, 1]
    assert nms(inner, torch.tensor([1.0, 0.5]), 0.7, mode="min").tolist() == [0]


def _blobs(shape: tuple[int, int], points: np.ndarray, sigma: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.zeros(shape)
    for x, y in points:
        image += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return (255 * image.clip(0, 1)).round().astype(np.uint8)


# A frontal face in the official aligned image: eyes level at y = 48 and 36 px apart, the mouth 48 px below.
CANON = np.array([[53.5, 48], [89.5, 48], [71.5, 75], [56.5, 96], [86.5, 96]])


@pytest.mark.parametrize("scale, angle", [(0.6, 0.0), (1.0, 0.3), (2.2, -0.5), (3.7, 0.15)])
def test_alignment_puts_the_landmarks_where_the_official_crop_has_them(scale: float, angle: float) -> None:
    """Synthetic faces (a blob per landmark) rotated, scaled and moved: after alignment the blobs' centres
    are on the spec's positions to 0.5 px, in the 144 image and in its 128 centre crop (eyes at y = 40)."""
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = (CANON - CANON[:2].mean(0)) @ rotation.T + [300.3, 260.7]
    image = _blobs((520, 600), points, sigma=2.0 * scale)
    for size, shift in ((144, 0), (128, 8)):
        out = align_faces(image, points, size=size).astype(float)
        labels, n = ndimage.label(out > 60)
        assert n == 5
        found = np.array(ndimage.center_of_mass(out, labels, range(1, 6)))[:, ::-1]  # (x, y)
        expected = CANON - shift
        for point in expected:
            assert np.min(np.hypot(*(found - point).T)) < 0.5, (found, point)
    eyes, mouth = points[:2].mean(0), points[3:].mean(0)
    m = alignment_matrix(points)
    assert np.allclose(m[:, :2] @ eyes + m[:, 2], [71.5, EYE_Y])
    assert np.isclose(np.hypot(*(m[:, :2] @ (mouth - eyes))), EYE_TO_MOUTH)


def test_alignment_colour_keeps_rgb_and_grey_is_luma() -> None:
    image = np.zeros((200, 200, 3), np.uint8)
    image[..., 0] = 200  # red
    points = CANON - [71.5, 48] + [100, 80]
    rgb = align_faces(image, points, colour=True)
    grey = align_faces(image, points)
    assert rgb.shape == (144, 144, 3) and grey.shape == (144, 144)
    assert tuple(rgb[72, 72]) == (200, 0, 0) and grey[72, 72] == round(0.299 * 200)
    assert align_faces(image, np.stack([points, points])).shape == (2, 144, 144)
    with pytest.raises(ValueError, match="too close"):
        alignment_matrix(np.zeros((5, 2)))


@needs_orl
def test_face_transform_aligns_photos_and_names_the_one_without_a_face(tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    Image.fromarray(np.pad(np.array(Image.open(ORL / "s5/1.pgm")), ((40, 60), (80, 30)))).save(photo)
    x = FaceTransform(align=True).load(photo)
    assert x.shape == (1, 128, 128)
    blank = tmp_path / "blank.png"
    Image.new("L", (150, 150), 100).save(blank)
    with pytest.raises(DataError, match="blank.png: no face found"):
        FaceTransform(align=True).load(blank)
    assert FaceTransform(channels=3, align=True).load(photo).shape == (3, 128, 128)


def test_weights_carry_their_licence() -> None:
    folder = resources.files("lcnn.faces") / "weights"
    assert (folder / "mtcnn.safetensors").is_file()
    licence = (folder / "LICENSE").read_text()
    assert "MIT License" in licence and "Timothy Esler" in licence and "facenet-pytorch" in licence
