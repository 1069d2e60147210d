"""`kind = "random"` (Rand-Neg): in-batch pairs plus N corpus documents drawn uniformly per
query, every query scored against all of the batch's random documents: STAR's loss with
random documents in place of hard ones.

This is not the official code's form: DRhard's `randneg_train` (model.py, checked at 15e2235)
scores each query against every random document of the batch and against no other query's
positive (no in-batch pairs), and its warm-up model is ANCE's downloaded
checkpoint, not a random-negative run. drbench keeps the in-batch pairs so that `random` and
`star` differ only in where the extra negatives come from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from harness.api.params import param
from harness.train.data import TrainData
from harness.train.sampling import Batch, all_pairs_batch, draw_uniform, sample_positives
from harness.api.train_params import PairParams
from harness.train.strategy import PairStrategy

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class RandomParams(PairParams):
    random_negatives: int = param(1, "Corpus documents sampled uniformly per query and step.", minimum=1)


class Random(PairStrategy):
    name = "random"
    help = "In-batch plus uniformly random negatives."
    Params = RandomParams

    def batch(self, query_ids: list[str], data: TrainData, rng: np.random.Generator, params: RandomParams,
              negatives: dict[str, np.ndarray] | None) -> Batch:
        positives = sample_positives(query_ids, data, rng)
        rows = draw_uniform(params.random_negatives * len(query_ids), rng, len(data.doc_texts))
        return all_pairs_batch(query_ids, positives, rows, data)

    def loss(self, q: torch.Tensor, d_pos: torch.Tensor, d_neg: torch.Tensor, batch: Batch,
             params: RandomParams) -> tuple[torch.Tensor, dict[str, float]]:
        import torch

        from harness.train.losses import star_loss

        return star_loss(q, d_pos, d_neg, torch.from_numpy(batch.rel_mask), torch.from_numpy(batch.neg_mask))


KIND = Random()
