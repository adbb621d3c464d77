"""ASVspoof-style spoofing data: protocol readers, the standard corpora's layouts, datasets of cached
features, a length-bucketing batch sampler and a collate function that keeps the lengths.

Protocol formats (one trial a line, whitespace-separated unless CSV):

- ASVspoof 2019 LA: ``SPEAKER FILE - SYSTEM KEY`` (``LA_0079 LA_T_1138215 - - bonafide``);
- ASVspoof 2019 PA: ``SPEAKER FILE ENV ATTACK KEY`` (``PA_0079 PA_T_0000001 aaa - bonafide``);
- ASVspoof 2021 keys (``trial_metadata.txt``): ``SPEAKER FILE CODEC TRANSMISSION ATTACK KEY TRIM SUBSET ...``
  (``LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval``);
- ASVspoof 2021 trial lists: one file id a line, no key (unlabelled);
- CSV (``.csv`` suffix): ``path,label[,speaker,attack]``, an optional header line starting with ``path``.

KEY must be ``bonafide`` or ``spoof``; file ids must be unique. Labels: 1 = bona fide, 0 = spoof,
-1 = unknown (the score direction of the whole package: higher = more bona fide).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from lcnn.data.features import FeatureCache
from lcnn.errors import DataError, UserError

KEYS = ("bonafide", "spoof")
AUDIO_SUFFIXES = (".flac", ".wav")
MIN_FRAMES = 16  # the LCNN stacks pool four times by 2 along time
SPLITS = ("train", "dev", "eval")


@dataclass(frozen=True)
class Trial:
    """One protocol line: the file id, its key (``None`` when unlabelled) and metadata.

    ``attack`` is the system id (``A07``; ``-`` for bona fide in the 2019 protocols), ``env`` the PA
    environment or the 2021 codec and transmission channel, ``subset`` the 2021 phase (``progress`` /
    ``eval`` / ``hidden_track``), ``path`` the audio file once resolved.
    """

    utt: str
    key: str | None = None
    attack: str = "-"
    speaker: str = "-"
    env: str = "-"
    subset: str | None = None
    path: Path | None = field(default=None, compare=False)

    @property
    def label(self) -> int:
        """1 = bona fide, 0 = spoof, -1 = unlabelled."""
        return -1 if self.key is None else int(self.key == "bonafide")


def _check_key(key: str, where: str) -> str:
    if key not in KEYS:
        raise DataError(f"{where}: label {key!r}, expected bonafide or spoof")
    return key


def read_protocol(path: str | os.PathLike) -> list[Trial]:
    """Trials of a protocol, key or trial-list file in any of the formats of the module docstring.

    Raises:
        DataError: unreadable file, a line with an unexpected number of fields, a label other than
            bonafide/spoof (with the 1-based line number), or duplicate file ids (count and the first few).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such protocol file")
    if path.suffix.lower() == ".csv":
        trials = _read_csv(path)
    else:
        trials = []
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                fields = line.split()
                if fields:
                    trials.append(_parse_line(fields, f"{path}, line {number}"))
    if not trials:
        raise DataError(f"{path}: no trials in this protocol file")
    _refuse_duplicates(trials, str(path))
    return trials


def _parse_line(f: list[str], where: str) -> Trial:
    if len(f) == 1:  # 2021 trial list
        return Trial(f[0])
    if len(f) == 5:  # 2019 LA / PA
        return Trial(f[1], _check_key(f[4], where), attack=f[3], speaker=f[0], env=f[2])
    if len(f) >= 8:  # 2021 LA / DF keys (trial_metadata.txt)
        return Trial(f[1], _check_key(f[5], where), attack=f[4], speaker=f[0], env=f"{f[2]} {f[3]}", subset=f[7])
    raise DataError(
        f"{where}: {len(f)} fields, expected SPEAKER FILE - SYSTEM KEY (5), a 2021 trial_metadata line (8 or more) "
        f"or one file id: {' '.join(f)!r}"
    )


