"""Galleries for 1:N face search: enrolled embeddings with their identities, exact or approximate search.

A gallery file (``.npz``, no pickled objects) holds unit-length float32 embeddings, each row's identity and
source image, the model it was made with (a fingerprint of the checkpoint: a gallery only takes queries and
new people from the same model) and whether the photos were aligned. Search ranks identities by cosine
similarity to their nearest enrolled image; a query whose best identity scores below the gallery's
threshold is ``unknown``. The threshold is the equal-error point of the gallery's own genuine (same
identity) and impostor (different identities) pairs, recomputed whenever people are added.

Exact search is one matrix product (chunked over the gallery, so memory stays bounded); with the ``ann``
extra (``faiss-cpu``) an HNSW graph index answers approximately in time that grows slowly with the gallery.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lcnn.errors import DataError, UserError
from lcnn.io import atomic_path
from lcnn.metrics import compute_eer

__all__ = ["Gallery", "Match", "exact_top_k", "fingerprint", "unit"]

CHUNK = 65536  # gallery rows per matrix product in exact search
PAIR_SAMPLE = 3000  # at most this many rows (seeded sample) give the threshold's genuine and impostor pairs


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, float32."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def fingerprint(checkpoint: str | Path, arch: str) -> str:
    """What a gallery records of the model that made it: the architecture and the checkpoint file's hash."""
    path = Path(checkpoint)
    path = path / "model.safetensors" if path.is_dir() else path  # a Hub-layout folder (lcnn.hub): its weights
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return f"{arch} sha256:{digest}"


@dataclass
class Match:
    identity: str
    similarity: float
    image: str


