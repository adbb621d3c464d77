"""Downloads with a progress bar and a checksum check, into a cache folder."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

from tqdm import tqdm

from lcnn.errors import DataError
from lcnn.io import atomic_path


def cache_dir() -> Path:
    """Where datasets are downloaded: ``$LCNN_CACHE``, else ``~/.cache/lcnn``."""
    return Path(os.environ.get("LCNN_CACHE", Path.home() / ".cache" / "lcnn"))


def file_digest(path: str | os.PathLike, algorithm: str = "md5") -> str:
    """The hex digest of a file (``hashlib`` algorithm name), read a MiB at a time."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_md5(path: str | os.PathLike) -> str:
    return file_digest(path, "md5")


def check_md5(path: Path, md5: str) -> None:
    """Raise :class:`DataError` naming ``path`` unless its MD5 is ``md5``."""
    actual = file_md5(path)
    if actual != md5:
        raise DataError(f"{path}: checksum mismatch (md5 {actual}, expected {md5}); delete it and download again")


def download(urls: list[str], dest: Path, md5: str) -> Path:
    """Fetch ``dest`` from the first of ``urls`` that answers, unless a copy with the right MD5 is there.

    The file is written to a temporary name and renamed only once its checksum is right, so an
    interrupted or corrupted download never leaves a file that looks complete.
    """
    if dest.exists():
        check_md5(dest, md5)
        return dest
    errors = []
    for url in urls:
        try:
            with atomic_path(dest) as tmp:
                _fetch(url, tmp)
                actual = file_md5(tmp)
                if actual != md5:
                    raise DataError(f"{url}: downloaded file has md5 {actual}, expected {md5}")
            return dest
        except DataError:
            raise
        except OSError as err:  # network errors: try the next mirror
            errors.append(f"{url}: {err}")
    raise DataError(f"could not download {dest.name}: " + "; ".join(errors))


def _fetch(url: str, path: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=Path(url).name, leave=False) as bar:
            for block in iter(lambda: response.read(1 << 16), b""):
                out.write(block)
                bar.update(len(block))