def _read_csv(path: Path) -> list[Trial]:
    trials = []
    with open(path, newline="", encoding="utf-8") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            row = [c.strip() for c in row]
            if not any(row) or (number == 1 and row[0].lower() == "path"):
                continue
            where = f"{path}, line {number}"
            if not 2 <= len(row) <= 4:
                raise DataError(f"{where}: {len(row)} columns, expected path,label[,speaker,attack]")
            key = _check_key(row[1], where)
            speaker = row[2] if len(row) > 2 and row[2] else "-"
            attack = row[3] if len(row) > 3 and row[3] else "-"
            trials.append(Trial(row[0], key, attack=attack, speaker=speaker))
    return trials


def _refuse_duplicates(trials: Sequence[Trial], where: str) -> None:
    seen: set[str] = set()
    dups = []
    for t in trials:
        if t.utt in seen:
            dups.append(t.utt)
        seen.add(t.utt)
    if dups:
        raise DataError(f"{where}: {len(dups)} duplicate file ids, e.g. {', '.join(dups[:5])}")


# --------------------------------------------------------------------------------------------------------------
# Corpora layouts


@dataclass(frozen=True)
class SplitSource:
    """Where one split lives: the protocol (labels), the audio folder, and an optional trial list whose ids
    must match the protocol's exactly (the 2021 evaluation sets)."""

    protocol: Path | None
    audio_dir: Path
    trial_list: Path | None = None


CORPORA = ("asvspoof2019-la", "asvspoof2019-pa", "asvspoof2021-la", "asvspoof2021-df", "minispoof", "custom")


def locate_minispoof(data_dir: str | os.PathLike | None) -> Path:
    """``--data-dir``, or, as a convenience, ``../shared/data/minispoof`` relative to the working directory."""
    if data_dir:
        return Path(data_dir)
    guess = Path("..") / "shared" / "data" / "minispoof"
    if (guess / "LA").is_dir():
        return guess
    raise UserError("--data minispoof needs --data-dir DIR (the folder holding LA/); ../shared/data/minispoof "
                    "is not there")


def _corpus_root(data_dir: Path, access: str, year: int) -> Path:
    """The folder holding ``ASVspoof{year}_{access}_*``: ``DIR/{access}`` or ``DIR`` itself."""
    for root in (data_dir / access, data_dir):
        if any(root.glob(f"ASVspoof{year}_{access}_*")):
            return root
    raise DataError(f"{data_dir}: no ASVspoof{year}_{access}_* folders here or in {data_dir / access}")


def _layout_2019(data_dir: Path, access: str) -> dict[str, SplitSource]:
    root = _corpus_root(data_dir, access, 2019)
    protocols = root / f"ASVspoof2019_{access}_cm_protocols"
    names = {"train": "train.trn", "dev": "dev.trl", "eval": "eval.trl"}
    return {
        split: SplitSource(protocols / f"ASVspoof2019.{access}.cm.{names[split]}.txt",
                           root / f"ASVspoof2019_{access}_{split}" / "flac")
        for split in SPLITS
    }


def _layout_2021(data_dir: Path, track: str) -> SplitSource:
    root = _corpus_root(data_dir, track, 2021)
    eval_dir = root / f"ASVspoof2021_{track}_eval"
    candidates = [eval_dir / "trial_metadata.txt", root / "keys" / track / "CM" / "trial_metadata.txt",
                  root / f"{track}-keys-stage-1" / "keys" / "CM" / "trial_metadata.txt",
                  data_dir / "keys" / track / "CM" / "trial_metadata.txt"]
    keys = next((p for p in candidates if p.is_file()), None)
    return SplitSource(keys, eval_dir / "flac", eval_dir / f"ASVspoof2021.{track}.cm.eval.trl.txt")


