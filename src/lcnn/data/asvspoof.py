"""The standard spoofing corpora's layouts (ASVspoof 2019 LA / PA, ASVspoof 2021 LA / DF, ASVspoof 5,
In-the-Wild, MiniSpoof, the user's own protocols): where each split's protocol and audio live, and the split's
trials with their audio.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from lcnn.data.paths import inside
from lcnn.data.protocols import Trial, read_protocol
from lcnn.errors import DataError, UserError

AUDIO_SUFFIXES = (".flac", ".wav")
SPLITS = ("train", "dev", "eval")


@dataclass(frozen=True)
class SplitSource:
    """Where one split lives: the protocol (labels), the audio folder, and an optional trial list whose ids
    must match the protocol's exactly (the 2021 evaluation sets)."""

    protocol: Path | None
    audio_dir: Path
    trial_list: Path | None = None


CORPORA = ("asvspoof2019-la", "asvspoof2019-pa", "asvspoof2021-la", "asvspoof2021-df", "asvspoof5", "in-the-wild",
           "minispoof", "custom")

# ASVspoof 5 as distributed: the protocols (in the folder or its ASVspoof5_protocols/) and audio of each split;
# the evaluation audio unpacks to flac_E_eval/ (flac_E_prog/ held the challenge's progress phase).
ASVSPOOF5 = {
    "train": ("ASVspoof5.train.tsv", ("flac_T",)),
    "dev": ("ASVspoof5.dev.track_1.tsv", ("flac_D",)),
    "eval": ("ASVspoof5.eval.track_1.tsv", ("flac_E_eval", "flac_E_prog")),
}


MINISPOOF_ENV = "LCNN_MINISPOOF"


def locate_minispoof(data_dir: str | os.PathLike | None) -> Path:
    """``--data-dir``, else the folder named by ``$LCNN_MINISPOOF`` (the folder holding ``LA/``)."""
    if data_dir:
        return Path(data_dir)
    if os.environ.get(MINISPOOF_ENV):
        return Path(os.environ[MINISPOOF_ENV])
    raise UserError(f"--data minispoof needs --data-dir DIR (the folder holding LA/), or ${MINISPOOF_ENV} set to it")


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


def _layout_asvspoof5(root: Path) -> dict[str, SplitSource]:
    sources = {}
    for split, (protocol, audio) in ASVSPOOF5.items():
        protocols = [d / protocol for d in (root, root / "ASVspoof5_protocols")]
        audio_dirs = [root / name for name in audio]
        sources[split] = SplitSource(next((p for p in protocols if p.is_file()), protocols[0]),
                                     next((d for d in audio_dirs if d.is_dir()), audio_dirs[0]))  # fmt: skip
    if not any(s.protocol.is_file() for s in sources.values()):
        names = ", ".join(protocol for protocol, _ in ASVSPOOF5.values())
        raise DataError(f"{root}: none of the ASVspoof 5 protocols ({names}) here or in {root / 'ASVspoof5_protocols'}")
    return sources


def _layout_in_the_wild(root: Path) -> dict[str, SplitSource]:
    """In-the-Wild: ``meta.csv`` beside the audio, in ``root`` or ``root/release_in_the_wild``; evaluation only."""
    for folder in (root, root / "release_in_the_wild"):
        if (folder / "meta.csv").is_file():
            return {"eval": SplitSource(folder / "meta.csv", folder)}
    raise DataError(f"{root}: no meta.csv here or in {root / 'release_in_the_wild'} (In-the-Wild)")


def resolve_sources(
    data: str, data_dir: str | os.PathLike | None, protocols: dict[str, str] | None = None
) -> dict[str, SplitSource]:
    """The train / dev / eval sources of corpus ``data`` under ``data_dir``.

    ``asvspoof2021-la`` / ``-df`` take train and dev from ASVspoof 2019 LA under the same folder and
    evaluate on the 2021 set (its keys ``trial_metadata.txt`` are looked for in the eval folder and the
    official keys layout; without them the eval split is unlabelled). ``asvspoof5``: the folder holding
    ``flac_T/``, ``flac_D/`` and ``flac_E_eval/`` (or ``flac_E_prog/``), with the protocols there or in its
    ``ASVspoof5_protocols/``. ``in-the-wild``: the folder of ``meta.csv`` and the audio (or the one holding
    ``release_in_the_wild/``); an eval split only. ``custom`` is the user's own data:
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
    elif data == "asvspoof5":
        sources = _layout_asvspoof5(root)
    elif data == "in-the-wild":
        sources = _layout_in_the_wild(root)
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
    base = inside(audio_dir, utt, f"trial {utt!r}")
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
