"""harness.index.faiss_index: build, train and search factory strings (inner product)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import IndexBuildError
from harness.index.faiss_index import build_index, check_factory, code_size, search

DIM = 16


@pytest.fixture(scope="module", autouse=True)
def one_faiss_thread():
    """faiss's OpenMP threads spin against each other on a shared 2-core machine (OPQ 5x slower)."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((1000, DIM)).astype(np.float32)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((20, DIM)).astype(np.float32)


def test_flat_equals_brute_force_inner_product(vectors: np.ndarray, queries: np.ndarray) -> None:
    built = build_index("Flat", vectors, seed=0)
    scores, ids, seconds = search(built, queries, 10, batch_size=7)  # batches that do not divide 20
    exact = queries @ vectors.T
    expected_ids = np.argsort(-exact, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, np.take_along_axis(exact, expected_ids, axis=1), rtol=1e-5)
    assert built.ntotal == 1000 and seconds >= 0


def test_build_reports_progress_per_added_chunk(vectors: np.ndarray) -> None:
    added: list[int] = []
    build_index("Flat", vectors, seed=0, progress=added.append)
    assert sum(added) == len(vectors)


@pytest.mark.parametrize("factory", ["PQ4", "OPQ4,PQ4", "IVF8,PQ4"])
def test_compressed_indexes_are_deterministic_for_a_seed(vectors: np.ndarray, queries: np.ndarray,
                                                         factory: str) -> None:
    first, second, other = (search(build_index(factory, vectors, seed=s), queries, 10)
                            for s in (7, 7, 8))
    np.testing.assert_array_equal(first[1], second[1])
    np.testing.assert_array_equal(first[0], second[0])
    assert not np.array_equal(first[1], other[1])  # the seed reaches every k-means inside


def test_train_sample_is_seeded(vectors: np.ndarray, queries: np.ndarray) -> None:
    runs = [search(build_index("PQ4", vectors, seed=s, train_sample=300), queries, 10)[1]
            for s in (3, 3, 4)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])  # a different seed draws another sample


@pytest.mark.parametrize("factory, expected", [
    ("Flat", 4 * DIM), ("PQ8", 8), ("PQ8x4", 4), ("OPQ4,PQ4x4", 2), ("IVF4,PQ8", 8)])
def test_code_size_is_bytes_per_document(vectors: np.ndarray, factory: str, expected: int) -> None:
    assert code_size(build_index(factory, vectors, seed=0)) == expected


@pytest.mark.parametrize(("factory", "reason"), [
    ("Flatt", "faiss rejects index"), ("IVF", "faiss rejects index"), ("", "faiss rejects index"),
    ("PQ7", "PQ7 needs M to divide the embedding dimension"), ("OPQ4,PQ5", "PQ5 needs M to divide")])
def test_check_factory_rejects_bad_strings(factory: str, reason: str) -> None:
    with pytest.raises(IndexBuildError, match=reason) as err:
        check_factory(factory, DIM)
    assert "\n" not in str(err.value)


def test_check_factory_rejects_more_ivf_lists_than_documents() -> None:
    with pytest.raises(IndexBuildError, match="64 inverted lists for 20 documents"):
        check_factory("IVF64,PQ8", DIM, n_docs=20)
    check_factory("IVF16,PQ8", DIM, n_docs=20)


@pytest.mark.parametrize("factory", ["Flat", "PQ8", "PQ4x4", "OPQ4,PQ4", "IVF16,PQ8", "HNSW8"])
def test_check_factory_accepts_good_strings(factory: str) -> None:
    check_factory(factory, DIM)


def test_build_with_a_bad_string_raises_index_build_error(vectors: np.ndarray) -> None:
    with pytest.raises(IndexBuildError, match="'PQ5'"):
        build_index("PQ5", vectors, seed=0)


def test_more_lists_than_vectors_is_an_index_build_error(vectors: np.ndarray) -> None:
    with pytest.raises(IndexBuildError, match="cannot train index 'IVF64,Flat' on 20 vectors") as err:
        build_index("IVF64,Flat", vectors[:20], seed=0)
    assert "\n" not in str(err.value)


def test_k_larger_than_the_index_returns_every_document(vectors: np.ndarray,
                                                        queries: np.ndarray) -> None:
    built = build_index("Flat", vectors[:5], seed=0)
    scores, ids, _ = search(built, queries, 100)
    assert ids.shape == scores.shape == (len(queries), 5)
    assert all(sorted(row) == [0, 1, 2, 3, 4] for row in ids.tolist())


def test_unreachable_documents_come_back_as_minus_one(vectors: np.ndarray,
                                                      queries: np.ndarray) -> None:
    # probing one list of 16 leaves some of the k slots without a document
    built = build_index("IVF16,Flat", vectors, seed=0, nprobe=1)
    _, ids, _ = search(built, queries, 1000)
    assert ids.shape == (len(queries), 1000)
    assert (ids == -1).any() and ids.max() < 1000


# --- GPU placement (exercised with a stand-in faiss: no GPU is needed) -------------------------

