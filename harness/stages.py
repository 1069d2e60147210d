"""The stage functions variant kinds point at (see :mod:`harness.registry`).

Sparse kinds return rankings; dense kinds return the encoder folder the shared
encode -> index -> search stages use. Trained kinds will return their trained model here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from harness.data.collection import Collection
from harness.dense import ModelRef
from harness.recipe.model import Recipe, Variant

if TYPE_CHECKING:
    from harness.context import StageContext


def bm25_results(collection: Collection, variant: Variant, recipe: Recipe,
                 progress: Callable[[int], None] | None = None) -> dict[str, list[tuple[str, float]]]:
    """Rank the collection's documents with BM25 for every evaluated query."""
    from harness.retrieval.bm25 import bm25_search

    return bm25_search(collection.doc_ids, collection.doc_texts, collection.queries,
                       k=recipe.eval.depth, k1=variant.params["k1"], b=variant.params["b"],
                       method=variant.params["method"], stemmer=variant.params["stemmer"],
                       stopwords=variant.params["stopwords"], progress=progress)


def zero_shot_model(variant: Variant, ctx: StageContext) -> ModelRef:
    """The base encoder as is (or the variant's own `model`)."""
    return ModelRef.shared(variant.params.get("model") or ctx.recipe.model.base)
