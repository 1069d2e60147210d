"""Static hard negatives, mined once by a fixed retriever and cached.

As in the official STAR code: retrieve the top `depth + 10` documents per training query
(plus room for its positives), drop the positives, keep `depth`.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import numpy as np

from harness.data.collection import Collection
from harness.train.artifacts import artifact_key
from harness.train.samplers.base import TrainData

if TYPE_CHECKING:
    from harness.context import StageContext

_BM25 = {"k1": 1.2, "b": 0.75, "method": "lucene", "stemmer": "english", "stopwords": "en"}


def mine_negatives(source: str, depth: int, data: TrainData, collection: Collection,
                   ctx: StageContext) -> tuple[dict[str, np.ndarray], str]:
    """Hard negatives (document rows) per training query from `source`; (negatives, key)."""
    identity = {"bm25": _BM25} if source == "bm25" else ctx.dense(ctx.model_for(source)).identity
    key = artifact_key(what="negatives", source=identity, depth=depth,
                       data=collection.archive_digests,
                       queries=collection.dataset_id)
    path = ctx.cache_dir / "negatives" / f"{key}.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        return {q: np.asarray(rows, dtype=np.int64) for q, rows in stored.items()}, key
    room = depth + 10 + max(len(p) for p in data.positives.values())
    ranked = _bm25_rows(data, collection, room) if source == "bm25" else _dense_rows(source, data, collection,
                                                                                     room, ctx)
    negatives = {q: [r for r in ranked[q] if r not in set(data.positives[q])][:depth] for q in data.query_ids}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(negatives))
    os.replace(tmp, path)
    ctx.console.log(f"mined {depth} hard negatives per query from {source} "
                    f"({len(negatives)} training queries)")
    return {q: np.asarray(rows, dtype=np.int64) for q, rows in negatives.items()}, key


def _bm25_rows(data: TrainData, collection: Collection, k: int) -> dict[str, list[int]]:
    from harness.retrieval.bm25 import bm25_search

    row = {doc_id: i for i, doc_id in enumerate(collection.doc_ids)}
    results = bm25_search(collection.doc_ids, collection.doc_texts, {q: data.queries[q] for q in data.query_ids},
                          k=k, **_BM25)
    return {q: [row[d] for d, _ in ranked] for q, ranked in results.items()}


def _dense_rows(source: str, data: TrainData, collection: Collection, k: int,
                ctx: StageContext) -> dict[str, list[int]]:
    from harness.index.faiss_index import build_index, search

    model = ctx.dense(ctx.model_for(source))
    doc_vectors, _ = model.encode_corpus(collection, ctx.cache_dir, ctx.progress, ctx.console)
    with ctx.progress.task(f"mining negatives with {source}", len(data.query_ids), "queries") as advance:
        query_vectors = model.encode_queries([data.queries[q] for q in data.query_ids], advance)
    built = build_index("Flat", doc_vectors, seed=ctx.recipe.experiment.seed)
    _, ids, _ = search(built, query_vectors, k)
    return {q: [int(i) for i in ids[row] if i >= 0] for row, q in enumerate(data.query_ids)}