class GpuFaiss:
    """Real faiss, claiming `gpus` GPUs; `index_cpu_to_gpu` records the move and keeps the CPU
    index (so search still works), refusing factories listed in `refuse` as faiss-gpu does."""

    def __init__(self, gpus: int, refuse: tuple[str, ...] = ()):
        import faiss

        self._faiss, self.gpus, self.refuse, self.moved = faiss, gpus, refuse, []

    def __getattr__(self, name: str):
        return getattr(self._faiss, name)

    def get_num_gpus(self) -> int:
        return self.gpus

    def StandardGpuResources(self) -> object:  # noqa: N802 - faiss's name
        return object()

    def index_cpu_to_gpu(self, resources: object, device: int, index):
        kind = type(self._faiss.downcast_index(index)).__name__
        if kind in self.refuse:
            raise RuntimeError(f"Error in ... : This index type is not implemented on GPU ({kind})")
        self.moved.append((device, kind))
        return index

    def index_gpu_to_cpu(self, index):
        return index


@pytest.mark.parametrize("gpus, asked, moved", [(2, 1, [(1, "IndexFlat")]), (0, 0, []), (1, None, [])])
def test_a_cuda_run_builds_on_its_gpu_where_faiss_has_one(monkeypatch: pytest.MonkeyPatch, vectors: np.ndarray,
                                                         queries: np.ndarray, gpus: int, asked, moved) -> None:
    from harness.index import faiss_index

    fake = GpuFaiss(gpus)
    monkeypatch.setattr(faiss_index, "_faiss", lambda: fake)
    built = build_index("Flat", vectors, seed=0, gpu=asked)
    assert fake.moved == moved and built.gpu == (asked if moved else None)
    assert code_size(built) == DIM * 4 and search(built, queries, 5)[1].shape == (20, 5)


def test_an_index_type_without_a_gpu_version_stays_on_the_cpu(monkeypatch: pytest.MonkeyPatch,
                                                              vectors: np.ndarray, capfd) -> None:
    from harness.index import faiss_index

    fake = GpuFaiss(1, refuse=("IndexPQ",))
    monkeypatch.setattr(faiss_index, "_faiss", lambda: fake)
    built = build_index("PQ4", vectors, seed=0, gpu=0)
    assert built.gpu is None and built.ntotal == len(vectors) and fake.moved == []
    assert "no GPU version of 'PQ4'" in capfd.readouterr().err


# --- reproducible codebooks -------------------------------------------------------------------

class TrainSpy:
    """Real faiss whose indexes record faiss's thread count and BLAS threshold while they train."""

    def __init__(self):
        import faiss

        self._faiss, self.seen = faiss, []

    def __getattr__(self, name: str):
        return getattr(self._faiss, name)

    def index_factory(self, *args):
        index = self._faiss.index_factory(*args)
        train = index.train

        def spied(x):
            self.seen.append((self._faiss.omp_get_max_threads(), self._faiss.cvar.distance_compute_blas_threshold))
            train(x)
        index.train = spied
        return index


@pytest.mark.parametrize("factory", ["PQ4", "OPQ4,PQ4", "IVF8,PQ4"])
def test_codebooks_train_on_one_thread_with_blas_kmeans_and_settings_come_back(
        monkeypatch: pytest.MonkeyPatch, vectors: np.ndarray, factory: str) -> None:
    # faiss >= 1.14's OpenMP-threaded OpenBLAS made OPQ's codes depend on the thread count, and
    # 1.14.2 moved small k-means assignments off BLAS (benchmarks/faiss_versions/RESULTS.md).
    import faiss

    from harness.index import faiss_index

    spy = TrainSpy()
    monkeypatch.setattr(faiss_index, "_faiss", lambda: spy)
    threshold = faiss.cvar.distance_compute_blas_threshold
    faiss.omp_set_num_threads(2)
    try:
        build_index(factory, vectors, seed=0)
        assert spy.seen == [(1, 0)]
        assert faiss.omp_get_max_threads() == 2 and faiss.cvar.distance_compute_blas_threshold == threshold
        with pytest.raises(IndexBuildError):  # restored when training fails too
            build_index(factory, vectors[:3], seed=0)
        assert faiss.omp_get_max_threads() == 2 and faiss.cvar.distance_compute_blas_threshold == threshold
    finally:
        faiss.omp_set_num_threads(1)


def test_faiss_build_names_release_simd_level_and_blas_kernel() -> None:
    import faiss

    from harness.index.faiss_index import faiss_build

    release, level, *blas = faiss_build().split()
    assert release == faiss.__version__ and level
    assert all(b.startswith("OpenBLAS-") and len(b) > len("OpenBLAS-") for b in blas)


# --- Flat search: through BLAS, answered as faiss's per-pair path answers ---------------------

