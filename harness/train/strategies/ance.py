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

Denoising (issue 22 §2): the keys static and star mine with (`range_min`, `max_score`,
`absolute_margin`, `relative_margin`, `sampling`, `filter_model`, `filter_max_score`; see
:mod:`harness.train.denoise`, sentence-transformers' `mine_hard_negatives` semantics) apply to every
refresh. The candidates are the current model's top `negatives_depth` ranks without the query's
positives, scored by the refresh's own vectors (raw q.d, before `scale`); the margins are taken
against the query's lowest-scoring positive, scored from the same vectors
(:func:`harness.train.mining.dense_positive_scores`). `negatives_depth` is ance's `range_max`, and
ance takes no `range_max` key: the official code counts its 200 ranks with the positives among them,
s-t's `range_max` counts ranks without them, and two keys bounding one list would contradict each
other. Which candidates are eligible is decided by
:func:`harness.train.denoise.denoised_negatives` (the same code as static's); how `negatives` of them
are drawn is :func:`draw_negatives`' (see there why the official shuffle stays). With every key at
its default the negatives, and the model's key, are exactly those of ance before the keys existed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

import numpy as np

from harness.api.params import like, param
from harness.api.train_params import Denoised, MinedParams, PairParams, TrainParams
from harness.train.data import TrainData
from harness.train.denoise import Denoise, Keep, denoised_negatives
from harness.train.hooks import Hook, ignore
from harness.train.sampling import Batch, draw_mined, sample_positives
from harness.train.strategy import MissingInputError, Needs, PairStrategy, StepFn, TrainInputs

if TYPE_CHECKING:
    import torch

    from harness.model.encoder import Encoder


_ST = "sentence-transformers' mine_hard_negatives, util/hard_negatives.py"  # as MinedParams' help cites it
_DRAW = "run_ann_data_gen.py:339-396"  # the official draw, GenerateNegativePassaageID


@dataclass(frozen=True)
class AnceParams(Denoised, PairParams):
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
                                    "optimizer steps (and once before the first; never after the last, whose "
                                    "negatives would train nothing), with the lengths and prefixes the model "
                                    "trains with; each refresh shows as a stage of the training's progress. At "
                                    "least 2: the refresh before step 1 logs into step 1's row, where a refresh "
                                    "after it would log too.",
                               minimum=2,
                               paper="10000: a new checkpoint, hence new negatives, every --save_steps 10000 "
                                     "(commands/run_train.sh:113), generated asynchronously")
    negatives_depth: int = param(200, "Rank of the current model's exact ranking down to which negatives are "
                                      "drawn (judged positives left out): ance's range_max, the candidate depth "
                                      "of the denoising keys below, so ance takes no range_max key. Counted as "
                                      "the official code counts it, positives among the N ranks (the range_max of "
                                      f"{_ST}:458, 574 counts N ranks without them).", minimum=1,
                                 paper="200 (--topk_training, commands/run_train.sh:93)")
    negatives: int = param(20, "Negatives drawn per query and refresh from the eligible candidates of its top "
                               "negatives_depth (see sampling); each step pairs a query with one of them.", minimum=1,
                           paper="20 (--negative_sample, commands/run_train.sh:93), one triple each")
    # Denoising (issue 22 §2): MinedParams' keys, applied at every refresh to the current model's
    # ranking (harness/train/denoise.py; see the module docstring). At their defaults: today's draw.
    range_min: int = like(MinedParams, "range_min",
                          help="Skip the first N candidates of the current model's top negatives_depth that survive "
                               f"the filters below (the likeliest false negatives), after the filters as in "
                               f"{_ST}:577-579. Below negatives_depth.",
                          paper=f"0: the official draw skips only the positives ({_DRAW})")
    max_score: float | None = like(MinedParams, "max_score",
                                   help="Reject a candidate the current model scores above this: q.d of the vectors "
                                        f"the refresh encodes, before scale ({_ST}:550-551).",
                                   paper=f"unset: the official draw filters no score ({_DRAW})")
    absolute_margin: float | None = like(MinedParams, "absolute_margin",
                                         help="Reject a candidate scoring within this of the positive: kept only if "
                                              "q.d <= positive - margin, the positive being the query's "
                                              "lowest-scoring one under the same refresh's vectors "
                                              f"({_ST}:523-532).",
                                         paper=f"unset: the official draw has no margin ({_DRAW})")
    relative_margin: float | None = like(MinedParams, "relative_margin",
                                         help="Reject a candidate scoring above (1 - margin) x the q.d of the query's "
                                              "lowest-scoring positive under the same refresh's vectors "
                                              f"({_ST}:523-528, 540-541). Below 1.",
                                         paper="unset in the official ANCE; 0.05 is NV-Retriever's TopK-PercPos "
                                               "(95% of the positive)")
    sampling: str = like(MinedParams, "sampling", default="random",
                         help="random: the official draw, the top negatives_depth shuffled with the recipe's seed and "
                              "the refresh's step, the first `negatives` eligible ones kept, in that shuffled order "
                              f"(the same draw as {_ST}:586-596, which keeps rank order; each step picks one of them "
                              "at random either way); top: the best `negatives` eligible ones, in rank order "
                              f"({_ST}:582-584).",
                         paper=f"random (shuffle the top 200, keep the first 20 non-positives, {_DRAW})")
    filter_model: str | None = like(MinedParams, "filter_model",
                                    help="A local cross-encoder folder (a Hugging Face sequence-classification model "
                                         "with one output, as sentence-transformers' CrossEncoder saves) that scores "
                                         "(query, document) in fp32 on the run's device, at every refresh, each "
                                         "candidate the filters above leave (up to queries x negatives_depth pairs), "
                                         "before range_min and sampling; with filter_max_score. In the model's key "
                                         "by its files' fingerprint, not its path.",
                                    paper="unset: ANCE has no cross-encoder (RocketQA's denoising)")
    filter_max_score: float | None = like(MinedParams, "filter_max_score")

    # ance's candidate depth is negatives_depth: a recipe that writes range_max is told so
    instead: ClassVar[dict[str, str]] = {
        "range_max": "ance's candidate depth is negatives_depth (its top N ranks, official 200); set that instead"}

    def candidate_depth(self) -> tuple[str, int | None]:
        return "negatives_depth", self.negatives_depth


# ance's defaults: the official draw, nothing filtered (AnceParams' denoising keys unset)
OFFICIAL = Denoise(sampling="random")


@dataclass(frozen=True)
class DrawCounts:
    """What one refresh's denoising did, summed over the training queries."""

    candidates: int  # ranked rows that are not the query's positives
    scored_out: int  # rejected by max_score or a margin
    filtered_out: int  # rejected by the cross-encoder (filter_model)
    skipped: int  # the first range_min survivors
    eligible: int  # what `negatives` were drawn from


def draw_negatives(ranked: np.ndarray, data: TrainData, count: int, rng: np.random.Generator,
                   denoise: Denoise = OFFICIAL, scores: np.ndarray | None = None,
                   positive_scores: dict[str, Sequence[float]] | None = None,
                   keep: Keep | None = None) -> tuple[dict[str, np.ndarray], DrawCounts]:
    """Each training query's `count` negatives from its ranked rows (`ranked[i]` for
    `data.query_ids[i]`, best first, -1 for none; `scores[i]` their q.d), and the counts.

    Which candidates are eligible is :func:`harness.train.denoise.denoised_negatives`' decision
    (positives out, then `max_score` and the margins against `positive_scores`, the cross-encoder
    `keep`, `range_min`), as for static's mined negatives. The draw among them is ance's own:
    with `sampling = "random"` the official `GenerateNegativePassaageID` (shuffle the whole ranked
    row, skip what is not eligible, keep the first `count`: a uniform draw, in shuffled order);
    with "top", the first `count` in rank order. The official shuffle stays rather than
    `denoised_negatives`' own random draw (`rng.choice` over the eligible, kept in rank order: the
    same distribution) because only the shuffle of the whole row reproduces, with every key at
    its default, the negatives ance drew before the denoising keys existed, and with them the
    losses and weights of every run trained then.

    >>> data = TrainData(("q",), {"q": "x"}, {"q": (1,)}, ("a", "b", "c", "d"))
    >>> sorted(draw_negatives(np.array([[1, 3, 0, -1]]), data, 5, np.random.default_rng(0))[0]["q"].tolist())
    [0, 3]
    >>> scores = np.array([[9.0, 8.9, 5.0, 0.0]])
    >>> draw_negatives(np.array([[1, 3, 0, -1]]), data, 5, np.random.default_rng(0),
    ...                Denoise(relative_margin=0.05, sampling="top"), scores, {"q": [9.0]})[0]["q"].tolist()
    [0]
    """
    if denoise.range_max is not None:
        raise ValueError("ance's candidate depth is the ranking's (negatives_depth), not range_max")
    if denoise.needs_scores and scores is None:
        raise ValueError("max_score and the margins need the ranking's scores")
    if denoise.filter_model is not None and keep is None:
        raise ValueError("filter_model needs the cross-encoder filter (harness.train.cross_filter)")
    scored = np.zeros(ranked.shape) if scores is None else scores
    candidates = {q: [(int(r), float(s)) for r, s in zip(ranked[i], scored[i]) if r >= 0]
                  for i, q in enumerate(data.query_ids)}
    passed: dict[str, int] = {}

    def counted(eligible: dict[str, list[int]]) -> dict[str, list[int]]:
        passed["scores"] = sum(map(len, eligible.values()))
        kept = eligible if keep is None else keep(eligible)
        passed["filter"] = sum(map(len, kept.values()))
        return kept

    eligible = denoised_negatives(candidates, ranked.shape[1], data, replace(denoise, sampling="top"),
                                  positive_scores, keep=counted)
    drawn = {}
    for i, q in enumerate(data.query_ids):
        if denoise.sampling == "top":
            drawn[q] = eligible[q][:count]
        else:
            allowed = set(eligible[q].tolist())
            shuffled = ranked[i][rng.permutation(ranked.shape[1])]
            drawn[q] = np.asarray([r for r in shuffled if r in allowed][:count], dtype=np.int64)
    total = sum(len(candidates[q]) - len(set(data.positives[q]) & {r for r, _ in candidates[q]})
                for q in data.query_ids)
    left = sum(len(v) for v in eligible.values())
    return drawn, DrawCounts(total, total - passed["scores"], passed["scores"] - passed["filter"],
                             passed["filter"] - left, left)


class Refresh(Hook):
    """ANCE's refresh: the current model's negatives for every training query.

    `negatives` is the dict the step function draws from; a refresh (or a resumed checkpoint)
    replaces its contents in place. Every rank encodes its share of the corpus and gets all
    vectors back (:meth:`~harness.model.encoder.Encoder.encode`), ranks and draws the same
    negatives from `rng([seed, step])`, so the ranks agree without exchanging them. The
    cross-encoder filter (`filter_model`, :attr:`TrainInputs.cross_filter`) is the exception: the
    pipeline has rank 0 score and hand every rank its answer, and it loads the model at each refresh.
    """

    name = "ance"
    at_start = True
    announce = "refreshing negatives"

    def __init__(self, encoder: Encoder, params: AnceParams, inputs: TrainInputs) -> None:
        self.encoder, self.params, self.inputs = encoder, params, inputs
        self.every = params.refresh_every
        self.negatives: dict[str, np.ndarray] = {}

    def due(self, step: int, total: int) -> bool:
        """Before the first step and after every `every`-th, but not after the last: negatives
        drawn then would train nothing (what :meth:`Ance.corpus_encodes` counts)."""
        return step < total and super().due(step, total)

    def work(self) -> tuple[int, str]:
        return len(self.inputs.data.doc_texts) + len(self.inputs.data.query_ids), "texts"

    def run(self, step: int, advance: Callable[[int], None] = ignore) -> dict[str, Any]:  # type: ignore[override]
        from harness.index.faiss_index import exact_search

        start = time.perf_counter()
        data, settings, params = self.inputs.data, self.inputs.settings, self.params
        encoder, prefix = self.encoder, self.encoder.prefix
        try:
            encoder.prefix = settings.doc_prefix
            docs = encoder.encode(data.doc_texts, max_length=params.doc_max_length, progress=advance)
            encoder.prefix = settings.query_prefix
            queries = encoder.encode([data.queries[q] for q in data.query_ids], max_length=params.query_max_length,
                                     progress=advance)
        finally:
            encoder.prefix = prefix
        scores, ranked, _ = exact_search(docs, queries, min(params.negatives_depth, len(docs)),
                                         gpu=self.inputs.faiss_gpu)
        denoise = Denoise.of(params)
        positive_scores = None
        if denoise.needs_positive_scores:
            from harness.train.mining import dense_positive_scores

            positive_scores = dense_positive_scores(docs, queries, data)
        fresh, counts = draw_negatives(ranked, data, params.negatives, np.random.default_rng([self.inputs.seed, step]),
                                       denoise, scores, positive_scores, self.inputs.cross_filter)
        self.negatives.clear()
        self.negatives.update(fresh)
        refresh = {"step": step, "documents": len(docs), "queries": len(queries),
                   "seconds": round(time.perf_counter() - start, 3)}
        if denoise != OFFICIAL:  # only then: the rows of an undenoised run stay as they were
            refresh["denoise"] = asdict(counts)
        return {"refresh": refresh}

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

    def needs(self, params: AnceParams) -> Needs:  # type: ignore[override]
        # no mined negatives: `denoise` only asks the pipeline for the cross-encoder (TrainInputs.cross_filter)
        return Needs(init=params.init, denoise=Denoise.of(params))

    def key_parts(self, params: AnceParams, inputs: TrainInputs) -> dict[str, Any]:  # type: ignore[override]
        """The cross-encoder by its content (its folder is not in the params' key), when there is one;
        the device it scores on is the model's, already in the key."""
        identity = Denoise.of(params).filter_identity()
        return {"filter_model": identity} if identity else {}

    def corpus_encodes(self, params: AnceParams, steps: int) -> int:  # type: ignore[override]
        """A refresh before step 1 and after every `refresh_every` steps but the last.

        >>> Ance().corpus_encodes(AnceParams(refresh_every=26), 78), Ance().corpus_encodes(AnceParams(refresh_every=2), 3)
        (3, 2)
        """
        return 1 + (steps - 1) // params.refresh_every if steps > 0 else 0

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
