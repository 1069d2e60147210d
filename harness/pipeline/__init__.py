"""The wiring room: the only package that wires stages together and talks to the store and
the caches' bookkeeping.

* :mod:`harness.pipeline.run`: recipe -> data -> models -> encode -> index -> search ->
  evaluate -> store, one transaction per run.
* :mod:`harness.pipeline.models`: variant names -> encoders, resolving what each training
  strategy needs (init model, mined negatives, frozen documents) and caching what it trains.
"""

from harness.pipeline.run import Outcome, RunOptions, run_recipe, store_path

__all__ = ["Outcome", "RunOptions", "run_recipe", "store_path"]
