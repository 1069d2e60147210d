"""How many optimizer steps a training run takes: torch-free, so `drbench plan` counts a run's
cost without importing the loop that runs it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.api.train_params import TrainParams


@dataclass(frozen=True)
class Schedule:
    total_steps: int
    batches_per_epoch: int
    batch_size: int
    grad_accum: int


def training_schedule(n_queries: int, params: TrainParams) -> Schedule:
    """Optimizer steps for `epochs` passes (or `max_steps`) over `n_queries` queries."""
    batch = params.batch_size
    per_epoch = max(1, math.ceil(n_queries / batch))
    total = params.max_steps or math.ceil(params.epochs * per_epoch / params.grad_accum)
    return Schedule(total, per_epoch, batch, params.grad_accum)
