"""Identity similarity between two folders of faces, as face-generation papers report identity preservation:
the cosine similarity of a face model's embeddings of matching images (same relative name), or of every
image of one folder against every image of the other."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lcnn.errors import UserError
from lcnn.faces.folder import list_photos
from lcnn.faces.gallery import unit
from lcnn.io import atomic_path, atomic_write

__all__ = ["SimilarityResult", "identity_similarity"]

Embed = Callable[[list[Path]], tuple[np.ndarray, list[Path], list[str]]]


@dataclass
class SimilarityResult:
    mode: str  # "by name" or "all pairs"
    pairs: int
    mean: float
    std: float
    skipped: list[str]

    def __str__(self) -> str:
        text = f"identity similarity ({self.mode}, {self.pairs} pairs): {self.mean:.4f} ± {self.std:.4f}"
        return text + (f"; {len(self.skipped)} images skipped (no face)" if self.skipped else "")


def identity_similarity(embed: Embed, a_dir: Path, b_dir: Path, all_pairs: bool = False, plot: str | None = None,
                        out: str | None = None) -> SimilarityResult:  # fmt: skip
    """Mean and standard deviation of the cosine similarities; ``plot``: a histogram PNG; ``out``: a TSV of
    ``a_image b_image similarity``. ``embed`` gives ``(embeddings, paths embedded, skipped messages)``."""
    a_paths, b_paths = _photos(a_dir), _photos(b_dir)
    a_names = {p.relative_to(a_dir).with_suffix("").as_posix(): p for p in a_paths}
    b_names = {p.relative_to(b_dir).with_suffix("").as_posix(): p for p in b_paths}
    common = [n for n in a_names if n in b_names]
    by_name = bool(common) and not all_pairs
    if by_name:
        a_paths, b_paths = [a_names[n] for n in common], [b_names[n] for n in common]
    a_emb, a_done, a_skipped = embed(a_paths)
    b_emb, b_done, b_skipped = embed(b_paths)
    a_emb, b_emb = unit(a_emb), unit(b_emb)
    if by_name:
        a_row, b_row = {p: i for i, p in enumerate(a_done)}, {p: i for i, p in enumerate(b_done)}
        kept = [(a, b) for a, b in zip(a_paths, b_paths) if a in a_row and b in b_row]
        scores = np.array([a_emb[a_row[a]] @ b_emb[b_row[b]] for a, b in kept], dtype=np.float64)
    else:
        kept = [(a, b) for a in a_done for b in b_done]
        scores = (a_emb @ b_emb.T).astype(np.float64).reshape(-1)
    if not len(scores):
        raise UserError(f"{a_dir}, {b_dir}: no pairs of images with faces to compare")
    if out:
        lines = "".join(f"{a}\t{b}\t{s:.6f}\n" for (a, b), s in zip(kept, scores))
        atomic_write(out, lambda tmp: tmp.write_text(lines))
    if plot:
        _histogram(scores, plot, f"{a_dir.name} vs {b_dir.name}")
    return SimilarityResult("by name" if by_name else "all pairs", len(scores), float(scores.mean()),
                            float(scores.std()), a_skipped + b_skipped)  # fmt: skip


def _photos(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder of images")
    photos = list_photos(folder)
    if not photos:
        raise UserError(f"{folder}: no images")
    return photos


def _histogram(scores: np.ndarray, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(scores, bins=min(50, max(10, len(scores) // 5)), range=(-1, 1), color="#4a7ab5")
    ax.axvline(scores.mean(), color="k", linestyle="--", label=f"mean {scores.mean():.3f} ± {scores.std():.3f}")
    ax.set(xlabel="cosine similarity", ylabel="pairs", title=title)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
