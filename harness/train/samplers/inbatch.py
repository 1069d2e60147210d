"""In-batch negatives: every other query's positive is a negative (Inbatch-Neg)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from harness.train.losses import inbatch_loss
from harness.train.samplers.base import Batch, TrainData, relevance_mask, sample_positives


def build(query_ids: list[str], data: TrainData, rng: np.random.Generator, params: Any,
          negatives: dict[str, np.ndarray] | None = None) -> Batch:
    positives = sample_positives(query_ids, data, rng)
    return Batch(query_ids, positives, extra={"rel_mask": relevance_mask(query_ids, positives, data)})


def loss(q: torch.Tensor, d_pos: torch.Tensor, d_neg: torch.Tensor, batch: Batch,
         params: Any) -> tuple[torch.Tensor, dict[str, float]]:
    return inbatch_loss(q, d_pos, torch.from_numpy(batch.extra["rel_mask"])), {}
