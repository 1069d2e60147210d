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
    """Top-`k` inner-product search in batches; returns (scores, row ids, seconds).

    Row ids are -1 where the index has fewer than `k` reachable documents.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(k, built.ntotal)
    scores = np.empty((len(queries), k), dtype=np.float32)
    ids = np.empty((len(queries), k), dtype=np.int64)
    start = time.perf_counter()
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
