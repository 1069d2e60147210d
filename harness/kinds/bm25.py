"""`kind = "bm25"`: BM25 (bm25s) over the collection's text, a sparse baseline."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

from harness.data.collection import Collection
from harness.recipe.params import Params, param
from harness.registry import Kind


# bm25s' stopword lists, by the names its tokenizer accepts (bm25s.tokenization._infer_stopwords).
STOPWORDS = ("en", "english", "en_plus", "english_plus", "de", "german", "nl", "dutch", "fr", "french", "es",
             "spanish", "pt", "portuguese", "it", "italian", "ru", "russian", "sv", "swedish", "no", "norwegian",
             "zh", "chinese", "tr", "turkish", "ko", "korean", "da", "danish", "none")


def stemmer_problem(name: str) -> str | None:
    """Why `name` is not a PyStemmer (Snowball) algorithm, or None (checked at parse time, so a
    typo stops `validate`, not a run half-way)."""
    import Stemmer

    known = [*Stemmer.algorithms(), "none"]
    if name in known:
        return None
    close = difflib.get_close_matches(name, known, n=1)
    hint = f'; did you mean "{close[0]}"?' if close else ""
    return f"unknown Snowball stemmer{hint} ({', '.join(known)})"


@dataclass(frozen=True)
class BM25Params(Params):
    k1: float = param(1.2, "BM25 term-frequency saturation.", minimum=0.0)
    b: float = param(0.75, "BM25 length normalisation.", minimum=0.0)
    method: str = param("lucene", "bm25s scoring variant.",
                        choices=("lucene", "robertson", "atire", "bm25l", "bm25+"))
    stemmer: str = param("english", "Snowball stemmer language (PyStemmer), or `none`.", check=stemmer_problem)
    stopwords: str = param("en", "bm25s stopword list, or `none`.", choices=STOPWORDS)


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
