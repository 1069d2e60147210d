"""Score the model being trained on the dev split (`eval_every`): what `drbench run` would store
for it there, computed in the middle of training.

Queries (and, for a shared-tower model, the dev corpus) are encoded with the training model's
current weights at the evaluation lengths and prefixes, ranked exactly (faiss Flat) and scored
with the recipe's metrics, as a dev run is. A query-tower model (ADORE) ranks against its frozen
document vectors, so it encodes only the queries.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from harness.data.collection import Collection
from harness.dense import EncoderSettings
from harness.evaluate.metrics import evaluate
from harness.evaluate.ties import trec_order
from harness.index.faiss_index import exact_search


def dev_scorer(dev: Collection, settings: EncoderSettings, metrics: tuple[str, ...], depth: int,
               frozen_docs: Callable[[], np.ndarray] | None = None) -> Callable[[Any], dict[str, float]]:
    """A function of the training :class:`~harness.model.encoder.Encoder` returning
    {"dev_<metric>": value} on `dev`."""
    query_ids = sorted(dev.queries)

    def score(encoder: Any) -> dict[str, float]:
        prefix = encoder.prefix
        try:
            encoder.prefix = settings.query_prefix
            queries = encoder.encode([dev.queries[q] for q in query_ids], max_length=settings.query_max_length)
            if frozen_docs is not None:
                docs = frozen_docs()
            else:
                encoder.prefix = settings.doc_prefix
                docs = encoder.encode(dev.doc_texts, max_length=settings.doc_max_length)
        finally:
            encoder.prefix = prefix
        scores, rows, _ = exact_search(docs, queries, min(depth, len(dev.doc_ids)))
        results = {q: trec_order([(dev.doc_ids[r], float(s)) for r, s in zip(rows[i], scores[i]) if r >= 0])
                   for i, q in enumerate(query_ids)}
        return {f"dev_{m}": float(v) for m, v in evaluate(dev.qrels, results, metrics).metrics.items()}

    return score
