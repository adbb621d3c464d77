"""Files in and out: atomic writes (a file is either complete or absent, never torn by an interrupted run) and
text reading that names the file, and the line, of what cannot be read."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lcnn.errors import DataError, UserError

#: The UTF-8 byte-order mark: accepted at the start of a text file and dropped, never part of its first line.
BOM = b"\xef\xbb\xbf"

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


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file or folder: the same path resolved (symlinks followed), or two names of one
    inode (hard links). A path that does not exist is nobody's file."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether ``path`` (existing or not) lies in ``folder`` or is it, symlinks resolved."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


#: Paths paired with what the user called them: a mapping or ``(name, path)`` pairs.
Named = Mapping[str, "str | os.PathLike | None"] | Iterable[tuple[str, "str | os.PathLike | None"]]


def refuse_overwrite(outputs: Named, inputs: Named, data_folders: Named = ()) -> None:
    """Stop, before any work, where an output would replace one of the command's inputs.

    ``outputs``, ``inputs`` and ``data_folders`` pair what the user gave (``"--out"``, ``"SCORES"``, ...) with
    paths; ``None`` paths are skipped. An output is refused when it is an input (the same path, a symlink to it or
    a hard link of it), when an input lies inside an output folder, or when it would be written inside a data
    folder (a corpus is walked for its files: a copy written into it would be read as part of it). A run folder
    is an input that may hold its own evaluations.

    Raises:
        UserError: naming both, e.g. ``--out scores.txt is the input SCORES (scores.txt): ...``.
    """
    inputs, data_folders = _pairs(inputs), _pairs(data_folders)
    for out_name, out in _pairs(outputs):
        for in_name, src in inputs + data_folders:
            if same_file(out, src):
                why = "the same file" if os.path.abspath(out) == os.path.abspath(src) else "a link to the same file"
                raise UserError(f"{out_name} {out} is the input {in_name} {src} ({why}): the command would write over "
                                "its own input; choose another output")  # fmt: skip
        for in_name, src in data_folders:
            if Path(src).is_dir() and inside(out, src):
                raise UserError(f"{out_name} {out} lies inside the input {in_name} {src}: the output would be mixed "
                                "into the input; choose a place outside it")  # fmt: skip
        for in_name, src in inputs + data_folders:
            if Path(out).is_dir() and inside(src, out):
                raise UserError(f"{out_name} {out} holds the input {in_name} {src}: choose an output folder that "
                                "does not contain the input")  # fmt: skip


def _pairs(named: Named) -> list[tuple[str, str | os.PathLike]]:
    return [(k, v) for k, v in (named.items() if isinstance(named, Mapping) else named) if v is not None]


def printable(text: str) -> str:
    """``text`` with every non-printing character escaped (``\\ufeff``, ``\\x00``, ``\\t``), for messages that
    quote ids or values from a user's file: two ids that differ by an invisible character must look different."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


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
                if number == 1 and raw.startswith(BOM):  # editors on Windows begin UTF-8 files with one
                    raw = raw[len(BOM):]
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
