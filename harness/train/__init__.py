"""Training: one strategy per file (:mod:`harness.train.strategies`: in-batch, random, static,
STAR, ADORE, STAR+ADORE) and the machinery they share, which names no strategy and dispatches on
what a strategy declares.

* :mod:`~harness.train.strategy`: what a strategy declares (`Strategy`, `TrainParams`, `Needs`)
  and what it is handed (`TrainInputs`);
* :mod:`~harness.train.data`, :mod:`~harness.train.sampling`: the training split and the batches
  drawn from it; :mod:`~harness.train.losses`: the losses (pure torch);
* :mod:`~harness.train.loop`: the optimisation loop, checkpoints and training log;
  :mod:`~harness.train.trainer`: the training stage the pipeline calls;
* :mod:`~harness.train.mining`: static hard negatives; :mod:`~harness.train.frozen_index`:
  training against a frozen document index (ADORE);
* :mod:`~harness.train.artifacts`: what a trained model and mined negatives hold, and their keys.

Nothing here reads the store or decides what is cached: :mod:`harness.pipeline` does.
"""