def exact_top_k(queries: np.ndarray, gallery: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar gallery rows of each query (both unit rows): ``(indices, scores)``, ``(m, k)``,
    best first. Exact: every row is scored, ``CHUNK`` rows at a time."""
    k = min(k, len(gallery))
    best_i = np.zeros((len(queries), 0), np.int64)
    best_s = np.zeros((len(queries), 0), np.float32)
    for start in range(0, len(gallery), CHUNK):
        scores = queries @ gallery[start : start + CHUNK].T
        kk = min(k, scores.shape[1])
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        best_i = np.concatenate([best_i, top + start], 1)
        best_s = np.concatenate([best_s, np.take_along_axis(scores, top, 1)], 1)
        if best_s.shape[1] > k:
            keep = np.argpartition(-best_s, k - 1, axis=1)[:, :k]
            best_i, best_s = np.take_along_axis(best_i, keep, 1), np.take_along_axis(best_s, keep, 1)
    order = np.argsort(-best_s, axis=1, kind="stable")
    return np.take_along_axis(best_i, order, 1), np.take_along_axis(best_s, order, 1)


@dataclass
class Gallery:
    embeddings: np.ndarray  # (n, d) float32, unit rows
    identities: np.ndarray  # (n,) str
    images: np.ndarray  # (n,) str
    model: str  # the checkpoint's fingerprint
    align: bool
    threshold: float = float("nan")  # below it a query is unknown (nan: fewer than two people, or none with 2 images)

    def __post_init__(self) -> None:
        self.embeddings = np.asarray(self.embeddings, dtype=np.float32)
        if len(self.embeddings) and np.abs(np.linalg.norm(self.embeddings, axis=1) - 1).max() > 1e-5:
            self.embeddings = unit(self.embeddings)  # stored ones are unit already: loading keeps their bits
        self.identities = np.asarray(self.identities, dtype=str)
        self.images = np.asarray(self.images, dtype=str)
        self._index = None

    def __len__(self) -> int:
        return len(self.identities)

    @property
    def people(self) -> list[str]:
        return list(dict.fromkeys(self.identities.tolist()))

    # ---------------------------------------------------------------- files
    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, embeddings=self.embeddings, identities=self.identities, images=self.images,
                     model=np.array(self.model), align=np.array(self.align), threshold=np.array(self.threshold))

    @classmethod
    def load(cls, path: str | Path) -> Gallery:
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(z["embeddings"], z["identities"], z["images"], str(z["model"]), bool(z["align"]),
                           float(z["threshold"]))  # fmt: skip
        except FileNotFoundError:
            raise DataError(f"{path}: no such gallery (make one with lcnn faces enroll)") from None
        except (OSError, ValueError, KeyError) as err:
            raise DataError(f"{path}: not a gallery file ({err})") from None

    def extend(self, other: Gallery) -> Gallery:
        """This gallery with ``other``'s rows added (same model and alignment); the threshold recomputed."""
        if other.model != self.model or other.align != self.align:
            raise UserError(f"the gallery was made with {self.model} (align {self.align}); these embeddings with "
                            f"{other.model} (align {other.align}): enrol with the same checkpoint and --align")
        both = Gallery(np.concatenate([self.embeddings, other.embeddings]),
                       np.concatenate([self.identities, other.identities]),
                       np.concatenate([self.images, other.images]), self.model, self.align)  # fmt: skip
        return both.with_threshold()

    def with_threshold(self, seed: int = 0) -> Gallery:
        """The equal-error threshold of the gallery's genuine and impostor pairs (a seeded sample of rows in a
        large gallery)."""
        rows = np.arange(len(self))
        if len(rows) > PAIR_SAMPLE:
            rows = np.sort(np.random.default_rng(seed).choice(rows, PAIR_SAMPLE, replace=False))
        emb, ids = self.embeddings[rows], self.identities[rows]
        upper = np.triu_indices(len(rows), 1)
        scores = (emb @ emb.T)[upper]
        same = (ids[:, None] == ids[None, :])[upper]
        self.threshold = float(compute_eer(scores[same], scores[~same])[1]) if same.any() and (~same).any() \
            else float("nan")  # fmt: skip
        return self

    # ---------------------------------------------------------------- search
    def build_index(self, m: int = 32, ef_search: int = 128) -> None:
        """An HNSW index (faiss, the ``ann`` extra) over the embeddings, used by :meth:`search` from now on."""
        try:
            import faiss
        except ImportError:
            raise UserError("approximate search needs faiss: pip install 'lcnn[ann]' (or faiss-cpu)") from None
        index = faiss.IndexHNSWFlat(self.embeddings.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = ef_search
        index.add(self.embeddings)
        self._index = index

    def nearest(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest gallery rows of each query: exact, or through the index once built."""
        queries = unit(queries)
        if self._index is None:
            return exact_top_k(queries, self.embeddings, k)
        scores, indices = self._index.search(queries, min(k, len(self)))
        return indices, scores

    def search(self, queries: np.ndarray, top_k: int = 5, threshold: float | None = None) -> list[list[Match]]:
        """Per query, up to ``top_k`` identities, best first, each with its nearest image's similarity; a first
        match below ``threshold`` (default: the gallery's) is returned as identity ``unknown``."""
        threshold = self.threshold if threshold is None else threshold
        k = min(len(self), top_k * 8)
        results = []
        while True:
            indices, scores = self.nearest(queries, k)
            results = [self._by_identity(i, s, top_k) for i, s in zip(indices, scores)]
            if k >= len(self) or all(len(r) >= top_k for r in results):
                break
            k = min(len(self), k * 8)  # a few people fill the nearest rows: look further
        for matches in results:
            if matches and np.isfinite(threshold) and matches[0].similarity < threshold:
                matches.insert(0, Match("unknown", matches[0].similarity, ""))
                del matches[top_k:]
        return results

    def _by_identity(self, indices: np.ndarray, scores: np.ndarray, top_k: int) -> list[Match]:
        seen: dict[str, Match] = {}
        for i, s in zip(indices.tolist(), scores.tolist()):
            if i >= 0 and self.identities[i] not in seen:
                seen[self.identities[i]] = Match(str(self.identities[i]), float(s), str(self.images[i]))
        return list(seen.values())[:top_k]
