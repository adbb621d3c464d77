import gzip
import hashlib
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lcnn.data import images
from lcnn.data.augment import BatchAugment
from lcnn.data.images import load_cifar10, load_folder, load_images, load_mnist, read_idx
from lcnn.errors import DataError


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_mnist(folder, n_train=20, n_test=10, compress=True):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    folder.mkdir(parents=True, exist_ok=True)
    md5 = {}
    for name, array in arrays.items():
        data = _idx_bytes(array)
        if compress:
            data = gzip.compress(data)
            name += ".gz"
        (folder / name).write_bytes(data)
        md5[name] = hashlib.md5(data).hexdigest()
    return arrays, md5


def test_read_idx_roundtrip_and_errors(tmp_path):
    arrays, _ = _write_mnist(tmp_path, compress=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "train-images-idx3-ubyte"), arrays["train-images-idx3-ubyte"])
    bad = tmp_path / "bad-idx"
    bad.write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(DataError, match="bad-idx: not an IDX file"):
        read_idx(bad)
    cut = tmp_path / "cut-idx"
    cut.write_bytes((tmp_path / "train-images-idx3-ubyte").read_bytes()[:-5])
    with pytest.raises(DataError, match="cut-idx: .*bytes of data, expected 15680"):
        read_idx(cut)


def test_mnist_from_folder(tmp_path):
    arrays, _ = _write_mnist(tmp_path)
    splits = load_mnist(tmp_path)
    assert splits.train_images.shape == (20, 1, 28, 28) and splits.test_images.shape == (10, 1, 28, 28)
    np.testing.assert_array_equal(splits.test_labels.numpy(), arrays["t10k-labels-idx1-ubyte"])
    with pytest.raises(DataError, match="missing MNIST file train-images"):
        load_mnist(tmp_path / "empty")


def test_mnist_download_checks_checksums(tmp_path, monkeypatch):
    source = tmp_path / "server"
    _, md5 = _write_mnist(source)
    monkeypatch.setenv("LCNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(images, "MNIST_URLS", ["file:///nonexistent/", source.as_uri() + "/"])  # a dead mirror first
    monkeypatch.setattr(images, "MNIST_FILES", md5)
    assert load_mnist().train_images.shape == (20, 1, 28, 28)
    assert sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir()) == sorted(md5)

    # A download whose checksum differs is refused and leaves nothing behind.
    wrong = dict(md5, **{"t10k-labels-idx1-ubyte.gz": "0" * 32})
    monkeypatch.setattr(images, "MNIST_FILES", wrong)
    monkeypatch.setenv("LCNN_CACHE", str(tmp_path / "cache2"))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: downloaded file has md5 .*expected 0{32}"):
        load_mnist()
    leftovers = [p.name for p in (tmp_path / "cache2" / "mnist").iterdir()]
    assert "t10k-labels-idx1-ubyte.gz" not in leftovers and not any(n.endswith(".tmp") for n in leftovers)

    # A cached file that was corrupted later is refused too.
    monkeypatch.setattr(images, "MNIST_FILES", md5)
    monkeypatch.setenv("LCNN_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / "mnist" / "train-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: checksum mismatch"):
        load_mnist()


def _write_cifar(folder):
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, 4))}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)


def test_cifar10_batches_folder_and_archive(tmp_path, monkeypatch):
    _write_cifar(tmp_path / "plain" / "cifar-10-batches-py")
    splits = load_cifar10(tmp_path / "plain")
    assert splits.train_images.shape == (20, 3, 32, 32) and splits.test_images.shape == (4, 3, 32, 32)
    assert splits.classes[0] == "airplane"

    archive_dir = tmp_path / "archived"
    archive_dir.mkdir()
    archive = archive_dir / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "plain" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setattr(images, "CIFAR10_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    assert load_cifar10(archive_dir).train_images.shape == (20, 3, 32, 32)

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "test_batch").write_bytes(b"not a pickle")
    for i in range(1, 6):
        (bad / f"data_batch_{i}").write_bytes(b"")
    with pytest.raises(DataError, match="data_batch_1: not a CIFAR-10 python batch"):
        load_cifar10(bad)


def _write_folder(root, size=(20, 18), mode="L", suffixes=(".png", ".jpg", ".pgm")):
    rng = np.random.default_rng(2)
    for c, name in enumerate(["cat", "dog"]):
        (root / name).mkdir(parents=True)
        for i in range(5):
            shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
            image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8) // 2 + 60 * c, mode)
            suffix = suffixes[i % len(suffixes)] if mode == "L" else ".png"
            image.save(root / name / f"{i}{suffix}")


