"""The trials to score, parsed and checked in bounded memory: a protocol, a CSV, a list of paths or a folder.

INPUT kinds (:func:`read_input`), audio paths relative to the INPUT's folder (or ``audio_dir``):

- a protocol, key or trial list of :func:`lcnn.data.protocols.iter_protocol` (ASVspoof 2019 LA / PA, 2021
  keys, one id a line): the audio of id ``X`` is ``X`` if it names an audio file, else ``X.flac`` (``X.wav``
  when only that exists), as :func:`lcnn.data.asvspoof.audio_path`; a list of paths is a one-id-a-line list;
- a CSV (``.csv``): ``path,label[,speaker,attack]``, with or without a header line; the id is the path;
- a folder: every ``.flac`` / ``.wav`` under it (sorted, recursively); the id is the path without suffix;
- one ``.flac`` / ``.wav`` file (a long recording, say): the id is its name without suffix.

A :class:`TrialTable` keeps per trial its id, audio path, file size (``-1``: no such file) and the
``ATTACK KEY`` columns of the 2019 score form, in flat columns (one buffer of strings, no Python object
per trial): 600,000 trials take about 33 MB, and forked DataLoader workers share them without copying
(``benchmarks/RESULTS-spoof.md``). Duplicate ids, ids with whitespace (an ``ID SCORE`` line holds no space in
its id) and paths that leave the folder are refused; missing files are counted, and scored as failures.
"""

from __future__ import annotations

import hashlib
import os
import re
from array import array
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from lcnn.data.asvspoof import AUDIO_SUFFIXES
from lcnn.data.protocols import Trial, iter_protocol
from lcnn.errors import DataError

__all__ = ["Strings", "TrialTable", "read_input"]

_SPACE = re.compile(r"\s")


class Strings:
    """An append-only column of strings in one UTF-8 buffer with end offsets: ~(length + 8) bytes a row."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._ends = array("q")

    def append(self, text: str) -> None:
        self._data += text.encode()
        self._ends.append(len(self._data))

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, i: int) -> str:
        return self._data[self._ends[i - 1] if i else 0 : self._ends[i]].decode()

    @property
    def nbytes(self) -> int:
        return len(self._data) + self._ends.itemsize * len(self._ends)


class TrialTable:
    """Trials in input order: ``ids[i]``, ``path(i)``, ``sizes[i]`` (bytes, ``-1`` when the file is missing)
    and ``meta(i)``, the ``ATTACK KEY`` of labelled trials (``None`` when unlabelled).

    ``digest`` is the SHA-1 of every trial's id, path, size and modification time: a restart must see the
    same one. Build it with :func:`read_input` or :meth:`from_trials`.
    """

    def __init__(self, root: str | os.PathLike, source: str) -> None:
        self.root, self.source = os.fspath(root), source
        self.ids, self.paths = Strings(), Strings()
        self.sizes = array("q")
        self._meta = array("i")
        self._meta_names: list[str] = []
        self._meta_codes: dict[str, int] = {}
        self._hashes = array("q")
        self._sha = hashlib.sha1(self.root.encode())
        self._escaping: list[str] = []
        self._escaped = 0
        self._spaced: list[str] = []
        self._spaces = 0

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, utt: str, path: str | None, meta: str | None = None) -> None:
        """Append a trial whose audio is ``path`` (relative to the root, or absolute); ``None``: it leaves the root."""
        if path is None:
            self._escaped += 1
            self._escaping += [utt] if len(self._escaping) < 3 else []
            return
        if _SPACE.search(utt):  # a folder's or a CSV's ids are paths, which may hold spaces
            self._spaces += 1
            self._spaced += [utt] if len(self._spaced) < 3 else []
        try:
            st = os.stat(os.path.join(self.root, path))
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = -1, 0
        self.ids.append(utt)
        self.paths.append(path)
        self.sizes.append(size)
        self._hashes.append(hash(utt))
        self._sha.update(f"{utt}\t{path}\t{size}\t{mtime}\n".encode())
        if meta is not None and meta not in self._meta_codes:
            self._meta_codes[meta] = len(self._meta_names)
            self._meta_names.append(meta)
        self._meta.append(-1 if meta is None else self._meta_codes[meta])

    def path(self, i: int) -> str:
        return os.path.join(self.root, self.paths[i])

    def meta(self, i: int) -> str | None:
        code = self._meta[i]
        return None if code < 0 else self._meta_names[code]

    @property
    def labelled(self) -> bool:
        return len(self) > 0 and min(self._meta) >= 0

    @property
    def digest(self) -> str:
        return self._sha.hexdigest()

    @property
    def missing(self) -> np.ndarray:
        """Indices of the trials whose audio file does not exist."""
        return np.flatnonzero(np.frombuffer(self.sizes, dtype=np.int64) < 0)

    @property
    def nbytes(self) -> int:
        """Memory held by the table's columns."""
        return self.ids.nbytes + self.paths.nbytes + self.sizes.itemsize * len(self) + self._meta.itemsize * len(self)

    def check(self) -> TrialTable:
        """Refuse an empty table, paths leaving the root, ids with whitespace and duplicate ids (each with the
        count and the first few); drops the per-trial hashes of the duplicate check. Returns the table."""
        if self._escaped:
            raise DataError(f"{self.source}: {self._escaped} trials leave the data folder {self.root or '.'} "
                            f"(absolute paths or ..), e.g. {', '.join(self._escaping)}")  # fmt: skip
        if self._spaces:
            raise DataError(f"{self.source}: {self._spaces} trial ids contain whitespace, which an ID SCORE line "
                            f"cannot hold (rename the files), e.g. {', '.join(map(repr, self._spaced))}")  # fmt: skip
        if not len(self):
            raise DataError(f"{self.source}: no trials")
        hashes = np.frombuffer(self._hashes, dtype=np.int64)
        order = np.argsort(hashes, kind="stable")
        same = np.flatnonzero(hashes[order][1:] == hashes[order][:-1])
        dups = [self.ids[order[k + 1]] for k in same if self.ids[order[k]] == self.ids[order[k + 1]]]
        if dups:
            raise DataError(f"{self.source}: {len(dups)} duplicate trial ids, e.g. {', '.join(dups[:5])}")
        self._hashes = array("q")
        return self

    @classmethod
    def from_trials(cls, trials: Iterable[Trial], source: str) -> TrialTable:
        """A table of trials whose ``path`` is resolved (a corpus split of :func:`lcnn.data.asvspoof.load_split`)."""
        table = cls("", source)
        for t in trials:
            table.add(t.utt, str(t.path), _meta(t))
        return table.check()


