"""Image classification data: the bundled digits, MNIST, CIFAR-10 and image folders.

Every source yields :class:`ImageSplits`: uint8 tensors ``(N, C, H, W)`` and int64 labels, a train and a
test split, and the class names. Pixels become floats in [0, 1] in :class:`ImageDataset`.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from lcnn.data.download import cache_dir, check_md5, download
from lcnn.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".pgm", ".ppm", ".bmp", ".tif", ".tiff"}

MNIST_URLS = [  # the canonical site first, then the mirrors torchvision uses
    "https://yann.lecun.com/exdb/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]
MNIST_FILES = {  # name: md5 of the official gzip files
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@dataclass
class ImageSplits:
    """Train and test images ``uint8 (N, C, H, W)`` with labels ``int64 (N,)`` and class names."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])


class ImageDataset(Dataset):
    """uint8 images ``(N, C, H, W)`` served as float32 in [0, 1] with their labels."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index].float().div_(255), self.labels[index]


class ImageFileDataset(Dataset):
    """Image files read on demand as float32 ``(C, H, W)`` in [0, 1] for a model that takes ``shape``
    (``resize``: each image resized to it; otherwise an image of another size is a :class:`DataError`)."""

    def __init__(self, paths: list[Path], shape: tuple[int, int, int], resize: bool = False) -> None:
        self.paths, self.shape, self.resize = [Path(p) for p in paths], tuple(shape), resize

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        path = self.paths[index]
        return image_tensor(open_image(path), self.shape, self.resize, str(path))


def image_tensor(image: Image.Image, shape: tuple[int, ...], resize: bool = False,
                 where: str = "image") -> torch.Tensor:  # fmt: skip
    """A Pillow image as the float32 ``(C, H, W)`` in [0, 1] of a model taking ``shape`` (``resize``: resized to
    it; otherwise another size is a :class:`DataError` naming ``where``)."""
    channels, height, width = shape
    if resize:
        image = image.resize((width, height), Image.BILINEAR)
    array = to_array(image, channels)
    if array.shape != tuple(shape):
        raise DataError(f"{where}: images are {'x'.join(map(str, array.shape))}, the model expects "
                        f"{'x'.join(map(str, shape))}")  # fmt: skip
    return torch.from_numpy(array).float().div_(255)


def load_images(name: str, data_dir: str | Path | None = None, image_size: int | None = None) -> ImageSplits:
    """Load the image dataset ``name``: ``digits``, ``mnist``, ``cifar10`` or ``folder:PATH``.

    ``mnist`` and ``cifar10`` are read from ``data_dir`` when given, else downloaded (with a checksum
    check) into the cache folder. ``image_size`` resizes folder images to a square of that side.
    """
    if name == "digits":
        return load_digits()
    if name == "mnist":
        return load_mnist(Path(data_dir) if data_dir else None)
    if name == "cifar10":
        return load_cifar10(Path(data_dir) if data_dir else None)
    if name.startswith("folder:"):
        return load_folder(Path(name.removeprefix("folder:")), image_size)
    if name == "folder" and data_dir:
        return load_folder(Path(data_dir), image_size)
    raise DataError(f"unknown image dataset {name!r}; expected digits, mnist, cifar10 or folder:PATH")


def load_digits() -> ImageSplits:
    """scikit-learn's handwritten digits (1,797 real 8x8 scans, UCI), upsampled to 28x28 like MNIST.

    The test split is a fixed stratified quarter (450 images), the same for every run.
    """
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_digits()
    pixels = (digits.images * (255 / 16)).round().astype(np.uint8)
    images = np.stack([np.asarray(Image.fromarray(p).resize((28, 28), Image.BILINEAR)) for p in pixels])
    train_x, test_x, train_y, test_y = train_test_split(
        images, digits.target, test_size=0.25, stratify=digits.target, random_state=0
    )
    return ImageSplits(
        torch.from_numpy(train_x).unsqueeze(1),
        torch.from_numpy(train_y).long(),
        torch.from_numpy(test_x).unsqueeze(1),
        torch.from_numpy(test_y).long(),
        [str(d) for d in range(10)],
    )


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST's format), gzip-compressed or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: cannot read IDX file ({err})") from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise DataError(f"{path}: not an IDX file of unsigned bytes (magic {data[:4].hex()}, expected 000008xx)")
    ndim = data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise DataError(f"{path}: an IDX header of {ndim} dimensions needs {offset} bytes, the file has {len(data)}")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(data) - offset != math.prod(shape):
        raise DataError(f"{path}: {len(data) - offset} bytes of data, expected {math.prod(shape)} for {shape}")
    try:
        return np.frombuffer(data, np.uint8, offset=offset).reshape(shape)
    except ValueError as err:  # an empty array with dimensions too big to describe
        raise DataError(f"{path}: the IDX shape {shape} cannot be an array ({err})") from None


def download_images(name: str, data_dir: str | Path | None = None) -> None:
    """Fetch ``mnist`` or ``cifar10`` into the cache folder (MD5-checked) unless ``data_dir`` holds them; other
    datasets are local. Idempotent: files already there with the right checksum are kept."""
    if data_dir is not None:
        return
    if name == "mnist":
        for file, md5 in MNIST_FILES.items():
            download([url + file for url in MNIST_URLS], cache_dir() / "mnist" / file, md5)
    elif name == "cifar10":
        archive = download([CIFAR10_URL], cache_dir() / "cifar-10-python.tar.gz", CIFAR10_MD5)
        _extract_cifar(archive)


def _extract_cifar(archive: Path) -> None:
    """Unpack ``cifar-10-batches-py/`` beside the archive, whole or not at all: into a temporary folder first,
    then renamed, so a killed extraction leaves nothing that looks done and two at once do not mix."""
    target = archive.parent / "cifar-10-batches-py"
    if target.is_dir():
        return
    with tempfile.TemporaryDirectory(dir=archive.parent, prefix=".cifar-") as tmp:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        try:
            os.rename(Path(tmp) / "cifar-10-batches-py", target)
        except OSError:  # another process put it there first
            if not target.is_dir():
                raise


def load_mnist(data_dir: Path | None = None) -> ImageSplits:
    """MNIST from the four IDX files in ``data_dir`` (``.gz`` or not), or downloaded into the cache."""
    if data_dir is None:
        download_images("mnist")
        data_dir = cache_dir() / "mnist"
    arrays = {}
    for name in MNIST_FILES:
        stem = name.removesuffix(".gz")
        path = next((p for p in (data_dir / name, data_dir / stem) if p.exists()), None)
        if path is None:
            raise DataError(f"{data_dir}: missing MNIST file {name} (or {stem})")
        arrays[stem.split("-")[0] + "-" + stem.split("-")[1]] = read_idx(path)
    for split in ("train", "t10k"):
        images, labels = arrays[f"{split}-images"], arrays[f"{split}-labels"]
        if images.ndim != 3 or labels.shape != images.shape[:1]:
            raise DataError(f"{data_dir}: {split} images {images.shape} and labels {labels.shape} do not match")
    return ImageSplits(
        torch.from_numpy(arrays["train-images"].copy()).unsqueeze(1),
        torch.from_numpy(arrays["train-labels"].astype(np.int64)),
        torch.from_numpy(arrays["t10k-images"].copy()).unsqueeze(1),
        torch.from_numpy(arrays["t10k-labels"].astype(np.int64)),
        [str(d) for d in range(10)],
    )


def load_cifar10(data_dir: Path | None = None) -> ImageSplits:
    """CIFAR-10 from its python pickle batches (``cifar-10-batches-py``), in ``data_dir`` or downloaded."""
    if data_dir is None:
        download_images("cifar10")
        data_dir = cache_dir()
    elif (data_dir / "cifar-10-python.tar.gz").exists() and not (data_dir / "cifar-10-batches-py").is_dir():
        check_md5(data_dir / "cifar-10-python.tar.gz", CIFAR10_MD5)
        _extract_cifar(data_dir / "cifar-10-python.tar.gz")
    folder = data_dir / "cifar-10-batches-py" if (data_dir / "cifar-10-batches-py").is_dir() else data_dir
    train = [_read_cifar_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
    test_x, test_y = _read_cifar_batch(folder / "test_batch")
    return ImageSplits(
        torch.cat([x for x, _ in train]),
        torch.cat([y for _, y in train]),
        test_x,
        test_y,
        list(CIFAR10_CLASSES),
    )


class _DataUnpickler(pickle.Unpickler):
    """Unpickles builtin containers, bytes, str, numbers and NumPy arrays only: any other global a pickle names
    (the way a crafted file runs code) is refused before it is looked up."""

    _ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # protocol 5 arrays
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 spell bytes
        ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray"),
    }  # fmt: skip

    def find_class(self, module: str, name: str):  # type: ignore[override]
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: data files may hold arrays only")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    if not path.exists():
        raise DataError(f"{path}: missing CIFAR-10 batch (expected the python version's data_batch_1..5, test_batch)")
    try:
        with open(path, "rb") as f:
            batch = _DataUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
        if len(labels) != len(data):
            raise ValueError(f"{len(data)} images but {len(labels)} labels")
    except Exception as err:  # any malformed pickle (IndexError, MemoryError, ...) is a bad file, nothing more
        raise DataError(f"{path}: not a CIFAR-10 python batch ({type(err).__name__}: {err})") from None
    return torch.from_numpy(data.copy()), torch.from_numpy(labels)


def load_folder(root: Path, image_size: int | None = None) -> ImageSplits:
    """An image folder with one subfolder per class, under ``train/`` and ``test/`` where they exist.

    Without ``train/`` and ``test/``, a fixed stratified fifth of the images is held out for testing.
    Grey images stay one channel unless some image of the set is colour.
    """
    if not root.is_dir():
        raise DataError(f"{root}: no such data folder (expected one subfolder per class)")
    if (root / "train").is_dir() and (root / "test").is_dir():
        classes = _class_names(root / "train")
        train = _list_images(root / "train", classes)
        test = _list_images(root / "test", classes)
    else:
        from sklearn.model_selection import train_test_split

        classes = _class_names(root)
        items = _list_images(root, classes)
        train, test = train_test_split(items, test_size=0.2, stratify=[y for _, y in items], random_state=0)
    channels = 1 if all(_is_grey(p) for p, _ in train + test) else 3
    size = (image_size, image_size) if image_size else None
    train_x, train_y = _read_images(train, channels, size, resize=size is not None)
    test_x, test_y = _read_images(test, channels, tuple(train_x.shape[2:][::-1]), resize=size is not None)
    return ImageSplits(train_x, train_y, test_x, test_y, classes)


def _class_names(folder: Path) -> list[str]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{folder}: no class subfolders (expected one subfolder of images per class)")
    return classes


def _list_images(folder: Path, classes: list[str]) -> list[tuple[Path, int]]:
    items = [
        (path, label)
        for label, name in enumerate(classes)
        for path in sorted((folder / name).glob("*"))
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not items:
        raise DataError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in its class subfolders")
    return items


def _is_grey(path: Path) -> bool:
    try:
        with Image.open(path) as image:  # the header only: the pixels are read once, later
            return image.mode in ("1", "L", "I", "I;16", "F")
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError):
        open_image(path)  # says why, naming the file
        raise


def open_image(path: Path) -> Image.Image:
    """Open an image with Pillow, raising :class:`DataError` naming the file when it cannot be read."""
    try:
        image = Image.open(path)
        image.load()
    except Image.DecompressionBombError as err:
        raise DataError(f"{path}: cannot read image: it claims more pixels than an image this tool reads ({err})") \
            from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: cannot read image ({err})") from None
    return image


def to_array(image: Image.Image, channels: int) -> np.ndarray:
    """A Pillow image as uint8 ``(C, H, W)`` with ``channels`` 1 (grey) or 3 (RGB)."""
    array = np.array(image.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def _read_images(
    items: list[tuple[Path, int]], channels: int, size: tuple[int, int] | None, resize: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read ``items`` as uint8 ``(N, C, H, W)``: resized to ``size`` (width, height), or all required to
    have ``size`` (by default the first image's)."""
    arrays = []
    for path, _ in items:
        image = open_image(path)
        if size is None:
            size = image.size
        if resize:
            image = image.resize(size, Image.BILINEAR)
        if image.size != size:
            raise DataError(
                f"{path}: image is {image.size[0]}x{image.size[1]}, expected {size[0]}x{size[1]} like the "
                "others (give an image size to resize)"
            )
        arrays.append(to_array(image, channels))
    labels = torch.tensor([label for _, label in items], dtype=torch.long)
    return torch.from_numpy(np.stack(arrays)), labels
