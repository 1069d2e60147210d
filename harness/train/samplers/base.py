"""What every sampler shares: the training data view and the batch it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.data.collection import Collection


@dataclass(frozen=True)
class TrainData:
    """Training queries with at least one positive, documents addressed by row number."""

    query_ids: tuple[str, ...]
    queries: dict[str, str]
    positives: dict[str, tuple[int, ...]]
    doc_texts: tuple[str, ...]
    relevance: dict[str, dict[int, int]] = field(default_factory=dict)  # graded, for delta-nDCG

    @classmethod
    def from_collection(cls, collection: Collection) -> TrainData:
        row = {doc_id: i for i, doc_id in enumerate(collection.doc_ids)}
        positives = {q: tuple(sorted(row[d] for d in rels if d in row))
                     for q, rels in collection.qrels.items()}
        query_ids = tuple(sorted(q for q, rows in positives.items() if rows and q in collection.queries))
        relevance = {q: {row[d]: r for d, r in rels.items() if d in row} for q, rels in collection.qrels.items()}
        return cls(query_ids, collection.queries, positives, collection.doc_texts, relevance)


@dataclass
class Batch:
    """Queries, their sampled positives, and negatives; rows index `TrainData.doc_texts`."""

    query_ids: list[str]
    positive_rows: list[int]
    negative_rows: list[int] = field(default_factory=list)  # flat; layout is the sampler's
    extra: dict[str, Any] = field(default_factory=dict)


def sample_positives(query_ids: list[str], data: TrainData, rng: np.random.Generator) -> list[int]:
    """One positive per query, drawn uniformly from its positives (as the official code does)."""
    return [int(rng.choice(data.positives[q])) for q in query_ids]


def relevance_mask(query_ids: list[str], rows: list[int], data: TrainData) -> np.ndarray:
    """mask[i, j] = False where document rows[j] is a positive of query i."""
    return np.array([[row not in set(data.positives[q]) for row in rows] for q in query_ids], dtype=bool)


def two_pair_sets(query_ids: list[str], positives: list[int], negative_rows: list[int], data: TrainData) -> Batch:
    """A batch scored the STAR way (in-batch pairs and all-negatives pairs), with both masks."""
    return Batch(query_ids, positives, negative_rows, extra={
        "rel_mask": relevance_mask(query_ids, positives, data),
        "neg_mask": relevance_mask(query_ids, negative_rows, data)})


def two_pair_sets_loss(q: Any, d_pos: Any, d_neg: Any, batch: Batch, alpha: float | None) -> Any:
    """STAR's loss over a :func:`two_pair_sets` batch; `alpha` None weights every pair equally."""
    import torch

    from harness.train.losses import star_loss

    return star_loss(q, d_pos, d_neg, torch.from_numpy(batch.extra["rel_mask"]),
                     torch.from_numpy(batch.extra["neg_mask"]), alpha=alpha)
