"""The training stage: train a strategy's encoder into a work folder and save it there.

It reads no cache and publishes nothing: the pipeline decides whether to train (cache keys)
and publishes the folder once this returns. A checkpoint already in the folder is resumed.

With several processes every rank runs this on the same folder (rank 0 chose it): each holds a
replica of the encoder under DistributedDataParallel and calls the strategy's hooks, and rank 0
alone writes checkpoints, the model and the log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from harness.model.compute import Compute
from harness.progress import StageProgress
from harness.train.artifacts import save_encoder, write_log
from harness.api.train_params import TrainParams
from harness.train.strategy import Strategy, TrainInputs


def train_into(workdir: Path, strategy: Strategy, params: TrainParams, inputs: TrainInputs, source: Path,
               progress: StageProgress, console: Console, label: str, *, compute: Compute = Compute(),
               allow_pickle: bool = False) -> tuple[list[dict[str, Any]], float]:
    """Train from the model folder `source`; returns (training log, seconds including resumed ones).
    `allow_pickle` lets a trusted pickle-only `source` load (drbench itself saves safetensors)."""
    from harness.cache.manifest import file_record
    from harness.model.encoder import Encoder, set_dropout
    from harness.train.loop import CHECKPOINT, train

    world = compute.world
    settings = inputs.settings
    encoder = Encoder(source, pooling=settings.pooling, normalize=settings.normalize, max_length=None,
                      allow_pickle=allow_pickle, device=compute.device, precision=compute.precision, world=world)
    if params.dropout is not None:  # unset: the model's own rate
        set_dropout(encoder.model, params.dropout)
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = workdir / CHECKPOINT
    if checkpoint.is_file():
        console.log(f"{escape(label)}: resuming from {checkpoint}")
    encoder.pooled = replica = world.replicate(encoder.pooled)  # the module itself in one process
    hooks = strategy.hooks(encoder, params, inputs)
    step = strategy.step(encoder, params, inputs, hooks)
    score = (lambda: inputs.dev_score(encoder)) if inputs.dev_score is not None else None
    log, seconds = train(encoder.model, params, inputs.data.query_ids, inputs.seed, step, workdir, progress, label,
                         compute=compute, replica=replica, score=score, hooks=hooks)
    if world.main:
        save_encoder(encoder.model, encoder.tokenizer, source, workdir, max_seq_length=None)
        write_log(workdir, log)
        for done in (checkpoint, file_record(checkpoint)):  # a finished model resumes nothing
            done.unlink(missing_ok=True)
    world.barrier()  # nobody reads the folder before rank 0 has written it
    return log, seconds
