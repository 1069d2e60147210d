"""`kind = "inbatch"` (Inbatch-Neg): every other query's positive is a negative."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from harness.train.data import TrainData
from harness.train.sampling import Batch, relevance_mask, sample_positives
from harness.api.train_params import PairParams
from harness.train.strategy import PairStrategy

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class InbatchParams(PairParams):
    pass


class Inbatch(PairStrategy):
    name = "inbatch"
    help = "In-batch negatives."
    Params = InbatchParams

    def batch(self, query_ids: list[str], data: TrainData, rng: np.random.Generator, params: InbatchParams,
              negatives: dict[str, np.ndarray] | None) -> Batch:
        positives = sample_positives(query_ids, data, rng)
        return Batch(query_ids, positives, rel_mask=relevance_mask(query_ids, positives, data))

    def loss(self, q: torch.Tensor, d_pos: torch.Tensor, d_neg: torch.Tensor, batch: Batch,
             params: InbatchParams) -> tuple[torch.Tensor, dict[str, float]]:
        import torch

        from harness.train.losses import inbatch_loss

        return inbatch_loss(q, d_pos, torch.from_numpy(batch.rel_mask)), {}


KIND = Inbatch()