class _Payload:
    """A pickle that would run ``os.system`` when loaded by an unrestricted unpickler."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10_batches_never_run_code(tmp_path, protocol):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar(folder)
    for name in ("data_batch_1", "test_batch"):  # a real batch, written with this protocol, still loads
        with open(folder / name, "rb") as f:
            batch = pickle.load(f)
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=protocol)
    assert load_cifar10(tmp_path).train_images.shape == (20, 3, 32, 32)
    marker = tmp_path / "ran"
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"data": _Payload(marker), b"labels": [0]}, f, protocol=protocol)
    with pytest.raises(DataError, match=r"data_batch_1: not a CIFAR-10 python batch .*refused to load posix.system"):
        load_cifar10(tmp_path)
    assert not marker.exists()


def test_image_folder_with_and_without_train_test(tmp_path):
    _write_folder(tmp_path / "flat")
    splits = load_folder(tmp_path / "flat")
    assert splits.classes == ["cat", "dog"]
    assert splits.input_shape == (1, 18, 20)
    assert len(splits.train_labels) == 8 and len(splits.test_labels) == 2

    _write_folder(tmp_path / "split" / "train", mode="RGB")
    _write_folder(tmp_path / "split" / "test", mode="RGB")
    splits = load_images(f"folder:{tmp_path / 'split'}")
    assert splits.input_shape == (3, 18, 20) and len(splits.test_labels) == 10


def test_image_folder_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="no such data folder"):
        load_folder(tmp_path / "missing")
    _write_folder(tmp_path / "odd")
    Image.new("L", (21, 18)).save(tmp_path / "odd" / "dog" / "9.png")
    with pytest.raises(DataError, match=r"dog/9.png: image is 21x18, expected 20x18"):
        load_folder(tmp_path / "odd")
    assert load_folder(tmp_path / "odd", image_size=16).input_shape == (1, 16, 16)
    (tmp_path / "odd" / "cat" / "broken.png").write_bytes(b"\x89PNG but not really")
    with pytest.raises(DataError, match=r"cat/broken.png: cannot read image"):
        load_folder(tmp_path / "odd", image_size=16)


def test_digits_are_bundled_and_fixed():
    splits = load_images("digits")
    assert splits.input_shape == (1, 28, 28)
    assert len(splits.train_labels) == 1347 and len(splits.test_labels) == 450
    assert torch.equal(load_images("digits").test_labels, splits.test_labels)


def test_real_mnist_5k(shared_data):
    splits = load_mnist(shared_data / "mnist-5k")
    assert splits.train_images.shape == (5000, 1, 28, 28) and splits.test_images.shape == (10000, 1, 28, 28)
    assert torch.bincount(splits.train_labels).tolist() == [500] * 10


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown image dataset 'imagenet'"):
        load_images("imagenet")


def test_batch_augment():
    x = torch.rand(8, 1, 12, 12)
    augment = BatchAugment(shift=2, hflip=True, rotate=10, scale=0.1, cutout=4)
    assert torch.equal(augment.eval()(x), x)
    out = augment.train()(x)
    assert out.shape == x.shape and not torch.equal(out, x)

    # Whole-pixel shifts move pixels exactly.
    torch.manual_seed(0)
    shifted = BatchAugment(shift=3).train()(x)
    for i in range(len(x)):
        found = any(
            torch.allclose(torch.roll(x[i], (dy, dx), (1, 2))[:, 3:-3, 3:-3], shifted[i, :, 3:-3, 3:-3], atol=1e-5)
            for dy in range(-3, 4)
            for dx in range(-3, 4)
        )
        assert found
    flipped = BatchAugment(hflip=True).train()(x)
    for i in range(len(x)):
        assert torch.allclose(flipped[i], x[i], atol=1e-5) or torch.allclose(flipped[i], x[i].flip(-1), atol=1e-5)


def test_one_colour_image_makes_the_set_colour(tmp_path: Path) -> None:
    """Classes are listed in order: the first hundred images being grey says nothing of the last ones."""
    for label, mode, count in (("a", "L", 120), ("b", "RGB", 3)):
        for split in ("train", "test"):
            (tmp_path / split / label).mkdir(parents=True)
            colour = 100 if mode == "L" else (200, 10, 10)
            for i in range(count):
                Image.new(mode, (8, 8), colour).save(tmp_path / split / label / f"{i}.png")
    assert load_images(f"folder:{tmp_path}").train_images.shape[1] == 3


def test_cifar_archive_is_unpacked_whole_or_not_at_all(tmp_path: Path) -> None:
    import io

    from lcnn.data.images import _extract_cifar

    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("data_batch_1", "test_batch"):
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = 4
            tar.addfile(info, io.BytesIO(b"data"))
    _extract_cifar(archive)
    assert sorted(p.name for p in (tmp_path / "cifar-10-batches-py").iterdir()) == ["data_batch_1", "test_batch"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]
    _extract_cifar(archive)  # already there: kept
