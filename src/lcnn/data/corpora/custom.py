"""The user's own data: every split's protocol or CSV given with ``--protocol SPLIT=FILE``, audio under
``--data-dir``."""

from __future__ import annotations

from pathlib import Path

from lcnn.data.corpora.registry import SplitSource, register_corpus


@register_corpus("custom", note="with --protocol", needs_protocols=True)
def custom(root: Path) -> dict[str, SplitSource]:
    return {}  # the splits are the --protocol files (lcnn.data.asvspoof.resolve_sources)
