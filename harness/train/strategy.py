"""What a training strategy declares, and what the pipeline hands it.

A strategy (one file in :mod:`harness.train.strategies`) is a :class:`Strategy`: its typed
parameters (a :class:`~harness.api.train_params.TrainParams` subclass), the models it
:meth:`~Strategy.needs` from earlier stages, its training :meth:`~Strategy.step` and the periodic
actions it declares (:meth:`~Strategy.hooks`, see :mod:`harness.train.hooks`). Pairwise strategies subclass
:class:`PairStrategy` and only say how a batch is drawn and which loss scores it.

Torch-free at import: `validate` reads the declarations without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from harness.api.kind import Kind
from harness.api.train_params import MinedParams, PairParams, TrainParams
from harness.train.data import TrainData
from harness.train.denoise import Denoise, Keep
from harness.train.sampling import Batch

if TYPE_CHECKING:
    import torch

    from harness.dense import EncoderSettings
    from harness.model.encoder import Encoder
    from harness.train.hooks import Hook

# What the optimisation loop calls per micro-batch: (query ids, rng, step) -> (loss, logged values).
# `step`: the optimizer steps taken before this one (0 first), the count hooks are called with.
StepFn = Callable[[list[str], np.random.Generator, int], "tuple[torch.Tensor, dict[str, float]]"]

@dataclass(frozen=True)
class Needs:
    """The models a strategy trains from, by variant name or `base`; the pipeline resolves them.

    `negatives`: the retriever (`bm25`, `base` or a dense variant) that mines static hard
    negatives once, `negatives_depth` per query, its candidates filtered by `denoise`
    (:mod:`harness.train.denoise`). `documents`: the model whose frozen corpus vectors a
    query-tower strategy trains against. A strategy that mines as it trains (ance) declares no
    `negatives` but its `denoise`, whose `filter_model` the pipeline then hands it as
    :attr:`TrainInputs.cross_filter`.
    """

    init: str
    negatives: str | None = None
    negatives_depth: int = 0
    documents: str | None = None
    denoise: Denoise = Denoise()


@dataclass(frozen=True)
class TrainInputs:
    """What the pipeline hands a strategy's step, resolved from its :class:`Needs`."""

    data: TrainData
    settings: EncoderSettings  # the init model's encoding settings (prefixes, pooling)
    seed: int
    nprobe: int
    negatives: dict[str, np.ndarray] | None = None
    frozen_docs: Callable[[], np.ndarray] | None = None  # the frozen corpus vectors, encoded on first call
    faiss_gpu: int | None = None  # the GPU a frozen index may live on (a CUDA run with faiss-gpu)
    dev_score: Callable[[Any], dict[str, float]] | None = None  # encoder -> {"dev_<metric>": v} (eval_every)
    # the cross-encoder filter (filter_model) of a strategy that mines as it trains (ance's
    # refresh), run by rank 0 and its answer handed to every rank; None without one
    cross_filter: Keep | None = None


class MissingInputError(ValueError):
    """A strategy was handed inputs without something its :class:`Needs` declared."""


class Strategy(Kind):
    """A trained dense kind.

    `tower = "shared"`: one encoder for queries and documents, both trained. `tower = "query"`:
    only the query encoder trains; documents keep the vectors of `Needs.documents`.
    """

    trains = True
    tower = "shared"
    cache_name: str | None = None  # the kind's name in cache keys (default: `name`)
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

    def corpus_encodes(self, params: TrainParams, steps: int) -> int:
        """How many times a training of `steps` optimizer steps encodes the whole training corpus
        itself (ANCE's refreshes; none by default): what `drbench plan` counts as its documents."""
        return 0


class PairStrategy(Strategy):
    """A shared-tower strategy scored by pairwise losses: draw a batch, then score it. Its params
    (:class:`PairParams`) take `chunk_size`: the batch's vectors then come from
    :func:`harness.train.gradcache.cached_embed`, and the loss is the same."""

    Params: type[TrainParams] = PairParams

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
        chunk_size = getattr(params, "chunk_size", 0)

        def embed(texts: list[str], max_length: int, prefix: str) -> torch.Tensor:
            def plain(part: Sequence[str]) -> torch.Tensor:
                return encoder.embed(part, max_length=max_length, prefix=prefix)

            if not chunk_size:
                return plain(texts)
            from harness.train.gradcache import cached_embed

            replica = encoder.pooled if encoder.world.size > 1 else None
            return cached_embed(plain, texts, chunk_size, encoder.device, replica)

        def step(query_ids: list[str], rng: np.random.Generator,
                 at: int) -> tuple[torch.Tensor, dict[str, float]]:
            batch = self.batch(query_ids, data, rng, params, inputs.negatives)
            q = embed([data.queries[x] for x in query_ids], params.query_max_length, settings.query_prefix)
            rows = batch.positive_rows + batch.negative_rows
            d = embed([data.doc_texts[r] for r in rows], params.doc_max_length, settings.doc_prefix)
            b = len(query_ids)
            # fp32 from here on, whatever the encoder's precision: scores and losses stay fp32
            loss, info = self.loss(q.float() * params.scale, d[:b].float(), d[b:].float(), batch, params)
            return loss, {k: float(v) for k, v in info.items() if k.endswith("_loss")}

        return step


class MinedPairStrategy(PairStrategy):
    """A pairwise strategy that draws from static hard negatives (its params: :class:`MinedParams`)."""

    def needs(self, params: MinedParams) -> Needs:  # type: ignore[override]
        return Needs(init=params.init, negatives=params.negatives_from, negatives_depth=params.negatives_depth,
                     denoise=Denoise.of(params))

    def mined(self, negatives: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
        """The mined negatives, or a clear error when the pipeline handed none."""
        if negatives is None:
            raise MissingInputError(f"{self.name} draws mined hard negatives, but none were given; "
                                    "declare them in its needs() (Needs.negatives)")
        return negatives
