"""The spoofing corpora, one module per family, each registered in :mod:`lcnn.data.corpora.registry` with its
layout, splits, conditions and t-DCF form. A new corpus is one module here, imported below."""

from lcnn.data.corpora import (  # noqa: F401 - registers each corpus
    asvspoof5,
    asvspoof2019,
    asvspoof2021,
    custom,
    fakeorreal,
    in_the_wild,
    minispoof,
    mlaad,
)
from lcnn.data.corpora.registry import (
    AUDIO_SUFFIXES,
    SPLITS,
    Corpus,
    SplitSource,
    corpora_help,
    get_corpus,
    list_corpora,
    register_corpus,
)

__all__ = ["AUDIO_SUFFIXES", "SPLITS", "Corpus", "SplitSource", "corpora_help", "get_corpus", "list_corpora",
           "register_corpus"]
