"""The training stage: train a strategy's encoder into a work folder and save it there.

It reads no cache and publishes nothing: the pipeline decides whether to train (cache keys)
and publishes the folder once this returns. A checkpoint already in the folder is resumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from harness.model.compute import Compute
from harness.progress import StageProgress
from harness.train.artifacts import save_encoder, write_log
from harness.train.strategy import Strategy, TrainInputs, TrainParams


def train_into(workdir: Path, strategy: Strategy, params: TrainParams, inputs: TrainInputs, source: Path,
               progress: StageProgress, console: Console, label: str, *, compute: Compute = Compute(),
               allow_pickle: bool = False) -> tuple[list[dict[str, Any]], float]:
    """Train from the model folder `source`; returns (training log, seconds including resumed ones).
    `allow_pickle` lets a trusted pickle-only `source` load (drbench itself saves safetensors)."""
    from harness.cache.manifest import file_record
    from harness.model.encoder import Encoder
    from harness.train.loop import CHECKPOINT, train

    settings = inputs.settings
    encoder = Encoder(source, pooling=settings.pooling, normalize=settings.normalize, max_length=None,
                      allow_pickle=allow_pickle, device=compute.device, precision=compute.precision)
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = workdir / CHECKPOINT
    if checkpoint.is_file():
        console.log(f"{label}: resuming from {checkpoint}")
    step = strategy.step(encoder, params, inputs)
    log, seconds = train(encoder.model, params, inputs.data.query_ids, inputs.seed, step, workdir, progress, label,
                         compute=compute)
    save_encoder(encoder.model, encoder.tokenizer, source, workdir, max_seq_length=None)
    write_log(workdir, log)
    for done in (checkpoint, file_record(checkpoint)):  # a finished model resumes nothing
        done.unlink(missing_ok=True)
    return log, seconds
