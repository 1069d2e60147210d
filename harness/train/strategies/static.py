"""`kind = "static"`: static hard negatives only. Each query against its own K negatives drawn
from the list mined once by a fixed retriever; no random negatives, which the paper shows is
unstable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from harness.api.params import param
from harness.train.data import TrainData
from harness.train.sampling import Batch, draw_mined, sample_positives
from harness.api.train_params import MinedParams
from harness.train.strategy import MinedPairStrategy

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class StaticParams(MinedParams):
    negatives_per_query: int = param(1, "Hard negatives drawn per query and step.", minimum=1)


class Static(MinedPairStrategy):
    name = "static"
    help = "Static hard negatives only."
    Params = StaticParams

    def batch(self, query_ids: list[str], data: TrainData, rng: np.random.Generator, params: StaticParams,
              negatives: dict[str, np.ndarray] | None) -> Batch:
        positives = sample_positives(query_ids, data, rng)
        k = params.negatives_per_query
        rows = draw_mined(query_ids, self.mined(negatives), k, rng, len(data.doc_texts))
        mask = np.array([[row not in set(data.positives[q]) for row in rows[i * k:(i + 1) * k]]
                         for i, q in enumerate(query_ids)], dtype=bool)
        return Batch(query_ids, positives, rows, neg_mask=mask)

    def loss(self, q: torch.Tensor, d_pos: torch.Tensor, d_neg: torch.Tensor, batch: Batch,
             params: StaticParams) -> tuple[torch.Tensor, dict[str, float]]:
        import torch

        from harness.train.losses import static_loss

        k = params.negatives_per_query
        return static_loss(q, d_pos, d_neg.view(len(batch.query_ids), k, -1), torch.from_numpy(batch.neg_mask)), {}


KIND = Static()