def _meta(t: Trial) -> str | None:
    return None if t.key is None else f"{t.attack} {t.key}"


def read_input(path: str | os.PathLike, audio_dir: str | os.PathLike | None = None) -> TrialTable:
    """The checked :class:`TrialTable` of a protocol, CSV, list of paths, folder or audio file (module docstring).

    Raises:
        DataError: no such INPUT, a bad line (file and line number), paths that leave the audio folder,
            duplicate ids, or no trials at all.
    """
    path = Path(path)
    if path.is_dir():
        table = TrialTable(path, str(path))
        for base, dirs, files in os.walk(path):
            dirs.sort()
            rel = os.path.relpath(base, path)
            for name in sorted(files):
                stem, suffix = os.path.splitext(name)
                if suffix.lower() in AUDIO_SUFFIXES:
                    table.add(Path(rel, stem).as_posix(), os.path.normpath(os.path.join(rel, name)))
        return table.check()
    if not path.is_file():
        raise DataError(f"{path}: no such protocol, list or folder")
    if path.suffix.lower() in AUDIO_SUFFIXES:
        table = TrialTable(path.parent, str(path))
        table.add(path.stem, path.name)
        return table.check()
    root = os.fspath(audio_dir) if audio_dir is not None else os.fspath(path.parent)
    table = TrialTable(root, str(path))
    for t in iter_protocol(path):
        table.add(t.utt, locate(root, t.utt), _meta(t))
    return table.check()


def locate(root: str, utt: str) -> str | None:
    """The audio path of trial ``utt`` relative to ``root`` by :func:`lcnn.data.asvspoof.audio_path`'s rule, on
    strings (``audio_path``'s pathlib objects cost 7x the time on 600,000 trials); ``None`` for an id that is
    absolute or climbs out of ``root`` with ``..``."""
    rel = os.path.normpath(utt)
    if os.path.isabs(utt) or rel == ".." or rel.startswith(".." + os.sep):
        return None
    if os.path.splitext(rel)[1].lower() in AUDIO_SUFFIXES:
        return rel
    flac, wav = rel + ".flac", rel + ".wav"
    if not os.path.exists(os.path.join(root, flac)) and os.path.exists(os.path.join(root, wav)):
        return wav
    return flac