def _faiss_batches(built, queries: np.ndarray, k: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """What faiss itself returns, called in batches of `batch_size` (drbench's search before)."""
    out = [built.index.search(np.ascontiguousarray(queries[i:i + batch_size]), k)
           for i in range(0, len(queries), batch_size)]
    return np.concatenate([s for s, _ in out]), np.concatenate([i for _, i in out])


def _unit(rows: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("dim, margin", [(32, 32), (384, 32), (384, 1), (768, 1)])
@pytest.mark.parametrize("threads", [1, 2])
def test_flat_search_is_bit_identical_to_faiss_in_the_old_batches(monkeypatch: pytest.MonkeyPatch, dim: int,
                                                                    margin: int, threads: int) -> None:
    """Scores and rows equal faiss's own answer to drbench's old calls (of 256 or 7 queries), at every depth
    (heap below 100, reservoir above), with every document twice (ties inside the top-k and at its
    cut), with a margin of 1 (candidates retried) and at 768 dims (where 256 x 768 reaches faiss's
    BLAS threshold, so full batches keep faiss's own BLAS answer)."""
    import faiss

    from harness.index import faiss_index

    monkeypatch.setattr(faiss_index, "_FLAT_MARGIN", margin)
    monkeypatch.setattr(faiss_index, "_DOCS_PER_CANDIDATE", 0)  # rescored whatever the corpus's size
    monkeypatch.setattr(faiss_index, "_PER_PAIR_BYTES", 0)
    faiss.omp_set_num_threads(threads)
    try:
        docs = _unit(600, dim, 2)
        docs[1::2] = docs[0::2]
        queries = _unit(300, dim, 3)
        built = build_index("Flat", docs, seed=0)
        for k in (1, 10, 99, 100, 250, 600):
            for batch_size in (256, 7):
                expected = _faiss_batches(built, queries, k, batch_size)
                scores, ids, _ = search(built, queries, k, batch_size=batch_size)
                np.testing.assert_array_equal(ids, expected[1], err_msg=f"k={k} batch {batch_size}")
                np.testing.assert_array_equal(scores, expected[0], err_msg=f"k={k} batch {batch_size}")
    finally:
        faiss.omp_set_num_threads(1)


def test_flat_search_scores_through_blas_and_rescores_pair_by_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    """Below faiss's threshold the candidates come from BLAS (threshold 0 during the call, restored
    after), and faiss's per-pair search is only the fallback; a corpus under 8 documents per
    candidate, or one the CPU's caches hold, keeps faiss's own call."""
    import faiss

    from harness.index import faiss_index

    seen, fallbacks = [], []
    monkeypatch.setattr(faiss_index, "_PER_PAIR_BYTES", 2000 * 64 * 4)  # this corpus outgrows the caches
    built = build_index("Flat", _unit(2000, 64, 4), seed=0)
    search_call = built.index.search

    def spied(x, k):
        seen.append(faiss.cvar.distance_compute_blas_threshold)
        return search_call(x, k)
    monkeypatch.setattr(built.index, "search", spied)
    per_pair = faiss_index._per_pair_search
    monkeypatch.setattr(faiss_index, "_per_pair_search", lambda *a: fallbacks.append(1) or per_pair(*a))
    search(built, _unit(50, 64, 5), 10)
    assert seen == [0] and not fallbacks and faiss.cvar.distance_compute_blas_threshold == 128000
    seen.clear()
    search(built, _unit(50, 64, 5), 1000)  # 2 documents per candidate: faiss's own call pays as well
    monkeypatch.setattr(faiss_index, "_PER_PAIR_BYTES", 2000 * 64 * 4 + 1)  # a corpus the caches hold
    search(built, _unit(50, 64, 5), 10)
    assert seen == [128000, 128000]


@pytest.mark.parametrize("dim, k, batch", [(384, 1000, 1024), (32, 10, 4000), (768, 200, 1024),
                                           (384, 100000, 18), (200000, 10, 83)])
def test_flat_batch_follows_the_dimension_and_respects_memory(dim: int, k: int, batch: int) -> None:
    from harness.index.faiss_index import flat_batch

    assert flat_batch(dim, k) == batch
    assert flat_batch(dim, k) * dim >= 128000 or flat_batch(dim, k) * (dim + 9 * k) * 4 <= 64 << 20


def test_a_lone_query_keeps_faiss_database_parallel_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """faiss 1.15 scores fewer queries than threads over 10,000+ documents with its database-parallel
    sgemm, whatever the threshold: the 257th query of a search in 256-query batches got BLAS scores
    before, and keeps them."""
    import faiss

    from harness.index import faiss_index

    monkeypatch.setattr(faiss_index, "_PER_PAIR_BYTES", 0)
    faiss.omp_set_num_threads(2)
    try:
        docs, queries = _unit(20000, 64, 6), _unit(257, 64, 7)
        built = build_index("Flat", docs, seed=0)
        expected = _faiss_batches(built, queries, 10, 256)
        scores, ids, _ = search(built, queries, 10)
        np.testing.assert_array_equal(ids, expected[1])
        np.testing.assert_array_equal(scores, expected[0])
        assert faiss_index._faiss_takes_blas(faiss, 1, 64, 20000)  # (here its scores differ from per-pair ones)
    finally:
        faiss.omp_set_num_threads(1)
