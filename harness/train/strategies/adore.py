"""`kind = "adore"` (ADORE): only the query encoder trains, retrieving live from a frozen
document index of another model; RankNet pairs over the retrieved list, weighted by the change
of MRR (or nDCG) when two documents swap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from harness.api.params import like, param
from harness.api.train_params import MODEL_REFS, TrainParams
from harness.index.faiss_index import codebook_key, search_key
from harness.train.strategy import MissingInputError, Needs, StepFn, Strategy, TrainInputs

if TYPE_CHECKING:
    from harness.model.encoder import Encoder
    from harness.train.hooks import Hook

WEIGHTINGS = ("mrr", "ndcg")
LOSS_DIVISORS = ("actual", "nominal")
CLIPS = ("step", "micro")
LOSS_VERSION = 2  # of adore_query_loss; part of every ADORE cache key


@dataclass(frozen=True)
class QueryTowerParams(TrainParams):
    """What ADORE and STAR+ADORE share: the optimiser keys, and how the live list is scored."""

    init: str = param("", "Query encoder to start from; empty: the document model's own (shared) tower.",
                      refers=MODEL_REFS)
    batch_size: int = like(TrainParams, "batch_size", paper="32")
    lr: float = like(TrainParams, "lr", default=5e-6, paper="5e-6")
    warmup_steps: int = like(TrainParams, "warmup_steps", paper="2000")
    query_max_length: int = like(TrainParams, "query_max_length", paper="64")
    doc_max_length: int = like(TrainParams, "doc_max_length", paper=None,
                               help="Unused: documents keep their frozen vectors.")
    top_k: int = param(200, "Documents retrieved per query and step.", minimum=1, paper="200")
    metric_cut: int = param(200, "1/rank counts up to this rank in the pair weights abs(1/i - 1/j) (10 weighs "
                                 "only swaps that move MRR@10, the paper's metric).", minimum=1,
                            paper="200, = top_k, in the official MS MARCO passage command; its argparse "
                                  "default (None) zeroes every weight")
    weighting: str = param("mrr", "Pair weights: delta-MRR (paper) or delta-nDCG for graded qrels.",
                           choices=WEIGHTINGS, paper="mrr")
    loss_divisor: str = param("actual", "What the summed per-query losses of a micro-batch are divided by: actual, "
                                        "the queries it holds; nominal, batch_size, as the official code "
                                        "(DRhard adore/train.py:223 `loss /= (args.train_batch_size * "
                                        "args.gradient_accumulation_steps)`), which weighs an epoch's short last "
                                        "batch less.", choices=LOSS_DIVISORS, paper="nominal", added=True)
    clip: str = param("step", "When gradients are clipped at grad_clip: step, once before each optimizer step; "
                              "micro, also after every micro-batch's backward (the gradient summed so far), as the "
                              "official code (DRhard adore/train.py:227, inside the accumulation loop). The two "
                              "differ only when grad_accum > 1; with several processes, micro clips each rank's "
                              "own sum before the last micro-batch.", choices=CLIPS, paper="micro", added=True)
    train_index: str = param("Flat", "faiss factory string of the index ADORE trains against "
                                     "(compression-aware ADORE).")


@dataclass(frozen=True)
class AdoreParams(QueryTowerParams):
    index_from: str = param("base", "Model whose frozen document vectors ADORE retrieves from: `base` or a "
                                    "dense variant's name.", refers=MODEL_REFS)


class Adore(Strategy):
    name = "adore"
    help = "ADORE: query encoder vs a frozen index."
    tower = "query"
    cache_name = "adore"  # star+adore inherits it: the same training, so the same cache keys
    Params: type[QueryTowerParams] = AdoreParams

    def documents(self, params: AdoreParams) -> str:
        """The model whose frozen corpus vectors the query encoder trains against."""
        return params.index_from

    def needs(self, params: AdoreParams) -> Needs:  # type: ignore[override]
        documents = self.documents(params)
        return Needs(init=params.init or documents, documents=documents)

    def step(self, encoder: Encoder, params: QueryTowerParams,  # type: ignore[override]
             inputs: TrainInputs, hooks: Sequence[Hook] = ()) -> StepFn:
        from harness.train.frozen_index import frozen_index, live_retrieval_step

        if inputs.frozen_docs is None:
            raise MissingInputError(f"{self.name} trains against frozen document vectors, but none were given")
        index = frozen_index(params.train_index, inputs.frozen_docs(), inputs.seed, inputs.nprobe, inputs.faiss_gpu)
        return live_retrieval_step(encoder, params, inputs.data, index, inputs.settings)

    def key_parts(self, params: QueryTowerParams,  # type: ignore[override]
                  inputs: TrainInputs) -> dict[str, Any]:
        # loss_version 2: the official loss, twice what drbench computed before (losses.adore_query_loss),
        # so no model trained with the half is reused. A compressed index's codes depend on how its
        # codebooks were trained (faiss_index.CODEBOOK_VERSION), and an IVF index searches `nprobe`
        # lists: what training retrieves depends on both.
        return {"loss_version": LOSS_VERSION} | codebook_key(params.train_index) | search_key(params.train_index,
                                                                                            inputs.nprobe)


KIND = Adore()
