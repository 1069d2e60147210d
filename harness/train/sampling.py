"""Sampling primitives the pairwise strategies build their batches from, and the batch itself.

A strategy gets `rng` as an argument and never reaches into the trainer for time or randomness.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.train.data import TrainData


@dataclass(frozen=True)
class Batch:
    """Queries, their sampled positives and negatives; rows index `TrainData.doc_texts`.

    `rel_mask[i, j]` is False where positive j is also relevant to query i; `neg_mask[i, k]` is
    False where negative k is relevant to query i (its layout is the strategy's).
    """

    query_ids: list[str]
    positive_rows: list[int]
    negative_rows: list[int] = field(default_factory=list)
    rel_mask: np.ndarray | None = None
    neg_mask: np.ndarray | None = None


def sample_positives(query_ids: list[str], data: TrainData, rng: np.random.Generator) -> list[int]:
    """One positive per query, drawn uniformly from its positives (as the official code does)."""
    return [int(rng.choice(data.positives[q])) for q in query_ids]


def relevance_mask(query_ids: list[str], rows: list[int], data: TrainData) -> np.ndarray:
    """mask[i, j] = False where document rows[j] is a positive of query i."""
    return np.array([[row not in set(data.positives[q]) for row in rows] for q in query_ids], dtype=bool)


def draw_mined(query_ids: list[str], negatives: dict[str, np.ndarray], per_query: int,
               rng: np.random.Generator, corpus_size: int) -> list[int]:
    """`per_query` mined negatives per query, uniformly (a query with none gets random docs)."""
    rows: list[int] = []
    for query_id in query_ids:
        pool = negatives.get(query_id)
        if pool is None or len(pool) == 0:
            rows += [int(r) for r in rng.integers(0, corpus_size, size=per_query)]
        else:
            rows += [int(r) for r in rng.choice(pool, size=per_query, replace=len(pool) < per_query)]
    return rows


def draw_uniform(count: int, rng: np.random.Generator, corpus_size: int) -> list[int]:
    """`count` corpus rows drawn uniformly, with replacement."""
    return [int(r) for r in rng.integers(0, corpus_size, size=count)]


def all_pairs_batch(query_ids: list[str], positives: list[int], negative_rows: list[int],
                    data: TrainData) -> Batch:
    """A batch where every query is scored against every positive and every negative of the
    batch (STAR's two pair sets, :func:`harness.train.losses.star_loss`), with both masks."""
    return Batch(query_ids, positives, negative_rows, rel_mask=relevance_mask(query_ids, positives, data),
                 neg_mask=relevance_mask(query_ids, negative_rows, data))
