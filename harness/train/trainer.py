"""The training stage: train a strategy's encoder into a work folder and save it there.

It reads no cache and publishes nothing: the pipeline decides whether to train (cache keys)
and publishes the folder once this returns. A checkpoint already in the folder is resumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from harness.progress import StageProgress
from harness.train.artifacts import save_encoder, write_log
from harness.train.strategy import Strategy, TrainInputs, TrainParams


def train_into(workdir: Path, strategy: Strategy, params: TrainParams, inputs: TrainInputs, source: Path,
               progress: StageProgress, console: Console, label: str) -> tuple[list[dict[str, Any]], float]:
    """Train from the model folder `source`; returns (training log, seconds including resumed ones)."""
    from harness.model.encoder import Encoder
    from harness.train.loop import train

    settings = inputs.settings
    encoder = Encoder(source, pooling=settings.pooling, normalize=settings.normalize, max_length=None)
    workdir.mkdir(parents=True, exist_ok=True)
    if (workdir / "checkpoint.pt").is_file():
        console.log(f"{label}: resuming from {workdir / 'checkpoint.pt'}")
    step = strategy.step(encoder, params, inputs)
    log, seconds = train(encoder.model, params, inputs.data.query_ids, inputs.seed, step, workdir, progress, label)
    save_encoder(encoder.model, encoder.tokenizer, source, workdir, max_seq_length=None)
    write_log(workdir, log)
    return log, seconds
