"""`kind = "bm25"`: BM25 (bm25s) over the collection's text, a sparse baseline."""

from __future__ import annotations

from typing import Callable

from harness.api.kind import Kind
from harness.data.collection import Collection
from harness.retrieval.bm25 import BM25Params, bm25_search


class BM25(Kind):
    name = "bm25"
    help = "BM25 (bm25s) over the collection's text."
    family = "sparse"
    Params = BM25Params

    def rank(self, collection: Collection, params: BM25Params, depth: int,
             progress: Callable[[int], None] | None = None) -> dict[str, list[tuple[str, float]]]:
        """The top-`depth` (doc_id, score) of every evaluated query."""
        return bm25_search(collection.doc_ids, collection.doc_texts, collection.queries, k=depth,
                           k1=params.k1, b=params.b, method=params.method, stemmer=params.stemmer,
                           stopwords=params.stopwords, progress=progress)


KIND = BM25()
