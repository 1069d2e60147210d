"""Training strategies: each module builds a batch (which documents a step sees) and scores it
with its loss. They take `rng` and never reach into the trainer for time or randomness."""

from __future__ import annotations

import importlib
from types import ModuleType

STRATEGIES = {"inbatch": "inbatch", "random": "random_neg", "static": "static", "star": "star"}


def strategy(kind: str) -> ModuleType:
    """The sampler module of a shared-tower training kind."""
    return importlib.import_module(f"harness.train.samplers.{STRATEGIES[kind]}")
