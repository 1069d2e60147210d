"""Flat (exact) search speed and exactness: faiss's two inner-product paths on SciFact.

faiss-cpu scores a Flat search through BLAS (sgemm) only when a call's queries x dimension
reaches `faiss.cvar.distance_compute_blas_threshold` (128,000 in 1.15.1); below it each query
is scored against each document with a SIMD dot product. drbench's old 256-query batches at
384 dimensions (98,304) always missed BLAS. This script encodes SciFact's 5,183 documents and
300 test queries with the packaged all-MiniLM-L6-v2 once (fp32, drbench's Encoder, cached as
.npy in --workdir), then times, best of --repeats:

* `seq`: faiss's SIMD path (what drbench's searches at under 500 dimensions always took),
* `blas`: faiss's BLAS path over all queries at once,
* `drbench`: `harness.index.faiss_index.search` as it is in the checked-out tree,

at depth 1000 (evaluation) and 100, and checks that drbench's answer is bit-identical (row ids
and scores) to the SIMD path's, and how far the BLAS path's own scores and rankings are from it.
`--scale N` does the same on N synthetic unit vectors (the SCALE.md sample: 300,000 x 384).

    PYTHONPATH=. python benchmarks/bench_search.py --mirror ../shared/data/ir_datasets
    PYTHONPATH=. python benchmarks/bench_search.py --scale 300000 --queries 1000 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def scifact_vectors(workdir: Path, mirror: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(documents, test queries) of SciFact encoded by MiniLM in fp32, from `workdir` when there."""
    docs_file, queries_file = workdir / "scifact_docs.npy", workdir / "scifact_test_queries.npy"
    if not docs_file.exists() or not queries_file.exists():
        from harness.data.availability import resolve_mirror
        from harness.data.collection import load_collection
        from harness.model.encoder import Encoder
        from harness.model.spec import read_model_spec, resolve_model

        collection = load_collection("beir/scifact/test", resolve_mirror(mirror, None))
        spec = read_model_spec(resolve_model("minilm"))
        encoder = Encoder(spec.path, pooling=spec.pooling, normalize=spec.normalize, max_length=spec.max_seq_length)
        queries = encoder.encode([collection.queries[q] for q in sorted(collection.queries)])
        docs = encoder.encode(collection.doc_texts)
        workdir.mkdir(parents=True, exist_ok=True)
        np.save(queries_file, queries)
        np.save(docs_file, docs)
    return np.load(docs_file), np.load(queries_file)


def synthetic(n: int, n_queries: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n + n_queries, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x[:n], x[n:]


def faiss_batches(index, queries: np.ndarray, k: int, batch_size: int, threshold: int | None = None):
    """faiss's own answer in calls of `batch_size` queries (drbench's search before), with the BLAS
    threshold set to `threshold` during the calls (0: always BLAS) where given."""
    import faiss

    before = faiss.cvar.distance_compute_blas_threshold
    if threshold is not None:
        faiss.cvar.distance_compute_blas_threshold = threshold
    try:
        out = [index.search(np.ascontiguousarray(queries[i:i + batch_size]), k) for i in range(0, len(queries), batch_size)]
    finally:
        faiss.cvar.distance_compute_blas_threshold = before
    return np.concatenate([s for s, _ in out]), np.concatenate([r for _, r in out])


def best_of(repeats: int, fn) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def measure(docs: np.ndarray, queries: np.ndarray, depths: tuple[int, ...], repeats: int) -> list[dict]:
    from harness.index.faiss_index import build_index, flat_batch, search

    built = build_index("Flat", docs, seed=0)
    n, dim = queries.shape
    rows = []
    for k in depths:
        k = min(k, len(docs))
        t_old, old = best_of(repeats, lambda: faiss_batches(built.index, queries, k, 256))
        t_blas, blas = best_of(repeats, lambda: faiss_batches(built.index, queries, k, n, threshold=0))
        t_new, new = best_of(repeats, lambda: search(built, queries, k)[:2])
        identical = bool(np.array_equal(old[0], new[0]) and np.array_equal(old[1], new[1]))
        rows.append({
            "docs": len(docs), "queries": n, "dim": dim, "k": k, "batch": flat_batch(dim, k),
            "ms_per_query": {"faiss, 256-query calls (drbench before)": 1e3 * t_old / n,
                             "faiss BLAS, one call": 1e3 * t_blas / n, "drbench search": 1e3 * t_new / n},
            "speedup": t_old / t_new,
            "identical_to_before": identical,
            "blas_vs_per_pair": {
                "max_score_difference": float(np.abs(np.sort(blas[0], 1) - np.sort(old[0], 1)).max()),
                "queries_ranked_differently": int((blas[1] != old[1]).any(1).sum()),
                "queries_with_another_top_k": int(sum(set(a) != set(b) for a, b in zip(blas[1], old[1]))),
            },
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", default=None)
    parser.add_argument("--workdir", default="/tmp/drbench-bench-search")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=int, default=0, help="synthetic documents instead of SciFact")
    parser.add_argument("--queries", type=int, default=1000, help="synthetic queries (with --scale)")
    parser.add_argument("--depths", default="1000,100,10")
    args = parser.parse_args()
    import faiss

    depths = tuple(int(d) for d in args.depths.split(","))
    if args.scale:
        docs, queries = synthetic(args.scale, args.queries, 384)
    else:
        docs, queries = scifact_vectors(Path(args.workdir), args.mirror)
    rows = measure(docs, queries, depths, args.repeats)
    print(json.dumps({"faiss": faiss.__version__, "threads": faiss.omp_get_max_threads(),
                      "load_average": os.getloadavg(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
