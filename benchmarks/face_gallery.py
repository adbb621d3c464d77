"""Gallery search time and memory: exact (chunked matrix product, numpy) against an HNSW index (faiss-cpu, the
``ann`` extra), on random unit embeddings (256-d), queries that are gallery rows plus noise (their own row is
the right answer). Recall@1 of the index is measured against the exact answer.

usage: python benchmarks/face_gallery.py [--sizes 1000 100000 1000000] [--queries 200] [--threads 1] [--no-ann]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from lcnn.faces.gallery import Gallery, exact_top_k, unit


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-ann", action="store_true")
    ap.add_argument("--ann-max", type=int, default=10**7, help="skip the index above this size")
    args = ap.parse_args()
    import os

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    rng = np.random.default_rng(0)
    print("| gallery | embeddings MB | exact ms / query (batch of queries) | exact ms (one query) | HNSW build s | "
          "HNSW ms / query | HNSW recall@1 | peak RSS MB |\n|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        emb = unit(rng.standard_normal((n, 256), dtype=np.float32))
        picks = rng.integers(0, n, args.queries)
        queries = unit(emb[picks] + 0.05 * rng.standard_normal((args.queries, 256), dtype=np.float32))
        start = time.perf_counter()
        exact_i, _ = exact_top_k(queries, emb, 5)
        batch_ms = 1000 * (time.perf_counter() - start) / args.queries
        start = time.perf_counter()
        for q in queries[:20]:
            exact_top_k(q[None], emb, 5)
        one_ms = 1000 * (time.perf_counter() - start) / 20
        assert (exact_i[:, 0] == picks).mean() > 0.99
        cells = ["-", "-", "-"]
        if not args.no_ann and n <= args.ann_max:
            import faiss

            faiss.omp_set_num_threads(args.threads)
            g = Gallery(emb, np.arange(n).astype(str), np.full(n, ""), "random", False)
            start = time.perf_counter()
            g.build_index()
            build = time.perf_counter() - start
            start = time.perf_counter()
            ann_i, _ = g.nearest(queries, 5)
            ann_ms = 1000 * (time.perf_counter() - start) / args.queries
            cells = [f"{build:.1f}", f"{ann_ms:.3f}", f"{(ann_i[:, 0] == exact_i[:, 0]).mean():.3f}"]
        print(f"| {n:,} | {emb.nbytes / 2**20:.0f} | {batch_ms:.3f} | {one_ms:.3f} | {' | '.join(cells)} | "
              f"{rss_mb():.0f} |", flush=True)


if __name__ == "__main__":
    main()
