"""Build, train and search faiss indexes described by factory strings (inner product).

The only module in drbench that imports faiss. With `gpu=N` (a run on CUDA) an index is built
and searched on GPU N when the installed faiss has GPUs (`faiss.get_num_gpus()`, faiss-gpu), and
on the CPU otherwise, or for index types faiss has no GPU version of (PQ without IVF, HNSW).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from harness.errors import IndexBuildError

_ADD_CHUNK = 16384


def _faiss() -> Any:
    import faiss  # deferred: `drbench validate` only needs it for factory checks

    return faiss


# How compressed indexes train their codebooks; part of the key of every compressed run
# and of every model trained against a compressed index. 2: on one OpenMP thread with k-means
# assignment always through BLAS (`_reproducible_codes`), so a faiss release gives the same codes at
# any thread count; 1 (before): faiss's defaults, whose codes changed with the thread count and
# between releases (benchmarks/faiss_versions).
CODEBOOK_VERSION = 2


def codebook_key(factory: str) -> dict[str, int]:
    """The part of a run's or model's key that depends on how `factory` trains its codes: nothing for
    Flat (it stores the vectors), the codebook version for every other index.

    >>> codebook_key("Flat"), codebook_key("OPQ48,PQ48")
    ({}, {'codebooks': 2})
    """
    return {} if factory == "Flat" else {"codebooks": CODEBOOK_VERSION}


def uses_nprobe(factory: str) -> bool:
    """Whether `factory` has inverted lists (IVF), whose search visits `[eval] nprobe` of them."""
    return "IVF" in factory


def search_key(factory: str, nprobe: int) -> dict[str, int]:
    """The part of a run's or model's key that depends on how `factory` is searched: the
    `nprobe` of an IVF index, nothing for the others.

    >>> search_key("Flat", 16), search_key("IVF256,PQ48", 16)
    ({}, {'nprobe': 16})
    """
    return {"nprobe": nprobe} if uses_nprobe(factory) else {}


def faiss_build() -> str:
    """The faiss release, the SIMD level it runs with and the kernel of the OpenBLAS it bundles
    (`1.15.1 AVX512_VPOPCNT OpenBLAS-Zen`): stored with every dense run, since compressed indexes'
    codebooks differ between faiss releases and between BLAS kernels (CPUs)."""
    faiss = _faiss()
    config = getattr(faiss, "SIMDConfig", None)  # faiss >= 1.12 dispatches SIMD at run time
    if config is not None and hasattr(config, "get_level_name"):
        level = config.get_level_name()
    else:
        level = " ".join(o for o in faiss.get_compile_options().split() if o not in ("OPTIMIZE", "DD")) or "generic"
    kernel = _openblas_kernel(faiss)
    return f"{faiss.__version__} {level}" + (f" OpenBLAS-{kernel}" if kernel else "")


def _openblas_kernel(faiss: Any) -> str | None:
    """The CPU kernel (`Zen`, `SkylakeX`, `Haswell`) of the OpenBLAS a faiss-cpu wheel bundles, which
    OpenBLAS picks per CPU at load time; None where faiss links another BLAS."""
    import ctypes
    import glob

    libs = os.path.join(os.path.dirname(os.path.dirname(faiss.__file__)), "faiss_cpu.libs")
    for path in sorted(glob.glob(os.path.join(libs, "libopenblas*"))):
        try:
            corename = ctypes.CDLL(path).openblas_get_corename
        except (OSError, AttributeError):
            continue
        corename.restype = ctypes.c_char_p
        return corename().decode(errors="replace")
    return None


@contextlib.contextmanager
def _reproducible_codes(faiss: Any):
    """One OpenMP thread, and k-means assignment always through BLAS, while a compressed index
    trains its codebooks (and while its codes are decoded, `stored_vectors`).

    faiss's OPQ rotation (LAPACK QR/SVD) is only bit-reproducible on one thread, and the
    OpenMP-threaded OpenBLAS of faiss-cpu >= 1.14 made the codes depend on the thread count;
    faiss >= 1.14.2 also switched small k-means assignments from BLAS to a SIMD loop. With both
    settings, faiss-cpu 1.10 to 1.15.1 train identical codebooks at any thread count on one CPU
    kernel (benchmarks/faiss_versions/RESULTS.md, section 3), and OPQ trains faster; encoding then
    gives the same codes at 1, 2 and 4 threads (`benchmarks/faiss_versions/threads.py`), so `add`
    keeps its threads. Decoding does not: OPQ's inverse rotation is a threaded sgemm whose
    rounding moved half of SciFact's decoded vectors by up to 1e-7 at 4 threads against 1, and ADORE
    trains on those vectors. Both settings are restored.
    """
    threads, threshold = faiss.omp_get_max_threads(), faiss.cvar.distance_compute_blas_threshold
    faiss.omp_set_num_threads(1)
    faiss.cvar.distance_compute_blas_threshold = 0
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)
        faiss.cvar.distance_compute_blas_threshold = threshold


def check_factory(factory: str, dim: int, n_docs: int | None = None) -> None:
    """Raise IndexBuildError if `factory` cannot index `n_docs` `dim`-dimensional vectors.

    >>> check_factory("PQ8", 32)
    """
    for match in re.finditer(r"(?<![A-Za-z])(OPQ|PQ)(\d+)", factory):
        m = int(match.group(2))
        if m == 0 or dim % m:
            divisors = ", ".join(str(d) for d in range(1, dim + 1) if dim % d == 0 and d <= 96)
            raise IndexBuildError(f"index {factory!r}: {match.group(1)}{m} needs M to divide the embedding "
                                  f"dimension {dim}; use one of {divisors}")
    ivf = re.search(r"IVF(\d+)", factory)
    if ivf and n_docs is not None and int(ivf.group(1)) > n_docs:
        raise IndexBuildError(f"index {factory!r}: {ivf.group(1)} inverted lists for {n_docs:,} documents; "
                              f"use at most {n_docs:,} (about sqrt(N) = {int(n_docs ** 0.5)} is usual)")
    faiss = _faiss()
    try:
        faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise IndexBuildError(f"faiss rejects index {factory!r} for {dim}-dim vectors: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    """The readable tail of a faiss C++ error ("could not parse index string X", ...)."""
    text = " ".join(str(exc).split())
    for marker in ("Error: ", " at /"):
        if marker in text:
            text = text.split(marker)[-1]
    return text.split(": ", 1)[-1] if text.count(":") > 1 else text


@dataclass
class BuiltIndex:
    """A faiss index with what it cost to build."""

    factory: str
    index: Any
    build_seconds: float
    ntotal: int
    gpu: int | None = None  # the GPU the index lives on, if any
    resources: Any = None  # faiss's GPU resources, kept alive as long as the index
    max_norm: float | None = None  # the largest document norm of a Flat index, once asked (`_max_norm`)


def build_index(factory: str, vectors: np.ndarray, *, seed: int, train_sample: int = 0, nprobe: int = 16,
                progress: Callable[[int], None] | None = None, gpu: int | None = None) -> BuiltIndex:
    """Build `factory` over `vectors` (float32, one row per document; a memory map is read in
    chunks, never copied whole).

    Compressed indexes are trained on the whole corpus or, with `train_sample > 0`, on a
    seeded sample of it, on one thread (`_reproducible_codes`), so the same seed gives the same
    codes whatever the thread count. `gpu`: build on that GPU where
    faiss can (see the module docstring).
    """
    faiss = _faiss()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    start = time.perf_counter()
    try:
        index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError:
        check_factory(factory, vectors.shape[1])
        raise
    resources = None
    if gpu is not None:
        index, resources = _to_gpu(faiss, index, gpu, factory)
    if not index.is_trained:
        sample = vectors
        if 0 < train_sample < len(vectors):
            rows = np.random.default_rng(seed).choice(len(vectors), train_sample, replace=False)
            sample = vectors[np.sort(rows)]
        _seed_clustering(faiss, index, seed)
        try:
            with _captured_stderr() as notes, _reproducible_codes(faiss):
                index.train(sample)
        except RuntimeError as exc:
            raise IndexBuildError(f"cannot train index {factory!r} on {len(sample)} vectors: "
                                  f"{_reason(exc)}") from None
        if notes:
            repeats = f" ({len(notes)} lines like it)" if len(notes) > 1 else ""
            print(f"faiss: {notes[0]}{repeats}", file=sys.stderr)
    for start_row in range(0, len(vectors), _ADD_CHUNK):
        chunk = vectors[start_row:start_row + _ADD_CHUNK]
        index.add(chunk)
        if progress:
            progress(len(chunk))
    if uses_nprobe(factory):
        faiss.ParameterSpace().set_index_parameter(index, "nprobe", nprobe)
    return BuiltIndex(factory, index, time.perf_counter() - start, index.ntotal,
                      gpu if resources is not None else None, resources)


def _to_gpu(faiss: Any, index: Any, gpu: int, factory: str) -> tuple[Any, Any]:
    """(`index` on GPU `gpu`, its resources), or (`index`, None) where that cannot be."""
    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() <= gpu:
        return index, None  # faiss-cpu, or fewer GPUs than asked: the CPU index is the answer
    resources = faiss.StandardGpuResources()
    try:
        return faiss.index_cpu_to_gpu(resources, gpu, index), resources
    except RuntimeError as exc:
        print(f"faiss: no GPU version of {factory!r} ({_reason(exc)}); it runs on the CPU", file=sys.stderr)
        return index, None


def _on_cpu(built: BuiltIndex) -> Any:
    """The index itself, or a CPU copy of a GPU index (to read codes and vectors back)."""
    return built.index if built.gpu is None else _faiss().index_gpu_to_cpu(built.index)


@contextlib.contextmanager
def _captured_stderr():
    """Collect faiss's C++ stderr lines (one k-means warning per sub-quantizer) so they can be
    reported once instead of scrolling a progress display away."""
    notes: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield notes
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode(errors="replace")
            notes.extend(line.strip() for line in text.splitlines() if line.strip())


def _seed_clustering(faiss: Any, index: Any, seed: int) -> None:
    """Point every k-means faiss runs inside `index` at our seed (faiss defaults to 1234).

    Also skips IndexPQ's polysemous training: it only reorders centroids for Hamming-distance
    search, which drbench never uses (ADC results are identical), and costs ~1 s per sub-quantizer.
    """
    for sub in _sub_indexes(faiss, index):
        if hasattr(sub, "do_polysemous_training"):  # IndexPQ, IndexIVFPQ
            sub.do_polysemous_training = False
        for attr in ("cp", "pq", "ivf"):
            obj = getattr(sub, attr, None)
            if attr == "cp" and obj is not None:
                obj.seed = seed
            elif attr == "pq" and obj is not None and hasattr(obj, "cp"):
                obj.cp.seed = seed


def _sub_indexes(faiss: Any, index: Any) -> list[Any]:
    found = [faiss.downcast_index(index)]
    if hasattr(found[0], "quantizer"):
        found.append(faiss.downcast_index(found[0].quantizer))
    if isinstance(found[0], faiss.IndexPreTransform):
        found.append(faiss.downcast_index(found[0].index))
        for i in range(found[0].chain.size()):
            found.append(faiss.downcast_VectorTransform(found[0].chain.at(i)))
    return found


def search(built: BuiltIndex, queries: np.ndarray, k: int, *, batch_size: int = 256,
           progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Top-`k` inner-product search in batches of `batch_size`; returns (scores, row ids, seconds).

    Row ids are -1 where the index has fewer than `k` reachable documents. A Flat index on the
    CPU is searched through BLAS and answered exactly as faiss's per-pair path would
    (`_flat_search`), in batches sized by `flat_batch`; `batch_size` then only groups the
    queries faiss would score through BLAS itself (see `_faiss_takes_blas`).
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(k, built.ntotal)
    scores = np.empty((len(queries), k), dtype=np.float32)
    ids = np.empty((len(queries), k), dtype=np.int64)
    start = time.perf_counter()
    if _is_cpu_flat(built) and k > 0:
        _flat_search(built, queries, k, batch_size, scores, ids, progress)
    else:
        for row in range(0, len(queries), batch_size):
            batch = queries[row:row + batch_size]
            scores[row:row + len(batch)], ids[row:row + len(batch)] = built.index.search(batch, k)
            if progress:
                progress(len(batch))
    return scores, ids, time.perf_counter() - start


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int,
                 gpu: int | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Exact inner-product top-`k` (a Flat index, which trains nothing, so no seed matters):
    what dev scores, dense mining and the compressed indexes' overlap are measured with."""
    return search(build_index("Flat", vectors, seed=0, gpu=gpu), queries, k)


