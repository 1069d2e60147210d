"""A corpus encode through `DenseModel.encode_corpus`, run as its own process (or under torchrun)
by tests/test_encode_resume.py, which stops it on purpose.

    python tests/encode_worker.py MODEL CACHE_DIR DOCS STOP_AFTER HOW

Encodes DOCS made-up documents in sort chunks of 40 and groups of 8 rows (2 batches of 4), so a
small corpus has many groups; after STOP_AFTER recorded groups (0: never) rank 0 stops as HOW
says: `kill` (SIGKILL), `term` (SIGTERM), `int` (SIGINT).
"""

from __future__ import annotations

import os
import random
import signal
import sys
import types
from pathlib import Path

import torch
from rich.console import Console

import harness.cache.partial as partial_module
import harness.model.batched as batched_module
from harness.dense import DenseModel, EncoderSettings, ModelRef
from harness.model.compute import Compute
from harness.model.spec import read_model_spec
from harness.progress import StageProgress
from harness.world import World

WORDS = "the cell of cells and in to a is for with on growth tissue".split()


def documents(n: int) -> list[str]:
    rng = random.Random(3)
    return [" ".join(rng.choices(WORDS, k=rng.randint(1, 30))) for _ in range(n)]


def main(model: str, cache_dir: str, docs: str, stop_after: str, how: str) -> None:
    torch.set_num_threads(1)  # every run of a test alike, whatever its process count
    partial_module.RESUME_ROWS = 8
    batched_module.ENCODE_CHUNK = 40
    world = World.from_env().join("cpu")
    texts = documents(int(docs))
    collection = types.SimpleNamespace(docs_id="toy/docs", doc_ids=tuple(map(str, range(len(texts)))),
                                       doc_texts=texts)
    if world.main and int(stop_after):
        commit, seen = partial_module.Partial.commit, []

        def stopping(self: partial_module.Partial, position: int, rows) -> None:
            commit(self, position, rows)
            seen.append(position)
            if len(seen) == int(stop_after):
                os.kill(os.getpid(), {"kill": signal.SIGKILL, "term": signal.SIGTERM, "int": signal.SIGINT}[how])

        partial_module.Partial.commit = stopping  # type: ignore[method-assign]
    spec = read_model_spec(Path(model))
    settings = EncoderSettings(pooling=spec.pooling, normalize=spec.normalize, query_max_length=None,
                               doc_max_length=None, query_prefix="", doc_prefix="", batch_size=4)
    dense = DenseModel(ModelRef.shared("tiny"), spec, spec, settings, compute=Compute("cpu", "fp32", world))
    console = Console(file=sys.stderr, width=400, log_path=False)
    progress = StageProgress(console, plain=True)
    dense.encode_corpus(collection, Path(cache_dir), progress, console)  # type: ignore[arg-type]
    world.leave()


if __name__ == "__main__":
    main(*sys.argv[1:])
