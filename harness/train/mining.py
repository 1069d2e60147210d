"""Static hard negatives, mined once by a fixed retriever.

As in the official STAR code: retrieve the top `depth + 10` documents per training query
(plus room for its positives), drop the positives, keep `depth`. The pipeline caches the
result (:mod:`harness.train.artifacts`); this module only computes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.data.collection import Collection
from harness.retrieval.bm25 import BM25Params, bm25_search, bm25_search_scoring
from harness.train.data import TrainData

# The BM25 that mines negatives: the `bm25` kind's defaults (BM25Params, declared once beside the engine).
BM25_MINER = BM25Params().as_dict()


def mining_depth(depth: int, data: TrainData) -> int:
    """How deep to retrieve so that `depth` negatives remain once a query's positives are dropped."""
    return depth + 10 + max(len(p) for p in data.positives.values())


def hard_negatives(ranked: dict[str, list[int]], depth: int, data: TrainData) -> dict[str, np.ndarray]:
    """The first `depth` rows of each training query's ranking that are not its positives.

    >>> data = TrainData(("q",), {"q": "x"}, {"q": (1,)}, ("a", "b", "c", "d"))
    >>> hard_negatives({"q": [1, 3, 0, 2]}, 2, data)["q"].tolist()
    [3, 0]
    """
    return {q: np.asarray([r for r in ranked[q] if r not in set(data.positives[q])][:depth], dtype=np.int64)
            for q in data.query_ids}


def mined_summary(negatives: dict[str, np.ndarray], depth: int, source: str) -> str:
    """One line: what the training queries got of their `depth` hard negatives; a `warning:` when
    the denoising keys (or a small corpus) left some with none, since training then draws random
    documents for them (:func:`harness.train.sampling.draw_mined`).

    >>> mined_summary({"a": np.arange(2), "b": np.arange(2)}, 2, "bm25")
    'mined 2 hard negatives per query from bm25 (2 training queries)'
    >>> mined_summary({"a": np.arange(2), "b": np.arange(1)}, 2, "bm25")
    'mined up to 2 hard negatives per query from bm25 (2 training queries: 1 with 2, 1 with fewer)'
    """
    counts = [len(rows) for rows in negatives.values()]
    full, none = sum(c >= depth for c in counts), sum(c == 0 for c in counts)
    if full == len(counts):
        return f"mined {depth} hard negatives per query from {source} ({len(counts):,} training queries)"
    line = (f"mined up to {depth} hard negatives per query from {source} ({len(counts):,} training queries: "
            f"{full:,} with {depth}, {len(counts) - full - none:,} with fewer")
    if not none:
        return line + ")"
    return (f"warning: {line}, {none:,} with none); a query with none trains on random documents as negatives: "
            "loosen the denoising keys to keep more")


def bm25_ranking(data: TrainData, collection: Collection, k: int) -> dict[str, list[int]]:
    """Each training query's top-`k` document rows under BM25 (:data:`BM25_MINER`)."""
    row = {doc_id: i for i, doc_id in enumerate(collection.doc_ids)}
    results = bm25_search(collection.doc_ids, collection.doc_texts, {q: data.queries[q] for q in data.query_ids},
                          k=k, **BM25_MINER)
    return {q: [row[d] for d, _ in ranked] for q, ranked in results.items()}


def bm25_scored(data: TrainData, collection: Collection,
                k: int) -> tuple[dict[str, list[tuple[int, float]]], dict[str, list[float]]]:
    """:func:`bm25_ranking` as (row, BM25 score) pairs, and each query's BM25 score of each of
    its positives, ranked or not (what :mod:`harness.train.denoise` filters with)."""
    row = {doc_id: i for i, doc_id in enumerate(collection.doc_ids)}
    results, positive_scores = bm25_search_scoring(
        collection.doc_ids, collection.doc_texts, {q: data.queries[q] for q in data.query_ids},
        {q: data.positives[q] for q in data.query_ids}, k=k, **BM25_MINER)
    return {q: [(row[d], s) for d, s in ranked] for q, ranked in results.items()}, positive_scores


def dense_ranking(doc_vectors: np.ndarray, query_vectors: np.ndarray, data: TrainData, k: int,
                  seed: int, gpu: int | None = None, scores: bool = False) -> dict[str, list[Any]]:
    """Each training query's exact (Flat) top-`k` document rows; `query_vectors` in query_ids order;
    with `scores`, (row, dot product) pairs."""
    from harness.index.faiss_index import exact_search

    found, ids, _ = exact_search(doc_vectors, query_vectors, k, gpu=gpu)
    if scores:
        return {q: [(int(i), float(s)) for i, s in zip(ids[row], found[row]) if i >= 0]
                for row, q in enumerate(data.query_ids)}
    return {q: [int(i) for i in ids[row] if i >= 0] for row, q in enumerate(data.query_ids)}


def dense_positive_scores(doc_vectors: np.ndarray, query_vectors: np.ndarray,
                          data: TrainData) -> dict[str, list[float]]:
    """The dot product of each training query with each of its positives (the denoising margins'
    reference); `query_vectors` in query_ids order."""
    return {q: [float(s) for s in doc_vectors[list(data.positives[q])].astype(np.float32)
                @ query_vectors[row].astype(np.float32)]
            for row, q in enumerate(data.query_ids)}


def miner_identity(model_identity: dict[str, Any] | None) -> dict[str, Any]:
    """What identifies a miner in cache keys: BM25's settings, or the dense model's identity."""
    return {"bm25": BM25_MINER} if model_identity is None else model_identity
