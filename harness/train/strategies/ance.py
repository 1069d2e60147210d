"""`kind = "ance"` (ANCE, Xiong et al., ICLR 2021): one shared tower trained on (query, positive,
negative) triples whose negatives the model being trained retrieves for itself.

Every `refresh_every` optimizer steps, and once before the first, a hook (:class:`Refresh`)
re-encodes the corpus and the training queries with the current weights, ranks exactly (faiss
Flat), and redraws each query's `negatives` from its top `negatives_depth`, judged positives left
out. Each step then scores every query of the batch against one positive and one of its current
negatives with ANCE's loss, -log softmax(q.d+, q.d-)[0] (no in-batch negatives).

Followed, microsoft/ANCE at c8439df:
* drawing: `drivers/run_ann_data_gen.py:339-396` (`GenerateNegativePassaageID`): shuffle the
  top-`topk_training` rows, skip the positive and any repeat, keep the first `negative_sample`;
  the training commands set `--topk_training 200 --negative_sample 20` (`commands/run_train.sh:93`,
  `commands/run_ann_data_gen.sh:48`; the argparse defaults, 500 and 5, are not what was run).
* triples: `data/msmarco_data.py:337-362` yields one (query, positive, negative) example per
  negative; `drivers/run_ann.py:198-201` trains on them with `--triplet`.
* loss: `model/models.py:58-81` (`NLL.forward`, which `RobertaDot_NLL_LN` inherits): logits
  `[q.d+, q.d-]`, `loss = -log_softmax(logits)[:, 0]`, averaged over the batch.
* cadence: `commands/run_train.sh:113` saves a checkpoint every 10000 steps (`--save_steps`);
  the generator (`run_ann_data_gen.py:663-702`) turns each new checkpoint into new negatives,
  asynchronously, for a fifth of the queries at a time (`--ann_chunk_factor`, default 5,
  `run_ann_data_gen.py:542-547` and `280-296`). drbench refreshes synchronously and every query
  at once (README, "Training strategies").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from harness.api.params import like, param
from harness.api.train_params import PairParams, TrainParams
from harness.train.data import TrainData
from harness.train.hooks import Hook
from harness.train.sampling import Batch, draw_mined, sample_positives
from harness.train.strategy import MissingInputError, PairStrategy, StepFn, TrainInputs

if TYPE_CHECKING:
    import torch

    from harness.model.encoder import Encoder


@dataclass(frozen=True)
class AnceParams(PairParams):
    init: str = like(TrainParams, "init", paper="the BM25 warm-up checkpoint (README.md:61-62; "
                                               "drivers/run_warmup.py:743 reads MS MARCO's BM25 triples): "
                                               "here a `static` variant")
    batch_size: int = like(TrainParams, "batch_size", help="Triples (query, positive, negative) per step.",
                           paper="64: 8 per GPU x 4 GPUs x 2 accumulated (passage, commands/run_train.sh:24-35)")
    optimizer: str = like(TrainParams, "optimizer",
                          paper="lamb (commands/run_train.sh:113; drivers/run_ann.py:458-459)")
    lr: float = like(TrainParams, "lr", paper="1e-6 with LAMB (passage, commands/run_train.sh:36)")
    warmup_steps: int = like(TrainParams, "warmup_steps", paper="5000 (passage, commands/run_train.sh:33)")
    weight_decay: float = like(TrainParams, "weight_decay", paper="0.0 (drivers/run_ann.py:486-487)")
    query_max_length: int = like(TrainParams, "query_max_length",
                                 paper="64 (--max_query_length default, drivers/run_ann.py:429-431)")
    doc_max_length: int = like(TrainParams, "doc_max_length",
                               paper="512 (passage seq_length, commands/run_train.sh:25)")
    refresh_every: int = param(100, "Re-encode the corpus and redraw every training query's negatives every N "
                                    "optimizer steps (and once before the first), with the lengths and prefixes "
                                    "the model trains with.", minimum=1,
                               paper="10000: a new checkpoint, hence new negatives, every --save_steps 10000 "
                                     "(commands/run_train.sh:113), generated asynchronously")
    negatives_depth: int = param(200, "Rank of the current model's exact ranking down to which negatives are "
                                      "drawn (judged positives left out).", minimum=1,
                                 paper="200 (--topk_training, commands/run_train.sh:93)")
    negatives: int = param(20, "Negatives drawn at random per query and refresh from its top negatives_depth; "
                               "each step pairs a query with one of them.", minimum=1,
                           paper="20 (--negative_sample, commands/run_train.sh:93), one triple each")


def draw_negatives(ranked: np.ndarray, data: TrainData, count: int,
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Each training query's `count` negatives: its ranked rows (`ranked[i]` for `data.query_ids[i]`,
    -1 for none) shuffled, its positives skipped, the first `count` kept, as the official
    `GenerateNegativePassaageID` does.

    >>> data = TrainData(("q",), {"q": "x"}, {"q": (1,)}, ("a", "b", "c", "d"))
    >>> sorted(draw_negatives(np.array([[1, 3, 0, -1]]), data, 5, np.random.default_rng(0))["q"].tolist())
    [0, 3]
    """
    drawn = {}
    for i, query_id in enumerate(data.query_ids):
        positives = set(data.positives[query_id])
        shuffled = ranked[i][rng.permutation(ranked.shape[1])]
        drawn[query_id] = np.asarray([r for r in shuffled if r >= 0 and r not in positives][:count], dtype=np.int64)
    return drawn


