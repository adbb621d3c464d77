"""ASVspoof 2021 LA and DF: the evaluation set ``ASVspoof2021_{LA,DF}_eval/`` (its trial list and ``flac/``), the
keys ``trial_metadata.txt`` in the eval folder or the official keys layout (without them the eval split is
unlabelled); train and dev are ASVspoof 2019 LA's under the same folder, when it is there."""

from __future__ import annotations

from pathlib import Path

from lcnn.data.corpora.asvspoof2019 import corpus_root, layout_2019
from lcnn.data.corpora.registry import SplitSource, register_corpus
from lcnn.errors import DataError


def layout_2021(data_dir: Path, track: str) -> dict[str, SplitSource]:
    root = corpus_root(data_dir, track, 2021)
    eval_dir = root / f"ASVspoof2021_{track}_eval"
    candidates = [eval_dir / "trial_metadata.txt", root / "keys" / track / "CM" / "trial_metadata.txt",
                  root / f"{track}-keys-stage-1" / "keys" / "CM" / "trial_metadata.txt",
                  data_dir / "keys" / track / "CM" / "trial_metadata.txt"]  # fmt: skip
    keys = next((p for p in candidates if p.is_file()), None)
    sources = {"eval": SplitSource(keys, eval_dir / "flac", eval_dir / f"ASVspoof2021.{track}.cm.eval.trl.txt")}
    try:  # training data: ASVspoof 2019 LA; evaluating needs the 2021 set only
        la = layout_2019(data_dir, "LA")
        sources.update(train=la["train"], dev=la["dev"])
    except DataError:
        pass
    return sources


@register_corpus("asvspoof2021-la", conditions=("codec", "transmission", "subset"), revised_tdcf=True)
def asvspoof2021_la(root: Path) -> dict[str, SplitSource]:
    return layout_2021(root, "LA")


@register_corpus("asvspoof2021-df", conditions=("codec", "source", "subset", "vocoder"), revised_tdcf=True)
def asvspoof2021_df(root: Path) -> dict[str, SplitSource]:
    return layout_2021(root, "DF")
