"""The wiring room: the only package that wires stages together, talks to the store and decides
what is cached, trained or skipped; only the CLI imports it.

* :mod:`harness.pipeline.run`: a recipe's runs, recipe -> data -> models -> encode -> index ->
  search -> evaluate -> store, one transaction per run (the dev split first when there is one).
* :mod:`harness.pipeline.models`: variant names -> encoders, resolving what each training
  strategy needs (init model, mined negatives, frozen documents), looking its artifact up,
  training on a miss, publishing it and storing its log.
* :mod:`harness.pipeline.selection`: a sweep's point, chosen from its dev runs in the store.
* :mod:`harness.pipeline.dev_scores`: the dev scores `eval_every` asks for during training.
* :mod:`harness.pipeline.ray_executor` and :mod:`harness.pipeline.task`: `--executor ray`, the
  plan's tasks on Ray, each in a process of its own, landed in the store by the driver alone.
"""

from harness.pipeline.run import Outcome, RunOptions, run_recipe, store_path

__all__ = ["Outcome", "RunOptions", "run_recipe", "store_path"]
