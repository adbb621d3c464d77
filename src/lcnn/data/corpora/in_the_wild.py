"""In-the-Wild (Müller et al. 2022): ``meta.csv`` beside the audio, in the data folder or its
``release_in_the_wild/``; an evaluation set only."""

from __future__ import annotations

from pathlib import Path

from lcnn.data.corpora.registry import SplitSource, register_corpus
from lcnn.errors import DataError


@register_corpus("in-the-wild", splits=("eval",), note="evaluation only")
def in_the_wild(root: Path) -> dict[str, SplitSource]:
    for folder in (root, root / "release_in_the_wild"):
        if (folder / "meta.csv").is_file():
            return {"eval": SplitSource(folder / "meta.csv", folder)}
    raise DataError(f"{root}: no meta.csv here or in {root / 'release_in_the_wild'} (In-the-Wild)")
