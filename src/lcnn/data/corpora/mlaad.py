"""MLAAD (Müller et al. 2024): synthetic speech only, ``fake/<language>/<model>/*.wav`` with a ``meta.csv`` in
each model folder, ``|``-separated under the header ``path|original_file|language|is_original_language|duration|
training_data|model_name|architecture|transcript``. ``original_file`` names the M-AILABS utterance whose text
(translated where needed) was spoken: ``en_US/by_book/<gender>/<speaker>/<book>/wavs/<file>.wav``.

MLAAD has no bona fide audio of its own: it is published as the spoof half of a pair with M-AILABS. Its bona
fide trials here are the M-AILABS utterances its ``meta.csv`` files name, exactly those the fakes were made from
(the same texts and speakers on both sides, not whatever part of M-AILABS is on disk), read from the same data
folder: unpack the M-AILABS languages (``en_US/``, ``de_DE/``...) beside ``fake/``. A source that is missing is an
error when the split is checked, not a class left unbalanced. A spoof-only set would have no EER.

No official split: a trial goes to train, dev or eval by a stable hash of its source's M-AILABS book (CRC-32
modulo 10: 0-7 train, 8 dev, 9 eval), so an utterance and every fake of its text stay in one split, on every
machine and MLAAD version. ``--protocol SPLIT=FILE`` replaces a split. Attack: the model folder; conditions of
the spoofs: ``language`` and ``architecture`` (each compared with all bona fide trials).
"""

from __future__ import annotations

import functools
import zlib
from pathlib import Path

from lcnn.data.corpora.registry import SplitSource, register_corpus
from lcnn.data.paths import inside
from lcnn.data.protocols import Trial
from lcnn.errors import DataError
from lcnn.io import iter_lines

REQUIRED = ("path", "original_file", "language", "architecture")
SPLIT_OF_BUCKET = ("train",) * 8 + ("dev", "eval")


def split_of(source: str) -> str:
    """The split of a trial whose M-AILABS source (or, without one, own file) is ``source``: by its book."""
    book = "/".join(source.split("/")[:5])  # <language>/by_book/<gender>/<speaker>/<book>
    return SPLIT_OF_BUCKET[zlib.crc32(book.encode()) % 10]


def read_meta(meta: Path, root: Path) -> list[tuple[Trial, Trial | None]]:
    """Each fake of one model folder's ``meta.csv`` with the bona fide trial of its source (``None`` without one);
    ids are paths relative to ``root``. Raises DataError naming the file and line."""
    model = meta.parent.name
    rows = iter_lines(meta, "MLAAD meta.csv")
    header = next(rows, (1, ""))[1].split("|")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise DataError(f"{meta}, line 1: no {', '.join(missing)} column; expected the MLAAD header "
                        "path|original_file|language|...|architecture|transcript")  # fmt: skip
    column = {name: header.index(name) for name in REQUIRED}
    pairs = []
    for number, line in rows:
        if not line.strip():
            continue
        fields = line.split("|", len(header) - 1)  # the transcript, last, may hold the separator
        if len(fields) != len(header):
            raise DataError(f"{meta}, line {number}: {len(fields)} fields, expected the {len(header)} of its header")
        path, source, language, architecture = (fields[column[c]].strip() for c in REQUIRED)
        where = f"{meta}, line {number}"
        fake = inside(meta.parent, Path(path).name, where).relative_to(root).as_posix()  # beside its meta.csv
        source = inside(root, source, where).relative_to(root).as_posix() if source not in ("", "-") else ""
        speaker = source.split("/")[3] if source.count("/") >= 4 else "-"
        conditions = {"language": language, "architecture": architecture}
        spoof = Trial(fake, "spoof", attack=model, speaker=speaker, conditions=conditions)
        pairs.append((spoof, Trial(source, "bonafide", speaker=speaker) if source else None))
    return pairs


def read_split(fake_dir: Path, split: str) -> list[Trial]:
    """The trials of ``split``: its fakes, then the bona fide sources they name (each once), both sorted."""
    root = fake_dir.parent
    spoofs, bona = [], {}
    for meta in sorted(fake_dir.glob("*/*/meta.csv")):
        for spoof, source in read_meta(meta, root):
            if split_of(source.utt if source else spoof.utt) == split:
                spoofs.append(spoof)
                if source is not None:
                    bona[source.utt] = source
    if not spoofs:
        raise DataError(f"{fake_dir}: no MLAAD trials fall in the {split} split")
    return sorted(spoofs, key=lambda t: t.utt) + [bona[u] for u in sorted(bona)]


@register_corpus("mlaad", conditions=("language", "architecture"),
                 note="with the M-AILABS sources of its fakes beside fake/")  # fmt: skip
def mlaad(root: Path) -> dict[str, SplitSource]:
    fake = root / "fake"
    metas = list(fake.glob("*/*/meta.csv"))
    if not metas:
        raise DataError(f"{root}: no fake/<language>/<model>/meta.csv here (MLAAD)")
    first = next((s for _, s in read_meta(metas[0], root) if s is not None), None)
    if first is not None and not (root / first.utt.split("/")[0]).is_dir():
        raise DataError(f"{root}: no {first.utt.split('/')[0]}/ here; MLAAD's bona fide trials are the M-AILABS "
                        f"utterances its fakes were made from (e.g. {first.utt}): unpack M-AILABS beside fake/")
    return {split: SplitSource(fake, root, reader=functools.partial(read_split, split=split))
            for split in ("train", "dev", "eval")}  # fmt: skip
