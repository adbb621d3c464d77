"""Files in and out: atomic writes (a file is either complete or absent, never torn by an interrupted run) and
text reading that names the file, and the line, of what cannot be read."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lcnn.errors import DataError

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``, on error removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes 0600 files, and a writer may replace the file it was given: the umask decides, as for
        # any file the user's tools write.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str) + "\n"))


def iter_lines(path: str | os.PathLike, what: str = "file") -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a UTF-8 text file, one at a time (without the line end), for files too long
    to hold whole.

    Raises:
        DataError: no such file, an unreadable one, or a line that is not UTF-8 (with its number); the
            message names the file as a ``what``.
    """
    path = Path(path)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, after the last line
    except FileNotFoundError:
        raise DataError(f"{path}: no such {what}") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read this {what} ({err.strerror or err})") from None
    with f:
        number = 0
        try:
            for number, raw in enumerate(f, start=1):  # noqa: B007 - the number names a failing line below
                try:
                    yield number, raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as err:
                    raise DataError(f"{path}, line {number}: byte {raw[err.start]:#04x} is not UTF-8 text; a {what} "
                                    "is a text file") from None  # fmt: skip
        except OSError as err:
            raise DataError(f"{path}, line {number + 1}: cannot read this {what} ({err.strerror or err})") from None


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """The UTF-8 text of ``path``, its lines ended by ``\n`` (see :func:`iter_lines` for the errors)."""
    return "\n".join(line for _, line in iter_lines(path, what))
