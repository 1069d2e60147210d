"""STAR: one static hard negative per query and step (uniform over the mined top list) plus
in-batch random negatives reused as the official code does: every query against every other
query's positive AND against all B hard negatives of the batch."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from harness.train.losses import star_loss
from harness.train.samplers.base import Batch, TrainData, relevance_mask, sample_positives
from harness.train.samplers.static import draw_hard


def build(query_ids: list[str], data: TrainData, rng: np.random.Generator, params: Any,
          negatives: dict[str, np.ndarray] | None = None) -> Batch:
    assert negatives is not None, "star needs mined negatives"
    positives = sample_positives(query_ids, data, rng)
    rows = draw_hard(query_ids, negatives, 1, rng, len(data.doc_texts))
    return Batch(query_ids, positives, rows, extra={
        "rel_mask": relevance_mask(query_ids, positives, data),
        "neg_mask": relevance_mask(query_ids, rows, data)})


def loss(q: torch.Tensor, d_pos: torch.Tensor, d_neg: torch.Tensor, batch: Batch,
         params: Any) -> tuple[torch.Tensor, dict[str, float]]:
    return star_loss(q, d_pos, d_neg, torch.from_numpy(batch.extra["rel_mask"]),
                     torch.from_numpy(batch.extra["neg_mask"]), alpha=params.get("alpha"))
