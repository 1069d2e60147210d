"""Random negatives (Rand-Neg): in-batch pairs plus N corpus documents drawn uniformly per
query, every query scored against all of the batch's random documents (STAR's loss with
random documents in place of hard ones, as the official code trains its warm-up model)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from harness.train.samplers.base import Batch, TrainData, sample_positives, two_pair_sets, two_pair_sets_loss


def build(query_ids: list[str], data: TrainData, rng: np.random.Generator, params: Any,
          negatives: dict[str, np.ndarray] | None = None) -> Batch:
    positives = sample_positives(query_ids, data, rng)
    count = params["random_negatives"] * len(query_ids)
    rows = [int(r) for r in rng.integers(0, len(data.doc_texts), size=count)]
    return two_pair_sets(query_ids, positives, rows, data)


def loss(q: torch.Tensor, d_pos: torch.Tensor, d_neg: torch.Tensor, batch: Batch,
         params: Any) -> tuple[torch.Tensor, dict[str, float]]:
    return two_pair_sets_loss(q, d_pos, d_neg, batch, alpha=None)
