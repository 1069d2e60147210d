"""Does drbench's `build_index` give the same compressed codes at every faiss thread count?

Builds each factory over a corpus's cached embeddings at several OpenMP thread counts, once as
drbench does (codebooks trained on one thread with BLAS k-means,
`_reproducible_codes`) and once with faiss's defaults, and prints whether the PQ codes are
identical to the first thread count's, with the build time.

    python benchmarks/faiss_versions/threads.py EMBEDDINGS.npy --factory OPQ48,PQ48 --threads 1 2
"""

from __future__ import annotations

import argparse
import contextlib

import faiss
import numpy as np

from harness.index import faiss_index


def pq_codes(index) -> np.ndarray:
    """The (documents x code size) uint8 codes of a PQ or OPQ,PQ index."""
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexPreTransform):
        index = faiss.downcast_index(index.index)
    return faiss.vector_to_array(index.codes).reshape(index.ntotal, index.code_size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("embeddings", help="a cached corpus embedding matrix (.npy)")
    ap.add_argument("--factory", nargs="+", default=["OPQ48,PQ48", "OPQ24,PQ24"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--modes", nargs="+", default=["drbench", "faiss defaults"], choices=["drbench", "faiss defaults"])
    args = ap.parse_args()
    vectors = np.load(args.embeddings, mmap_mode="r")
    pinned = faiss_index._reproducible_codes
    print(f"faiss {faiss_index.faiss_build()}, {vectors.shape[0]:,} x {vectors.shape[1]} vectors")
    for mode in args.modes:
        faiss_index._reproducible_codes = pinned if mode == "drbench" else (lambda _f: contextlib.nullcontext())
        for factory in args.factory:
            first = None
            for threads in args.threads:
                faiss.omp_set_num_threads(threads)
                built = faiss_index.build_index(factory, vectors, seed=args.seed)
                codes = pq_codes(built.index)
                first = codes if first is None else first
                same = "identical" if np.array_equal(codes, first) else \
                    f"differ ({np.mean(np.any(codes != first, axis=1)):.1%} of documents)"
                print(f"{mode:15} {factory:12} {threads:2} threads: {built.build_seconds:6.1f} s, "
                      f"codes {same} to {args.threads[0]} thread(s)'", flush=True)
    faiss_index._reproducible_codes = pinned


if __name__ == "__main__":
    main()
