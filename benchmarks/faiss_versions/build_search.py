"""Build drbench's compressed indexes with whatever faiss this interpreter has; search; save.

Needs only faiss + numpy, so it runs in a bare venv per faiss-cpu version:
  VENV/bin/python build_search.py INPUTS OUTDIR [--mode drbench|explicit] [--seed 13] [--depth 1000]

--mode drbench   copies harness/index/faiss_index.py's build_index exactly (index_factory, inner
                 product, _seed_clustering, train on every vector, add in 16384-row chunks).
--mode pinned    the same, but index.train runs with one OpenMP thread and
                 faiss.cvar.distance_compute_blas_threshold = 0 (both restored afterwards): the
                 change RESULTS.md recommends for drbench's build_index.
--mode explicit  the same as drbench, plus every training parameter whose default a faiss release changed
                 set explicitly (see RESULTS.md): OPQ niter/niter_pq/niter_pq_0/max_train_points,
                 PQ cp.niter/max_points_per_centroid/min_points_per_centroid.
Writes OUTDIR/<faiss version>-<mode>-<factory>.npz: ids, scores (top depth), codes (the index's
stored bytes), opq_A (the learned rotation) and centroids (PQ codebooks).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import faiss
import numpy as np

FACTORIES = ("OPQ48,PQ48", "OPQ24,PQ24")
_ADD_CHUNK = 16384


# --- copied from harness/index/faiss_index.py (drbench at 171dc17) -------------------------------
def _sub_indexes(index):
    found = [faiss.downcast_index(index)]
    if hasattr(found[0], "quantizer"):
        found.append(faiss.downcast_index(found[0].quantizer))
    if isinstance(found[0], faiss.IndexPreTransform):
        found.append(faiss.downcast_index(found[0].index))
        for i in range(found[0].chain.size()):
            found.append(faiss.downcast_VectorTransform(found[0].chain.at(i)))
    return found


def _seed_clustering(index, seed):
    for sub in _sub_indexes(index):
        if hasattr(sub, "do_polysemous_training"):
            sub.do_polysemous_training = False
        for attr in ("cp", "pq", "ivf"):
            obj = getattr(sub, attr, None)
            if attr == "cp" and obj is not None:
                obj.seed = seed
            elif attr == "pq" and obj is not None and hasattr(obj, "cp"):
                obj.cp.seed = seed
# -------------------------------------------------------------------------------------------------


def _explicit(index):
    """Pin every k-means / OPQ knob to faiss 1.8.0's defaults (see RESULTS.md)."""
    for sub in _sub_indexes(index):
        if isinstance(sub, faiss.OPQMatrix):
            sub.niter, sub.niter_pq, sub.niter_pq_0 = 50, 4, 40
            sub.max_train_points = 256 * 256
        if isinstance(sub, faiss.IndexPQ):
            cp = sub.pq.cp
            cp.niter, cp.max_points_per_centroid, cp.min_points_per_centroid = 25, 256, 39


@contextlib.contextmanager
def deterministic_training():
    """One OpenMP thread (the official >= 1.14 wheels' OpenBLAS is OpenMP-threaded, and faiss's
    OPQ QR/SVD are only bit-reproducible single-threaded) and k-means assignment through BLAS in
    every faiss release (1.14.2's #5022 switched n*d < 128000, i.e. SciFact's PQ sub-spaces, to
    the sequential SIMD path). Both restored afterwards, so searching is untouched."""
    threads, threshold = faiss.omp_get_max_threads(), faiss.cvar.distance_compute_blas_threshold
    faiss.omp_set_num_threads(1)
    faiss.cvar.distance_compute_blas_threshold = 0
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)
        faiss.cvar.distance_compute_blas_threshold = threshold


def build(factory, vectors, seed, mode):
    index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    if mode == "explicit":
        _explicit(index)
    _seed_clustering(index, seed)
    if mode == "pinned":
        with deterministic_training():
            index.train(vectors)
    else:
        index.train(vectors)
    for start in range(0, len(vectors), _ADD_CHUNK):
        index.add(vectors[start:start + _ADD_CHUNK])
    return index


def describe(index):
    """The training parameters faiss actually used (for the record)."""
    out = {}
    for sub in _sub_indexes(index):
        if isinstance(sub, faiss.OPQMatrix):
            out["opq"] = {k: getattr(sub, k) for k in ("niter", "niter_pq", "niter_pq_0", "max_train_points")
                          if hasattr(sub, k)}
            out["opq"]["pq_is_shared"] = sub.pq is not None  # False: OPQ trains its own PQ (seed 1234)
        if isinstance(sub, faiss.IndexPQ):
            cp = sub.pq.cp
            out["pq_cp"] = {k: getattr(cp, k) for k in ("niter", "nredo", "seed", "max_points_per_centroid",
                                                         "min_points_per_centroid", "spherical", "int_centroids",
                                                         "update_index", "frozen_centroids", "decode_block_size")
                            if hasattr(cp, k)}
            out["pq_train_type"] = int(sub.pq.train_type)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("inputs", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--mode", default="drbench", choices=("drbench", "explicit", "pinned"))
    ap.add_argument("--seed", type=int, default=13)  # recipes/compression.toml [experiment] seed
    ap.add_argument("--depth", type=int, default=1000)  # recipes/compression.toml [eval] depth
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--factories", default=",".join(f.replace(",", "_") for f in FACTORIES),
                    help="comma-separated, with _ for the factory's own commas (OPQ48_PQ48,PQ48)")
    ap.add_argument("--blas-threshold", type=int, default=None,
                    help="set faiss.cvar.distance_compute_blas_threshold (0: k-means always assigns with BLAS, "
                         "in every faiss version; faiss >= 1.14.2 compares it with n*d instead of n, #5022)")
    ap.add_argument("--tag", default="", help="appended to the mode in file names (e.g. a BLAS core type)")
    args = ap.parse_args()
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    if args.blas_threshold is not None:
        faiss.cvar.distance_compute_blas_threshold = args.blas_threshold
    docs = np.ascontiguousarray(np.load(args.inputs / "docs.npy"), dtype=np.float32)
    queries = np.ascontiguousarray(np.load(args.inputs / "queries.npy"), dtype=np.float32)
    args.out.mkdir(parents=True, exist_ok=True)
    for factory in [f.replace("_", ",") for f in args.factories.split(",")]:
        t = time.perf_counter()
        index = build(factory, docs, args.seed, args.mode)
        scores, ids = index.search(queries, min(args.depth, index.ntotal))
        pre = faiss.downcast_index(index)
        if isinstance(pre, faiss.IndexPreTransform):
            inner = faiss.downcast_index(pre.index)
            opq_a = faiss.vector_to_array(faiss.downcast_VectorTransform(pre.chain.at(0)).A)
        else:
            inner, opq_a = pre, np.zeros(1, dtype=np.float32)
        codes = faiss.vector_to_array(inner.codes).reshape(index.ntotal, -1)
        name = f"{faiss.__version__}-{args.mode}{args.tag}-{factory.replace(',', '_')}"
        np.savez_compressed(args.out / f"{name}.npz", ids=ids, scores=scores, codes=codes,
                            opq_A=opq_a,
                            centroids=faiss.vector_to_array(inner.pq.centroids))
        (args.out / f"{name}.json").write_text(json.dumps(
            {"faiss": faiss.__version__, "numpy": np.__version__, "mode": args.mode, "factory": factory,
             "seed": args.seed, "params": describe(index), "seconds": time.perf_counter() - t}, indent=1))
        print(name, f"{time.perf_counter() - t:.1f}s", describe(index))


if __name__ == "__main__":
    main()
