"""The keys every trained kind takes (:class:`TrainParams`) and those of the strategies that
draw mined hard negatives (:class:`MinedParams`): declarations, so the recipe loader reads them
without importing the trainers."""

from __future__ import annotations

from dataclasses import dataclass

from harness.api.params import Params, param

MODEL_REFS = ("base",)  # what a model reference may name besides another dense variant
NEGATIVE_SOURCES = ("bm25",) + MODEL_REFS  # ... and a hard-negative miner


OPTIMIZERS = ("adamw", "lamb")
KEEPS = ("last", "best")
WARMUPS = ("shifted", "official")


def _at_most_one(value: float) -> str | None:
    return None if value <= 1.0 else "must be <= 1 (a probability)"


@dataclass(frozen=True)
class TrainParams(Params):
    """Keys every trained kind takes. Defaults are CPU-friendly; `paper` gives the value of the
    paper's STAR setup (query-tower strategies redeclare ADORE's)."""

    init: str = param("base", "Model to start from: `base` ([model].base) or another dense variant's name "
                              "(chaining).", refers=MODEL_REFS)
    epochs: int = param(1, "Passes over the training queries (ignored when max_steps > 0).", minimum=1)
    max_steps: int = param(0, "Optimizer steps; 0 means `epochs` worth.", minimum=0)
    batch_size: int = param(32, "Queries per step.", minimum=1, paper="256")
    grad_accum: int = param(1, "Micro-batches accumulated per optimizer step.", minimum=1)
    optimizer: str = param("adamw", "adamw (torch), or lamb: the official STAR code's LAMB (pytorch-optimizer's "
                                    "Lamb set as DRhard's lamb.py: no bias correction, weight norm clamped at "
                                    "10, weight decay added to the Adam step).", choices=OPTIMIZERS,
                           paper="lamb (official star/train.py's default); adamw for ADORE", added=True)
    lr: float = param(2e-5, "Peak learning rate.", minimum=0.0, paper="1e-4 with LAMB")
    warmup_steps: int = param(10, "Linear warm-up steps, then linear decay to 0.", minimum=0)
    warmup: str = param("shifted", "Warm-up multiplier of step s (from 0) over w = warmup_steps: shifted, (s+1)/(w+1) "
                                   "(drbench's, every step learns); official, s/w as transformers' "
                                   "get_linear_schedule_with_warmup (DRhard star/train.py:86, adore/train.py:142), so "
                                   "the first step has lr 0.", choices=WARMUPS,
                        paper="official (transformers' linear warm-up, s/w)", added=True)
    weight_decay: float = param(0.01, "Weight decay (biases and LayerNorm excluded).", minimum=0.0)
    grad_clip: float = param(1.0, "Max gradient norm; 0 disables.", minimum=0.0, paper="1.0")
    dropout: float | None = param(None, "Dropout probability (0 to 1) of every dropout layer of the model while it "
                                        "trains; unset: the model's own (its config's, 0.1 for MiniLM). 0.0 makes a "
                                        "step deterministic, and --nproc N then trains what one process trains.",
                                  minimum=0.0, check=_at_most_one, paper="unset: the model's own (0.1 for RoBERTa)",
                                  added=True)
    query_max_length: int = param(32, "Training query tokens.", minimum=1, paper="24")
    doc_max_length: int = param(128, "Training document tokens.", minimum=1, paper="120")
    scale: float = param(1.0, "Scores are scale * q.d (~20 suits normalised encoders like MiniLM).",
                         minimum=0.0, paper="1, raw dot product")
    checkpoint_every: int = param(50, "Save a resumable checkpoint every N optimizer steps.", minimum=1)
    eval_every: int = param(0, "Score the model on [data] dev every N optimizer steps and after the last (0: "
                               "never): dev_<metric> in the training log and in `drbench plot`'s curves. A "
                               "shared-tower model re-encodes the dev corpus each time.", minimum=0, added=True)
    keep: str = param("last", "last: the model after the last step; best: the one with the best dev score on the "
                              "recipe's first metric (needs eval_every).", choices=KEEPS, added=True)


@dataclass(frozen=True)
class MinedParams(TrainParams):
    """Keys of the strategies that draw static hard negatives, mined once by a fixed retriever."""

    negatives_from: str = param("bm25", "Retriever that mines hard negatives once: `bm25`, `base`, or a dense "
                                        "variant's name.", refers=NEGATIVE_SOURCES)
    negatives_depth: int = param(200, "Hard negatives kept per query after removing positives.", minimum=1,
                                 paper="200")
