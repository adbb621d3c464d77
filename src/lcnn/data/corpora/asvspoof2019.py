"""ASVspoof 2019 LA and PA: ``ASVspoof2019_{LA,PA}_{train,dev,eval}/flac/`` with the CM protocols in
``ASVspoof2019_{LA,PA}_cm_protocols/``, in the data folder or its ``LA/`` (``PA/``)."""

from __future__ import annotations

from pathlib import Path

from lcnn.data.corpora.registry import SPLITS, SplitSource, register_corpus
from lcnn.errors import DataError

PROTOCOL_NAMES = {"train": "train.trn", "dev": "dev.trl", "eval": "eval.trl"}


def corpus_root(data_dir: Path, access: str, year: int) -> Path:
    """The folder holding ``ASVspoof{year}_{access}_*``: ``DIR/{access}`` or ``DIR`` itself."""
    for root in (data_dir / access, data_dir):
        if any(root.glob(f"ASVspoof{year}_{access}_*")):
            return root
    raise DataError(f"{data_dir}: no ASVspoof{year}_{access}_* folders here or in {data_dir / access}")


def layout_2019(data_dir: Path, access: str) -> dict[str, SplitSource]:
    """The three splits of ASVspoof 2019 ``access`` (``LA`` or ``PA``)."""
    root = corpus_root(data_dir, access, 2019)
    protocols = root / f"ASVspoof2019_{access}_cm_protocols"
    return {
        split: SplitSource(protocols / f"ASVspoof2019.{access}.cm.{PROTOCOL_NAMES[split]}.txt",
                           root / f"ASVspoof2019_{access}_{split}" / "flac")
        for split in SPLITS
    }  # fmt: skip


@register_corpus("asvspoof2019-la")
def asvspoof2019_la(root: Path) -> dict[str, SplitSource]:
    return layout_2019(root, "LA")


@register_corpus("asvspoof2019-pa")
def asvspoof2019_pa(root: Path) -> dict[str, SplitSource]:
    return layout_2019(root, "PA")
