"""`kind = "bm25"`: BM25 (bm25s) over the collection's text, a sparse baseline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from harness.data.collection import Collection
from harness.recipe.params import Params, param
from harness.registry import Kind


@dataclass(frozen=True)
class BM25Params(Params):
    k1: float = param(1.2, "BM25 term-frequency saturation.", minimum=0.0)
    b: float = param(0.75, "BM25 length normalisation.", minimum=0.0)
    method: str = param("lucene", "bm25s scoring variant.",
                        choices=("lucene", "robertson", "atire", "bm25l", "bm25+"))
    stemmer: str = param("english", "Snowball stemmer language (PyStemmer), or `none`.")
    stopwords: str = param("en", "bm25s stopword list (`en`), or `none`.")


class BM25(Kind):
    name = "bm25"
    help = "BM25 (bm25s) over the collection's text."
    family = "sparse"
    Params = BM25Params

    def rank(self, collection: Collection, params: BM25Params, depth: int,
             progress: Callable[[int], None] | None = None) -> dict[str, list[tuple[str, float]]]:
        """The top-`depth` (doc_id, score) of every evaluated query."""
        from harness.retrieval.bm25 import bm25_search

        return bm25_search(collection.doc_ids, collection.doc_texts, collection.queries, k=depth,
                           k1=params.k1, b=params.b, method=params.method, stemmer=params.stemmer,
                           stopwords=params.stopwords, progress=progress)


KIND = BM25()
