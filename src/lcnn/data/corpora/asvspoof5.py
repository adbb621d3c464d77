"""ASVspoof 5 as distributed: the folder holding ``flac_T/``, ``flac_D/`` and ``flac_E_eval/`` (``flac_E_prog/``
held the challenge's progress phase), with the protocols there or in its ``ASVspoof5_protocols/``."""

from __future__ import annotations

from pathlib import Path

from lcnn.data.corpora.registry import SplitSource, register_corpus
from lcnn.errors import DataError

#: Each split's protocol and its audio folders, the first present one taken.
FILES = {
    "train": ("ASVspoof5.train.tsv", ("flac_T",)),
    "dev": ("ASVspoof5.dev.track_1.tsv", ("flac_D",)),
    "eval": ("ASVspoof5.eval.track_1.tsv", ("flac_E_eval", "flac_E_prog")),
}
#: The organisers' ASV error rates (Pfa, Pmiss, Pfa of spoofs) for the min t-DCF of a CM alone.
ASV_RATES = (0.01881016557566423, 0.01880141010575793, 0.4607082907604729)


@register_corpus("asvspoof5", conditions=("gender", "codec", "codec_q", "attack_tag"), revised_tdcf=True,
                 asv_rates=ASV_RATES)  # fmt: skip
def asvspoof5(root: Path) -> dict[str, SplitSource]:
    sources = {}
    for split, (protocol, audio) in FILES.items():
        protocols = [d / protocol for d in (root, root / "ASVspoof5_protocols")]
        audio_dirs = [root / name for name in audio]
        sources[split] = SplitSource(next((p for p in protocols if p.is_file()), protocols[0]),
                                     next((d for d in audio_dirs if d.is_dir()), audio_dirs[0]))  # fmt: skip
    if not any(s.protocol.is_file() for s in sources.values()):
        names = ", ".join(protocol for protocol, _ in FILES.values())
        raise DataError(f"{root}: none of the ASVspoof 5 protocols ({names}) here or in {root / 'ASVspoof5_protocols'}")
    return sources
