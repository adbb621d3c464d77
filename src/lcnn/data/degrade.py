"""A degraded copy of a corpus split (``lcnn degrade``): every file of the split through a fixed codec chain,
written with the same layout and protocol, so that ``lcnn evaluate RUN --data-dir COPY`` measures robustness
the same way for everyone.

The chain is deterministic (codecs only: :func:`lcnn.audio.parse_chain`); the files are coded in batches of
:data:`BATCH` in file order (one pair of ffmpeg processes per codec and batch), whatever the number of worker
processes, so a copy is the same on every run. Each file is written atomically and the protocol last, with a
``degrade.json`` describing the copy: a copy without its protocol is an unfinished one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from lcnn.audio import load_audio, parse_chain
from lcnn.audio.codecs import CodecStep, codec_roundtrip_many
from lcnn.data.asvspoof import check_audio, load_split, resolve_sources
from lcnn.errors import UserError
from lcnn.io import atomic_path, write_json

__all__ = ["BATCH", "degrade"]

BATCH = 32
SAMPLE_RATE = 16000
FORMATS = {".flac": "FLAC", ".wav": "WAV"}  # a copy keeps each file's name, so its protocol stays true


def _degrade_batch(job: tuple[list[tuple[str, str]], Sequence[CodecStep]]) -> int:
    """Code ``[(source, target), ...]`` through ``steps`` and write the targets (16-bit, in the format their
    suffix names); how many."""
    files, steps = job
    waves = [load_audio(source, SAMPLE_RATE).numpy() for source, _ in files]
    for step in steps:
        waves = codec_roundtrip_many(waves, step, SAMPLE_RATE)
    for (_, target), wave in zip(files, waves):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            sf.write(tmp, np.clip(wave, -1.0, 1.0 - 2**-15), SAMPLE_RATE, format=FORMATS[Path(target).suffix.lower()],
                     subtype="PCM_16")
    return len(files)


def degrade(data: str, data_dir: str | os.PathLike, split: str, chain: str, out: str | os.PathLike,
            protocol: str | None = None, workers: int = 1) -> dict:  # fmt: skip
    """Write ``split`` of corpus ``data`` under ``data_dir`` (or the trials of ``protocol``, audio relative to
    ``data_dir``) through ``chain`` into ``out``, mirroring the paths below ``data_dir``; returns the summary
    that ``out/degrade.json`` holds.

    Raises:
        UserError: a bad chain, no ffmpeg or encoder, a split the corpus lacks, audio outside ``data_dir``, or
            an ``out`` that already holds files.
    """
    steps = parse_chain(chain)  # checks the codecs and ffmpeg before any file is read
    root, out = Path(data_dir).resolve(), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out}: {'not empty' if out.is_dir() else 'not a folder'}; a degraded copy goes into "
                        "a new folder")  # fmt: skip
    sources = resolve_sources(data, root, {split: protocol} if protocol else None)
    if split not in sources:
        raise UserError(f"{data}: no {split} split (give --protocol FILE)")
    source = sources[split]
    trials = load_split(source)
    check_audio(trials, split)
    pairs = []
    for t in trials:
        try:
            rel = Path(t.path).resolve().relative_to(root)
        except ValueError:
            raise UserError(f"trial {t.utt}: its audio {t.path} is not inside {root}, so it has no place in a copy") \
                from None
        if rel.suffix.lower() not in FORMATS:
            raise UserError(f"trial {t.utt}: {t.path} is {rel.suffix or 'without a suffix'}; a degraded copy is "
                            "written as WAV or FLAC under the same names, so the split's audio must be .wav or .flac")
        pairs.append((str(t.path), str(out / rel)))
    jobs = [(pairs[i : i + BATCH], steps) for i in range(0, len(pairs), BATCH)]
    with tqdm(total=len(pairs), unit="file", desc=f"degrade {split} ({chain})") as bar:
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                for done in pool.map(_degrade_batch, jobs):
                    bar.update(done)
        else:
            for job in jobs:
                bar.update(_degrade_batch(job))
    copied = []
    for file in (source.trial_list, source.protocol):
        if file is not None and Path(file).is_file():
            target = out / Path(file).resolve().relative_to(root) if Path(file).resolve().is_relative_to(root) \
                else out / Path(file).name  # fmt: skip
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                shutil.copyfile(file, tmp)
            copied.append(str(target))
    summary = {"data": data, "source": str(root), "split": split, "chain": chain, "files": len(pairs),
               "protocols": copied}  # fmt: skip
    write_json(out / "degrade.json", summary)
    return summary
