"""BM25 through bm25s: sparse scipy scoring, 10-100x faster than rank_bm25 in pure Python,
with Snowball stemming from PyStemmer. Hand-writing BM25 buys nothing over it."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def bm25_search(doc_ids: Sequence[str], doc_texts: Sequence[str], queries: dict[str, str], *,
                k: int, k1: float, b: float, method: str, stemmer: str, stopwords: str,
                progress: Callable[[int], None] | None = None) -> dict[str, list[tuple[str, float]]]:
    """Index `doc_texts` and return the top-`k` (doc_id, score) per query, best first.

    Documents scoring 0 (no shared term) are dropped, so a query may get fewer than `k`.
    """
    import bm25s

    stem = None
    if stemmer != "none":
        import Stemmer

        stem = Stemmer.Stemmer(stemmer).stemWords
    stop = None if stopwords == "none" else stopwords
    retriever = bm25s.BM25(k1=k1, b=b, method=method)
    retriever.index(bm25s.tokenize(list(doc_texts), stopwords=stop, stemmer=stem, show_progress=False),
                    show_progress=False)
    query_ids = list(queries)
    tokens = bm25s.tokenize([queries[q] for q in query_ids], stopwords=stop, stemmer=stem,
                            show_progress=False)
    top, scores = retriever.retrieve(tokens, k=min(k, len(doc_ids)), show_progress=False, n_threads=1)
    if progress:
        progress(len(query_ids))
    results: dict[str, list[tuple[str, float]]] = {}
    for row, query_id in enumerate(query_ids):
        keep = scores[row] > 0
        results[query_id] = [(doc_ids[i], float(s)) for i, s in zip(np.asarray(top[row])[keep],
                                                                   np.asarray(scores[row])[keep])]
    return results
