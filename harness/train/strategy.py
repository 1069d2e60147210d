"""What a training strategy declares, and what the pipeline hands it.

A strategy (one file in :mod:`harness.train.strategies`) is a :class:`Strategy`: its typed
parameters (a :class:`TrainParams` subclass), the models it :meth:`~Strategy.needs` from earlier
stages, its training :meth:`~Strategy.step` and the periodic actions it declares
(:meth:`~Strategy.hooks`, see :mod:`harness.train.hooks`). Pairwise strategies subclass
:class:`PairStrategy` and only say how a batch is drawn and which loss scores it.

Torch-free at import: `validate` reads the declarations without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from harness.recipe.params import Params, param
from harness.registry import Kind
from harness.train.data import TrainData
from harness.train.sampling import Batch

if TYPE_CHECKING:
    import torch

    from harness.dense import EncoderSettings
    from harness.model.encoder import Encoder
    from harness.train.hooks import Hook

# What the optimisation loop calls per micro-batch: (query ids, rng, step) -> (loss, logged values).
# `step`: the optimizer steps taken before this one (0 first), the count hooks are called with.
StepFn = Callable[[list[str], np.random.Generator, int], "tuple[torch.Tensor, dict[str, float]]"]

MODEL_REFS = ("base",)  # what a model reference may name besides another dense variant
NEGATIVE_SOURCES = ("bm25",) + MODEL_REFS  # ... and a hard-negative miner


OPTIMIZERS = ("adamw", "lamb")
KEEPS = ("last", "best")


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
    weight_decay: float = param(0.01, "Weight decay (biases and LayerNorm excluded).", minimum=0.0)
    grad_clip: float = param(1.0, "Max gradient norm; 0 disables.", minimum=0.0, paper="1.0")
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


@dataclass(frozen=True)
class Needs:
    """The models a strategy trains from, by variant name or `base`; the pipeline resolves them.

    `negatives`: the retriever (`bm25`, `base` or a dense variant) that mines static hard
    negatives once, `negatives_depth` per query. `documents`: the model whose frozen corpus
    vectors a query-tower strategy trains against.
    """

    init: str
    negatives: str | None = None
    negatives_depth: int = 0
    documents: str | None = None


@dataclass(frozen=True)
class TrainInputs:
    """What the pipeline hands a strategy's step, resolved from its :class:`Needs`."""

    data: TrainData
    settings: EncoderSettings  # the init model's encoding settings (prefixes, pooling)
    seed: int
    nprobe: int
    negatives: dict[str, np.ndarray] | None = None
    doc_vectors: Callable[[], np.ndarray] | None = None  # the frozen corpus, encoded on first call
    faiss_gpu: int | None = None  # the GPU a frozen index may live on (a CUDA run with faiss-gpu)
    dev_score: Callable[[Any], dict[str, float]] | None = None  # encoder -> {"dev_<metric>": v} (eval_every)


class MissingInputError(ValueError):
    """A strategy was handed inputs without something its :class:`Needs` declared."""


class Strategy(Kind):
    """A trained dense kind.

    `tower = "shared"`: one encoder for queries and documents, both trained. `tower = "query"`:
    only the query encoder trains; documents keep the vectors of `Needs.documents`.
    """

    trains = True
    tower = "shared"
    key_name: str | None = None  # the name cache keys use (default: `name`)
    Params: type[TrainParams] = TrainParams

    def needs(self, params: TrainParams) -> Needs:
        return Needs(init=params.init)

    def hooks(self, encoder: Encoder, params: TrainParams, inputs: TrainInputs) -> list[Hook]:
        """Periodic actions the loop runs between steps, told the step number, their state kept in
        checkpoints (:class:`harness.train.hooks.Hook`); none by default. Called before
        :meth:`step`, which is handed them: its step function reads what they refresh."""
        return []

    def step(self, encoder: Encoder, params: TrainParams, inputs: TrainInputs,
             hooks: Sequence[Hook] = ()) -> StepFn:
        """The loop's step function: (query ids, rng, step) -> (loss, logged values). `hooks`:
        what :meth:`hooks` returned."""
        raise NotImplementedError

    def key_parts(self, params: TrainParams, inputs: TrainInputs) -> dict[str, Any]:
        """What, besides params, models and data, determines the trained model (cache keys)."""
        return {}


class PairStrategy(Strategy):
    """A shared-tower strategy scored by pairwise losses: draw a batch, then score it."""

    def batch(self, query_ids: list[str], data: TrainData, rng: np.random.Generator, params: TrainParams,
              negatives: dict[str, np.ndarray] | None) -> Batch:
        raise NotImplementedError

    def loss(self, q: torch.Tensor, d_pos: torch.Tensor, d_neg: torch.Tensor, batch: Batch,
             params: TrainParams) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def step(self, encoder: Encoder, params: TrainParams, inputs: TrainInputs,
             hooks: Sequence[Hook] = ()) -> StepFn:
        """Draw a batch, encode its queries and documents with the one tower, score it."""
        data, settings = inputs.data, inputs.settings

        def step(query_ids: list[str], rng: np.random.Generator,
                 at: int) -> tuple[torch.Tensor, dict[str, float]]:
            batch = self.batch(query_ids, data, rng, params, inputs.negatives)
            q = encoder.embed([data.queries[x] for x in query_ids], max_length=params.query_max_length,
                              prefix=settings.query_prefix)
            rows = batch.positive_rows + batch.negative_rows
            d = encoder.embed([data.doc_texts[r] for r in rows], max_length=params.doc_max_length,
                              prefix=settings.doc_prefix)
            b = len(query_ids)
            # fp32 from here on, whatever the encoder's precision: scores and losses stay fp32
            loss, info = self.loss(q.float() * params.scale, d[:b].float(), d[b:].float(), batch, params)
            return loss, {k: float(v) for k, v in info.items() if k.endswith("_loss")}

        return step


class MinedPairStrategy(PairStrategy):
    """A pairwise strategy that draws from static hard negatives (its params: :class:`MinedParams`)."""

    def needs(self, params: MinedParams) -> Needs:  # type: ignore[override]
        return Needs(init=params.init, negatives=params.negatives_from, negatives_depth=params.negatives_depth)

    def mined(self, negatives: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
        """The mined negatives, or a clear error when the pipeline handed none."""
        if negatives is None:
            raise MissingInputError(f"{self.name} draws mined hard negatives, but none were given; "
                                    "declare them in its needs() (Needs.negatives)")
        return negatives
