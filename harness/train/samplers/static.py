"""Static hard negatives only: each query against its own K negatives drawn from the list
mined once by a fixed retriever. No random negatives, which the paper shows is unstable."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from harness.train.losses import static_loss
from harness.train.samplers.base import Batch, TrainData, sample_positives


def draw_hard(query_ids: list[str], negatives: dict[str, np.ndarray], per_query: int,
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


def build(query_ids: list[str], data: TrainData, rng: np.random.Generator, params: Any,
          negatives: dict[str, np.ndarray] | None = None) -> Batch:
    assert negatives is not None, "static needs mined negatives"
    positives = sample_positives(query_ids, data, rng)
    k = params["negatives_per_query"]
    rows = draw_hard(query_ids, negatives, k, rng, len(data.doc_texts))
    mask = np.array([[row not in set(data.positives[q]) for row in rows[i * k:(i + 1) * k]]
                     for i, q in enumerate(query_ids)], dtype=bool)
    return Batch(query_ids, positives, rows, extra={"neg_mask": mask, "k": k})


def loss(q: torch.Tensor, d_pos: torch.Tensor, d_neg: torch.Tensor, batch: Batch,
         params: Any) -> tuple[torch.Tensor, dict[str, float]]:
    k = batch.extra["k"]
    return static_loss(q, d_pos, d_neg.view(len(batch.query_ids), k, -1),
                       torch.from_numpy(batch.extra["neg_mask"])), {}
