"""STAR: one static hard negative per query and step (uniform over the mined top list) plus
in-batch random negatives reused as the official code does: every query against every other
query's positive AND against all B hard negatives of the batch."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from harness.train.samplers.base import Batch, TrainData, sample_positives, two_pair_sets, two_pair_sets_loss
from harness.train.samplers.static import draw_hard


def build(query_ids: list[str], data: TrainData, rng: np.random.Generator, params: Any,
          negatives: dict[str, np.ndarray] | None = None) -> Batch:
    assert negatives is not None, "star needs mined negatives"
    positives = sample_positives(query_ids, data, rng)
    rows = draw_hard(query_ids, negatives, 1, rng, len(data.doc_texts))
    return two_pair_sets(query_ids, positives, rows, data)


def loss(q: torch.Tensor, d_pos: torch.Tensor, d_neg: torch.Tensor, batch: Batch,
         params: Any) -> tuple[torch.Tensor, dict[str, float]]:
    return two_pair_sets_loss(q, d_pos, d_neg, batch, alpha=params.get("alpha"))
