"""MiniSpoof: a small corpus in the ASVspoof 2019 LA layout (``LA/ASVspoof2019_LA_*``), found through
``--data-dir`` or ``$LCNN_MINISPOOF`` (no workspace path in the library)."""

from __future__ import annotations

import os
from pathlib import Path

from lcnn.data.corpora.asvspoof2019 import layout_2019
from lcnn.data.corpora.registry import SplitSource, register_corpus
from lcnn.errors import UserError

MINISPOOF_ENV = "LCNN_MINISPOOF"


def locate_minispoof(data_dir: str | os.PathLike | None) -> Path:
    """``--data-dir``, else the folder named by ``$LCNN_MINISPOOF`` (the folder holding ``LA/``)."""
    if data_dir:
        return Path(data_dir)
    if os.environ.get(MINISPOOF_ENV):
        return Path(os.environ[MINISPOOF_ENV])
    raise UserError(f"--data minispoof needs --data-dir DIR (the folder holding LA/), or ${MINISPOOF_ENV} set to it")


@register_corpus("minispoof", note=f"the default; --data-dir or ${MINISPOOF_ENV}", locate=locate_minispoof)
def minispoof(root: Path) -> dict[str, SplitSource]:
    return layout_2019(root, "LA")