def resolve_sources(
    data: str, data_dir: str | os.PathLike | None, protocols: dict[str, str] | None = None
) -> dict[str, SplitSource]:
    """The train / dev / eval sources of corpus ``data`` under ``data_dir``.

    ``asvspoof2021-la`` / ``-df`` take train and dev from ASVspoof 2019 LA under the same folder and
    evaluate on the 2021 set (its keys ``trial_metadata.txt`` are looked for in the eval folder and the
    official keys layout; without them the eval split is unlabelled). ``custom`` is the user's own data:
    ``protocols`` (split -> protocol or CSV file) with audio under ``data_dir``. ``protocols`` also
    overrides single splits of the standard corpora (the audio stays in that split's folder); a relative
    protocol path that does not exist from the working directory is looked for under ``data_dir``.
    """
    protocols = dict(protocols or {})
    unknown = set(protocols) - set(SPLITS)
    if unknown:
        raise UserError(f"--protocol split must be one of {', '.join(SPLITS)}, got {', '.join(sorted(unknown))}")
    if data not in CORPORA:
        raise UserError(f"unknown spoofing data {data!r}; expected one of {', '.join(CORPORA)}")
    if data == "minispoof":
        root = locate_minispoof(data_dir)
    elif not data_dir:
        raise UserError(f"--data {data} needs --data-dir DIR")
    else:
        root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{root}: no such data folder")

    if data in ("asvspoof2019-la", "minispoof"):
        sources = _layout_2019(root, "LA")
    elif data == "asvspoof2019-pa":
        sources = _layout_2019(root, "PA")
    elif data.startswith("asvspoof2021"):
        sources = {"eval": _layout_2021(root, data[-2:].upper())}
        try:  # training data: ASVspoof 2019 LA; evaluating needs the 2021 set only
            la = _layout_2019(root, "LA")
            sources.update(train=la["train"], dev=la["dev"])
        except DataError:
            pass
    else:
        if not protocols:
            raise UserError("--data custom needs --protocol SPLIT=FILE for its splits (train, dev, eval)")
        sources = {}
    for split, file in protocols.items():
        p = Path(file)
        if not p.is_absolute() and not p.exists() and (root / p).exists():
            p = root / p
        sources[split] = SplitSource(p, sources[split].audio_dir if split in sources else root)
    return sources


def load_split(source: SplitSource) -> list[Trial]:
    """The trials of a split with their audio paths resolved (existence is checked by :func:`check_audio`).

    Raises:
        DataError: bad protocol (see :func:`read_protocol`), a trial list and keys whose ids differ,
            or a file id that would leave the data folder.
    """
    if source.trial_list is not None and source.trial_list.is_file():
        listed = read_protocol(source.trial_list)
        if source.protocol is not None:
            keyed = {t.utt: t for t in read_protocol(source.protocol)}
            _refuse_mismatch([t.utt for t in listed], keyed, source.trial_list, source.protocol)
            listed = [keyed[t.utt] for t in listed]
        trials = listed
    elif source.protocol is not None:
        trials = read_protocol(source.protocol)
    else:
        raise DataError(f"{source.trial_list or source.audio_dir}: no protocol or trial list for this split")
    return [replace(t, path=audio_path(source.audio_dir, t.utt)) for t in trials]


def _refuse_mismatch(ids: Sequence[str], keyed: dict[str, Trial], trial_list: Path, keys: Path) -> None:
    listed = set(ids)
    unkeyed = [u for u in ids if u not in keyed]
    unlisted = [u for u in keyed if u not in listed]
    if unkeyed or unlisted:
        raise DataError(
            f"trial ids of {trial_list} and {keys} disagree: {len(unkeyed)} listed trials without a key "
            f"(e.g. {', '.join(unkeyed[:3]) or '-'}), {len(unlisted)} keys for trials not listed "
            f"(e.g. {', '.join(unlisted[:3]) or '-'}); refusing to score"
        )


def audio_path(audio_dir: Path, utt: str) -> Path:
    """``audio_dir/utt`` if ``utt`` names an audio file, else ``audio_dir/utt.flac`` (``.wav`` if that one
    exists instead). Refuses ids that are absolute or climb out of ``audio_dir`` with ``..``."""
    rel = os.path.normpath(utt)
    if os.path.isabs(utt) or rel == ".." or rel.startswith(".." + os.sep):
        raise DataError(f"trial {utt!r}: path leaves the data folder {audio_dir}")
    base = audio_dir / rel
    if base.suffix.lower() in AUDIO_SUFFIXES:
        return base
    flac = base.with_name(base.name + ".flac")
    wav = base.with_name(base.name + ".wav")
    return wav if not flac.exists() and wav.exists() else flac


def check_audio(trials: Sequence[Trial], split: str) -> list[int]:
    """File sizes in bytes of every trial's audio; raises DataError with the count and first few missing."""
    sizes, missing = [], []
    for t in trials:
        try:
            sizes.append(os.stat(t.path).st_size)
        except OSError:
            missing.append(str(t.path))
    if missing:
        raise DataError(f"{split}: {len(missing)} of {len(trials)} trials have no audio file, e.g. "
                        + ", ".join(missing[:3]))
    return sizes