class Refresh(Hook):
    """ANCE's refresh: the current model's negatives for every training query.

    `negatives` is the dict the step function draws from; a refresh (or a resumed checkpoint)
    replaces its contents in place. Every rank encodes its share of the corpus and gets all
    vectors back (:meth:`~harness.model.encoder.Encoder.encode`), ranks and draws the same
    negatives from `rng([seed, step])`, so the ranks agree without exchanging them.
    """

    name = "ance"
    at_start = True

    def __init__(self, encoder: Encoder, params: AnceParams, inputs: TrainInputs) -> None:
        self.encoder, self.params, self.inputs = encoder, params, inputs
        self.every = params.refresh_every
        self.negatives: dict[str, np.ndarray] = {}

    def run(self, step: int) -> dict[str, Any]:
        from harness.index.faiss_index import exact_search

        start = time.perf_counter()
        data, settings, params = self.inputs.data, self.inputs.settings, self.params
        encoder, prefix = self.encoder, self.encoder.prefix
        try:
            encoder.prefix = settings.doc_prefix
            docs = encoder.encode(data.doc_texts, max_length=params.doc_max_length)
            encoder.prefix = settings.query_prefix
            queries = encoder.encode([data.queries[q] for q in data.query_ids], max_length=params.query_max_length)
        finally:
            encoder.prefix = prefix
        _, ranked, _ = exact_search(docs, queries, min(params.negatives_depth, len(docs)), gpu=self.inputs.faiss_gpu)
        fresh = draw_negatives(ranked, data, params.negatives, np.random.default_rng([self.inputs.seed, step]))
        self.negatives.clear()
        self.negatives.update(fresh)
        return {"refresh": {"step": step, "documents": len(docs), "queries": len(queries),
                            "seconds": round(time.perf_counter() - start, 3)}}

    def state(self) -> dict[str, Any]:
        import torch

        if not self.negatives:
            return {}
        query_ids = self.inputs.data.query_ids
        table = torch.full((len(query_ids), self.params.negatives), -1, dtype=torch.int64)
        for i, query_id in enumerate(query_ids):
            rows = self.negatives[query_id]
            table[i, :len(rows)] = torch.from_numpy(rows)
        return {"rows": table}

    def load(self, state: dict[str, Any]) -> None:
        if "rows" not in state:
            return
        table = state["rows"].numpy()
        self.negatives.clear()
        self.negatives.update({q: row[row >= 0].copy() for q, row in zip(self.inputs.data.query_ids, table)})


def ance_loss(q: torch.Tensor, d_pos: torch.Tensor, d_neg: torch.Tensor) -> torch.Tensor:
    """ANCE's loss (`model/models.py:58-81`): -log softmax([q.d+, q.d-])[0], averaged over the batch."""
    import torch

    logits = torch.stack([(q * d_pos).sum(-1), (q * d_neg).sum(-1)], dim=1)
    return -torch.log_softmax(logits, dim=1)[:, 0].mean()


class Ance(PairStrategy):
    name = "ance"
    help = "ANCE: negatives from the model's own exact ranking, refreshed every N steps."
    Params = AnceParams

    def hooks(self, encoder: Encoder, params: AnceParams,  # type: ignore[override]
              inputs: TrainInputs) -> list[Hook]:
        return [Refresh(encoder, params, inputs)]

    def step(self, encoder: Encoder, params: AnceParams, inputs: TrainInputs,  # type: ignore[override]
             hooks: Sequence[Hook] = ()) -> StepFn:
        refresh = next((hook for hook in hooks if isinstance(hook, Refresh)), None)
        if refresh is None:
            raise MissingInputError("ance draws its negatives from its refresh hook, but the step was handed none")
        # the hook's dict itself: every refresh shows in the batches after it
        return super().step(encoder, params, replace(inputs, negatives=refresh.negatives), hooks)

    def batch(self, query_ids: list[str], data: TrainData, rng: np.random.Generator, params: AnceParams,
              negatives: dict[str, np.ndarray] | None) -> Batch:
        positives = sample_positives(query_ids, data, rng)
        # a query whose top list held nothing but positives gets a random document (draw_mined)
        return Batch(query_ids, positives, draw_mined(query_ids, negatives or {}, 1, rng, len(data.doc_texts)))

    def loss(self, q: torch.Tensor, d_pos: torch.Tensor, d_neg: torch.Tensor, batch: Batch,
             params: AnceParams) -> tuple[torch.Tensor, dict[str, float]]:
        return ance_loss(q, d_pos, d_neg), {}


KIND = Ance()