# Memory a Flat search batch may hold in candidate lists (`flat_batch`), and the most queries
# per call: faiss's BLAS path scores 4,096 queries (`distance_compute_blas_query_bs`) against
# 1,024 documents at a time, so a bigger call is cut into those anyway.
_FLAT_BATCH_BYTES = 64 << 20
_FLAT_BATCH_MAX = 4096
# Candidates past `k` that the BLAS pass keeps, so the exact top-`k` is among them (`_flat_search`).
_FLAT_MARGIN = 32
# Where BLAS pays (`_rescoring_pays`): a corpus of at least 32 MiB (the per-pair path streams it
# from memory for every query), with at least 8 documents per rescored candidate.
_PER_PAIR_BYTES = 32 << 20
_DOCS_PER_CANDIDATE = 8


def flat_batch(dim: int, k: int, threshold: int = 128000) -> int:
    """Queries per call of an exact (Flat) search of depth `k` over `dim`-dimensional vectors.

    Enough that queries x dim reaches faiss's BLAS threshold (`threshold`, faiss-cpu 1.15's
    `distance_compute_blas_threshold`), below which faiss scores one query-document pair at a time,
    several times slower (benchmarks/SCALE.md, Search); at least 1,024 queries, since BLAS amortises
    each block of documents over more queries (1.42 against 2.3 ms per query at 300,000 documents,
    1,024 against 334 queries); at most faiss's own BLAS query block, and at most what keeps the
    candidate lists of the batch (a reservoir of 2 x (k + margin) (score, id) pairs per query in
    faiss, the rescored list beside it) under 64 MiB. faiss scores in blocks of 1,024 documents, so
    the batch needs no room for a batch x corpus score matrix.

    >>> flat_batch(384, 1000), flat_batch(32, 10), flat_batch(384, 100000), flat_batch(200000, 10)
    (1024, 4000, 18, 83)
    """
    per_query = 4 * dim + 12 * 3 * (k + _FLAT_MARGIN + 1)
    blas = -(-threshold // dim)
    return max(1, min(max(blas, 1024), _FLAT_BATCH_MAX, _FLAT_BATCH_BYTES // per_query))


def _is_cpu_flat(built: BuiltIndex) -> bool:
    """Whether `built` is an exact inner-product index faiss searches on the CPU (`Flat`)."""
    faiss = _faiss()
    index = faiss.downcast_index(built.index)
    return (built.gpu is None and type(index) in (faiss.IndexFlat, faiss.IndexFlatIP)
            and index.metric_type == faiss.METRIC_INNER_PRODUCT)


def _faiss_takes_blas(faiss: Any, n_queries: int, dim: int, ntotal: int) -> bool:
    """Whether faiss-cpu 1.15 scores a Flat inner-product search of `n_queries` through BLAS by
    itself (`faiss/utils/distances.cpp`, `knn_inner_product`): when queries x dim reaches
    `distance_compute_blas_threshold`, or with fewer queries than OpenMP threads over at least
    max(10,000, threads x 1,024) documents (its database-parallel sgemm)."""
    threads = faiss.omp_get_max_threads()
    db_parallel = 1 < threads and n_queries < threads and ntotal >= max(10000, threads * 1024)
    return db_parallel or n_queries * dim >= faiss.cvar.distance_compute_blas_threshold


def _flat_search(built: BuiltIndex, queries: np.ndarray, k: int, batch_size: int, scores: np.ndarray,
                 ids: np.ndarray, progress: Callable[[int], None] | None) -> None:
    """Fill `scores` and `ids` with the top-`k` of a CPU Flat index, as faiss answers them.

    faiss scores a call through BLAS (sgemm) or one pair at a time with its SIMD dot product
    (`_faiss_takes_blas`), and the two round differently: on SciFact with MiniLM, scores differ by
    up to 3e-7 and near-ties swap (46 of 300 queries at depth 1000), and sgemm's rounding also
    depends on the call's shape. drbench's 256-query batches took the per-pair path below 500
    dimensions, several times slower on a corpus that outgrows the CPU's caches. So the batches of
    `batch_size` that faiss scores through BLAS itself are searched as they always were, and the
    others are answered by `_exact_topk`, whose result is the per-pair path's, bit for bit, at BLAS
    speed, where that pays (`_rescoring_pays`: a corpus that outgrows the CPU's caches).
    """
    faiss, dim = _faiss(), queries.shape[1]
    rescore = _rescoring_pays(built.ntotal, dim, k)
    pending: list[int] = []  # rows faiss would score pair by pair, searched in `flat_batch` groups
    step = flat_batch(dim, k, faiss.cvar.distance_compute_blas_threshold)

    def flush() -> None:
        rows = np.asarray(pending, dtype=np.int64)
        for start in range(0, len(rows), step):
            part = rows[start:start + step]
            scores[part], ids[part] = _exact_topk(faiss, built, queries[part], k)
            if progress:
                progress(len(part))
        pending.clear()

    for row in range(0, len(queries), batch_size):
        batch = queries[row:row + batch_size]
        if not rescore or _faiss_takes_blas(faiss, len(batch), dim, built.ntotal):
            scores[row:row + len(batch)], ids[row:row + len(batch)] = built.index.search(batch, k)
            if progress:
                progress(len(batch))
        else:
            pending.extend(range(row, row + len(batch)))
            if len(pending) >= step:
                flush()
    if pending:
        flush()


def _rescoring_pays(ntotal: int, dim: int, k: int) -> bool:
    """Whether BLAS plus rescoring beats faiss's per-pair path on `ntotal` documents at depth `k`.

    The per-pair path reads the whole corpus for every query: as fast as BLAS while the corpus stays
    in the CPU's caches (SciFact, 8 MB: 0.36 ms per query against 0.27 for BLAS alone, at depth 1000),
    several times slower once it streams from memory (300,000 documents, 460 MB: 10.2 against
    1.4 ms). Rescoring costs about what the per-pair path spends on 4 to 8 documents per candidate.
    Measured on a loaded 2-core machine (benchmarks/README.md, Search).

    >>> _rescoring_pays(5183, 384, 1000), _rescoring_pays(300000, 384, 1000), _rescoring_pays(30000, 384, 5000)
    (False, True, False)
    """
    return ntotal * dim * 4 >= _PER_PAIR_BYTES and ntotal >= _DOCS_PER_CANDIDATE * (k + _FLAT_MARGIN)


def _exact_topk(faiss: Any, built: BuiltIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top-`k` faiss's per-pair (SIMD) path returns for `queries`, computed through BLAS.

    BLAS ranks the top `k` + margin candidates; faiss's own per-pair dot product
    (`knn_inner_products_by_idx`, the function its SIMD search calls) rescores them, in ascending
    row order as the scan meets them, and its heap orders them as the search's does (score, then
    row). Any evaluation order of a d-term dot product is within gamma_d |q| |x| of the exact value
    (Higham, Accuracy and Stability, 3.1), so two orders are within twice that: a document BLAS
    left out scores at most the last candidate's BLAS score plus that. A query whose rescored k-th
    score clears that bound, with no tie at k, has exactly the per-pair path's answer. The others
    (documents packed closer than the bound, as in a very large corpus) are retried with 8 times
    the margin, and past 64 x (`k` + 32) candidates searched by the per-pair path itself.
    """
    vals = np.empty((len(queries), k), dtype=np.float32)
    rows = np.empty((len(queries), k), dtype=np.int64)
    todo = np.arange(len(queries))
    margin = _FLAT_MARGIN
    while len(todo):
        depth = min(built.ntotal, k + margin)
        found, found_rows, exact = _rescored(faiss, built, queries[todo], k, depth)
        vals[todo[exact]], rows[todo[exact]] = found[exact], found_rows[exact]
        todo = todo[~exact]
        if len(todo) and (depth == built.ntotal or margin > 64 * (k + _FLAT_MARGIN)):
            vals[todo], rows[todo] = _per_pair_search(faiss, built, queries[todo], k)
            break
        margin *= 8
    return vals, rows


def _rescored(faiss: Any, built: BuiltIndex, queries: np.ndarray, k: int,
              depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores, rows, exact): the per-pair path's top-`k` among BLAS's top `depth`, and whether it
    is the per-pair path's top-`k` of the whole index (`_exact_topk`)."""
    n, dim = queries.shape
    with _blas_scoring(faiss):
        blas_scores, candidates = built.index.search(queries, depth)
    candidates.sort(axis=1)
    want = min(k + 1, depth)  # one past k shows a tie at the cut
    vals = np.empty((n, want), dtype=np.float32)
    rows = np.empty((n, want), dtype=np.int64)
    xb = faiss.downcast_index(built.index).get_xb()
    faiss.knn_inner_products_by_idx(faiss.swig_ptr(queries), xb, faiss.swig_ptr(candidates), dim, n,
                                    built.ntotal, depth, want, faiss.swig_ptr(vals), faiss.swig_ptr(rows), depth)
    exact = np.ones(n, dtype=bool)
    if want > k:
        exact &= vals[:, k] < vals[:, k - 1]
    if depth < built.ntotal:
        unit = dim * 2.0 ** -24
        bound = 2 * 2 * unit / (1 - unit) * np.linalg.norm(queries, axis=1) * _max_norm(built)  # 2x to spare
        exact &= vals[:, k - 1] > blas_scores[:, -1] + bound
    return vals[:, :k], rows[:, :k], exact


def _per_pair_search(faiss: Any, built: BuiltIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """faiss's per-pair (SIMD) search of `queries`, padded to as many rows as OpenMP threads, below
    which faiss 1.15 takes its database-parallel sgemm instead (`_faiss_takes_blas`)."""
    threads = faiss.omp_get_max_threads()
    padded = queries if len(queries) >= threads else np.concatenate([queries] + [queries[:1]] * threads)
    threshold = faiss.cvar.distance_compute_blas_threshold
    faiss.cvar.distance_compute_blas_threshold = 2 ** 31 - 1
    try:
        vals, rows = built.index.search(np.ascontiguousarray(padded), k)
    finally:
        faiss.cvar.distance_compute_blas_threshold = threshold
    return vals[:len(queries)], rows[:len(queries)]


@contextlib.contextmanager
def _blas_scoring(faiss: Any):
    """faiss's Flat search through BLAS whatever the number of queries (threshold 0), restored after."""
    threshold = faiss.cvar.distance_compute_blas_threshold
    faiss.cvar.distance_compute_blas_threshold = 0
    try:
        yield
    finally:
        faiss.cvar.distance_compute_blas_threshold = threshold


def _max_norm(built: BuiltIndex) -> float:
    """The largest document norm of a Flat index (computed once, kept on `built`)."""
    if built.max_norm is None:
        faiss = _faiss()
        xb = faiss.rev_swig_ptr(faiss.downcast_index(built.index).get_xb(), built.ntotal * built.index.d)
        xb = xb.reshape(built.ntotal, built.index.d)
        built.max_norm = max((float(np.linalg.norm(xb[i:i + _ADD_CHUNK], axis=1).max())
                              for i in range(0, built.ntotal, _ADD_CHUNK)), default=0.0)
    return built.max_norm


def code_size(built: BuiltIndex) -> int:
    """Bytes per stored vector (the code size faiss keeps per document)."""
    faiss = _faiss()
    index = faiss.downcast_index(_on_cpu(built))
    if isinstance(index, faiss.IndexPreTransform):
        index = faiss.downcast_index(index.index)
    return int(getattr(index, "code_size", index.d * 4))


def stored_vectors(built: BuiltIndex) -> np.ndarray:
    """The document vectors the index actually scores with: the originals for Flat/HNSW, the
    decoded codes for PQ/OPQ/IVF-PQ. Compression-aware ADORE scores against exactly these."""
    faiss = _faiss()
    index = faiss.downcast_index(_on_cpu(built))
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexPreTransform) else index
    if hasattr(inner, "make_direct_map"):
        inner.make_direct_map()  # IVF indexes cannot reconstruct without it
    with _reproducible_codes(faiss):  # the same vectors at any thread count
        return np.ascontiguousarray(index.reconstruct_n(0, built.ntotal), dtype=np.float32)
