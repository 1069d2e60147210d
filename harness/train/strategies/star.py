"""`kind = "star"` (STAR): one static hard negative per query and step, drawn uniformly from
the mined top list, plus in-batch random negatives reused as the official code does: every
query against every other query's positive AND against all B hard negatives of the batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from harness.api.params import like, param
from harness.train.data import TrainData
from harness.train.sampling import Batch, all_pairs_batch, draw_mined, sample_positives
from harness.api.train_params import MinedParams
from harness.train.strategy import MinedPairStrategy

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class StarParams(MinedParams):
    negatives_from: str = like(MinedParams, "negatives_from", default="base")
    alpha: float | None = param(None, "Weight of random (in-batch) pairs: L = L_hard + alpha L_random. Unset: "
                                      "every pair weighted equally, as the official code does.", minimum=0.0)


class Star(MinedPairStrategy):
    name = "star"
    help = "STAR: static hard + in-batch random negatives."
    Params = StarParams

    def batch(self, query_ids: list[str], data: TrainData, rng: np.random.Generator, params: StarParams,
              negatives: dict[str, np.ndarray] | None) -> Batch:
        positives = sample_positives(query_ids, data, rng)
        rows = draw_mined(query_ids, self.mined(negatives), 1, rng, len(data.doc_texts))
        return all_pairs_batch(query_ids, positives, rows, data)

    def loss(self, q: torch.Tensor, d_pos: torch.Tensor, d_neg: torch.Tensor, batch: Batch,
             params: StarParams) -> tuple[torch.Tensor, dict[str, float]]:
        import torch

        from harness.train.losses import star_loss

        return star_loss(q, d_pos, d_neg, torch.from_numpy(batch.rel_mask), torch.from_numpy(batch.neg_mask),
                         alpha=params.alpha)


KIND = Star()