# --------------------------------------------------------------------------------------------------------------
# Datasets, sampler, collate


def fit_frames(feats: Tensor, frames: int, random_crop: bool = False) -> Tensor:
    """Crop or repeat-pad ``(T, F)`` features to ``(frames, F)``.

    Longer inputs are cropped at a random offset (``random_crop``, for training) or from the start;
    shorter ones are tiled (the utterance repeated) until ``frames``.
    """
    t = feats.shape[0]
    if t > frames:
        start = int(torch.randint(0, t - frames + 1, ())) if random_crop else 0
        return feats[start : start + frames]
    if t < frames:
        return feats.repeat(math.ceil(frames / t), 1)[:frames]
    return feats


class SpoofDataset(Dataset):
    """Cached front-end features of a list of trials.

    Items are ``(features (T, F) float32, label, index)``; with ``frames`` set, ``T == frames`` (see
    :func:`fit_frames`, random crops when ``train``), else the whole utterance. ``sizes`` (audio file
    sizes, from :func:`check_audio`) stand in for the lengths when batches are grouped by length.
    """

    def __init__(self, trials: Sequence[Trial], cache: FeatureCache, frames: int | None = None,
                 train: bool = False, sizes: Sequence[int] | None = None) -> None:
        self.trials = list(trials)
        self.cache = cache
        self.frames = frames
        self.train = train
        self.sizes = list(sizes) if sizes is not None else [0] * len(self.trials)

    def __len__(self) -> int:
        return len(self.trials)

    def __getitem__(self, index: int) -> tuple[Tensor, int, int]:
        trial = self.trials[index]
        feats = self.cache.get(trial.utt, trial.path)
        if self.frames:
            feats = fit_frames(feats, self.frames, random_crop=self.train)
        return feats, trial.label, index


def collate(batch: Sequence[tuple[Tensor, int, int]]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Zero-pad to the longest item (at least :data:`MIN_FRAMES`).

    Returns:
        ``x (B, 1, T, F)``, ``lengths (B,)`` valid frames per item, ``labels (B,)``, dataset ``index (B,)``.
    """
    feats, labels, index = zip(*batch)
    lengths = torch.tensor([f.shape[0] for f in feats])
    x = feats[0].new_zeros(len(feats), max(MIN_FRAMES, int(lengths.max())), feats[0].shape[1])
    for i, f in enumerate(feats):
        x[i, : f.shape[0]] = f
    return x.unsqueeze(1), lengths, torch.tensor(labels), torch.tensor(index)


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of utterances of similar length, for variable-length models (less padding, faster).

    The indices of ``sampler`` (a RandomSampler when training, sequential for scoring) are cut into pools
    of ``pool`` batches; each pool is sorted by ``lengths`` and cut into batches; with ``shuffle`` the
    batches are then visited in random order (torch's global generator, so seeded runs repeat), else
    pool by pool. ``pool=0`` sorts everything at once.

    The signature ``(sampler, batch_size, drop_last, ...)`` lets Lightning rebuild it around a distributed
    sampler under several processes.
    """

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool = False,
                 lengths: Sequence[int] = (), pool: int = 32, shuffle: bool = True) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.lengths = list(lengths)
        self.pool = pool
        self.shuffle = shuffle

    def _batches(self, indices: list[int]) -> list[list[int]]:
        chunk = self.batch_size * self.pool if self.pool else max(1, len(indices))
        batches = []
        for start in range(0, len(indices), chunk):
            part = sorted(indices[start : start + chunk], key=lambda i: self.lengths[i])
            batches += [part[k : k + self.batch_size] for k in range(0, len(part), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._batches(list(self.sampler))
        order = torch.randperm(len(batches)).tolist() if self.shuffle else range(len(batches))
        for i in order:
            yield batches[i]

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        chunk = self.batch_size * self.pool if self.pool else max(1, n)
        sizes = [min(chunk, n - s) for s in range(0, n, chunk)]
        per = (lambda m: m // self.batch_size) if self.drop_last else (lambda m: -(-m // self.batch_size))
        return sum(per(m) for m in sizes)
