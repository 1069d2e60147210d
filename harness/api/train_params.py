"""The keys every trained kind takes (:class:`TrainParams`) and those of the strategies that
draw mined hard negatives (:class:`MinedParams`): declarations, so the recipe loader reads them
without importing the trainers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.api.params import Params, param

MODEL_REFS = ("base",)  # what a model reference may name besides another dense variant
NEGATIVE_SOURCES = ("bm25",) + MODEL_REFS  # ... and a hard-negative miner


OPTIMIZERS = ("adamw", "lamb")
KEEPS = ("last", "best")
WARMUPS = ("shifted", "official")
SAMPLINGS = ("top", "random")  # sentence-transformers' mine_hard_negatives `sampling_strategy`

# Where the denoising keys' semantics come from: sentence-transformers' mine_hard_negatives, read at
# UKPLab/sentence-transformers@85ec6455 (5.2.0.dev0), sentence_transformers/util/hard_negatives.py.
_ST = "sentence-transformers' mine_hard_negatives, util/hard_negatives.py"
_STAR_MINING = "DRhard star/prepare_hardneg.py:52,64-68 at 15e2235"


def _at_most_one(value: float) -> str | None:
    return None if value <= 1.0 else "must be <= 1 (a probability)"


def _below_one(value: float) -> str | None:
    return None if value < 1.0 else "must be < 1 (dropout 1 zeroes every activation, and nothing trains)"


_at_most_one.bound = "<= 1"  # type: ignore[attr-defined]  # what `validate --explain` shows beside the minimum
_below_one.bound = "< 1"  # type: ignore[attr-defined]


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
    dropout: float | None = param(None, "Dropout probability (0 up to, not including, 1) of every dropout layer "
                                        "of the model while it trains; unset: the model's own (its config's, 0.1 "
                                        "for MiniLM). 0.0 makes a step deterministic, and --nproc N then trains "
                                        "what one process trains.",
                                  minimum=0.0, check=_below_one, paper="unset: the model's own (0.1 for RoBERTa)",
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


_GRADCACHE = "Gao et al. 2021, Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup"


@dataclass(frozen=True)
class PairParams(TrainParams):
    """Keys of the shared-tower pair strategies (inbatch, random, static, star, ance)."""

    chunk_size: int = param(0, "Gradient caching (GradCache, an implementation of " + _GRADCACHE + "): encode a "
                               "step's queries and documents N at a time, first without a graph, then again per "
                               "chunk to back-propagate the whole batch's loss, so peak memory is that of N texts "
                               "at the cost of a second forward pass. The same training (with dropout = 0.0, the "
                               "same losses up to float rounding), in the model's key when set. 0: off. Texts "
                               "that fit in one chunk are encoded at once.", minimum=0,
                            paper="0: the official DRhard/STAR code has no such option (STAR's batch of 256 ran "
                                  "without gradient caching, in fp16 on a GPU)", added=True)


class Denoised:
    """What every params class that declares the denoising keys (`range_min`, `max_score`, the
    margins, `sampling`, `filter_model`, `filter_max_score`) shares: their consistency check and
    their key. Listed before the dataclass base (`class X(Denoised, PairParams)`): it declares no
    field, and its :meth:`key_dict` wraps the dataclass's."""

    range_min: int
    relative_margin: float | None
    filter_model: str | None
    filter_max_score: float | None

    def candidate_depth(self) -> tuple[str, int | None]:
        """The key that bounds the candidates and its value (None: unbounded): static mining's
        `range_max`; a strategy that names its depth otherwise (ance: `negatives_depth`) says so."""
        return "range_max", getattr(self, "range_max")

    def mining_problem(self) -> tuple[str, object, str] | None:
        """(key, value, problem) when the denoising keys contradict each other, else None."""
        depth_key, depth = self.candidate_depth()
        if depth is not None and self.range_min >= depth:
            return "range_min", self.range_min, f"must be below {depth_key} ({depth})"
        if self.relative_margin is not None and self.relative_margin >= 1:
            return "relative_margin", self.relative_margin, "must be below 1 (1 rejects every candidate)"
        if self.filter_max_score is not None and self.filter_model is None:
            return "filter_max_score", self.filter_max_score, "needs filter_model, the cross-encoder that scores"
        if self.filter_model is not None and self.filter_max_score is None:
            return ("filter_model", self.filter_model,
                    "needs filter_max_score, the score a kept candidate stays below (RocketQA: 0.1)")
        return None

    def key_dict(self) -> dict[str, Any]:
        """:meth:`Params.key_dict` without the cross-encoder's folder: its content's fingerprint
        enters the key instead (the negatives' key, :meth:`harness.train.denoise.Denoise.key`,
        which every key of a model trained on them holds; ance's training key, through its
        strategy's `key_parts`), so moving the folder invalidates nothing."""
        return {k: v for k, v in super().key_dict().items() if k != "filter_model"}  # type: ignore[misc]


@dataclass(frozen=True)
class MinedParams(Denoised, PairParams):
    """Keys of the strategies that draw static hard negatives, mined once by a fixed retriever."""

    negatives_from: str = param("bm25", "Retriever that mines hard negatives once: `bm25`, `base`, or a dense "
                                        "variant's name.", refers=NEGATIVE_SOURCES)
    negatives_depth: int = param(200, "Hard negatives kept per query after removing positives.", minimum=1,
                                 paper="200")
    # Denoising (issue 22): which mined candidates may become negatives. Applied in
    # harness/train/denoise.py; at their defaults the negatives (and their cache key) are today's.
    range_min: int = param(0, "Skip the first N candidates that survive the filters below (the likeliest false "
                              f"negatives), after the filters as in {_ST}:577-579.", minimum=0, added=True,
                           paper=f"0: the official STAR mining skips no rank ({_STAR_MINING})")
    range_max: int | None = param(None, "Candidate depth: only the first N ranks without the query's positives "
                                        f"are candidates ({_ST}:458, 574). Unset: all that the miner retrieves, "
                                        "negatives_depth + range_min + 10 (today's depth; s-t's own default with "
                                        "a filter is 10 x the negatives, :296-302).", minimum=1, added=True,
                                  paper=f"unset: the official STAR mining retrieves topk + 10 ranks and drops the "
                                        f"positives among them ({_STAR_MINING})")
    max_score: float | None = param(None, "Reject a candidate the miner scores above this, BM25 score or dot "
                                          f"product ({_ST}:550-551).", added=True,
                                    paper=f"unset: the official STAR mining filters no score ({_STAR_MINING})")
    absolute_margin: float | None = param(None, "Reject a candidate scoring within this of the positive: kept "
                                                "only if score <= positive - margin, the positive being the "
                                                f"query's lowest-scoring one ({_ST}:523-532).",
                                          minimum=0.0, added=True,
                                          paper=f"unset: the official STAR mining has no margin ({_STAR_MINING})")
    relative_margin: float | None = param(None, "Reject a candidate scoring above (1 - margin) x the score of the "
                                                f"query's lowest-scoring positive ({_ST}:523-528, 540-541). Below 1.",
                                          minimum=0.0, added=True,
                                          paper="unset in the official STAR mining; 0.05 is NV-Retriever's "
                                                "TopK-PercPos (95% of the positive)")
    sampling: str = param("top", "top: the best negatives_depth eligible candidates; random: negatives_depth of "
                                 "them drawn with the recipe's seed, kept in rank order "
                                 f"({_ST}:582-596).", choices=SAMPLINGS, added=True,
                          paper=f"top: the official STAR mining keeps the first topk non-positives ({_STAR_MINING})")
    # RocketQA's denoising (Qu et al., NAACL 2021): a cross-encoder vetoes likely false negatives.
    # Applied in harness/train/cross_filter.py, after the filters above and before range_min.
    filter_model: str | None = param(None, "A local cross-encoder folder (a Hugging Face sequence-classification "
                                           "model with one output, as sentence-transformers' CrossEncoder saves) "
                                           "that scores (query, document) in fp32 on the run's device each "
                                           "candidate the filters above leave, before range_min and sampling; with "
                                           "filter_max_score. In the negatives' key by its files' fingerprint, not "
                                           "its path.", added=True,
                                     paper="unset: DRhard has no cross-encoder (RocketQA's denoising)")
    filter_max_score: float | None = param(None, "Keep a candidate only if the cross-encoder scores it below this. "
                                                 "The score is sigmoid(logit) of its one output, a probability in "
                                                 "(0, 1), not the raw logit: what sentence-transformers' "
                                                 "CrossEncoder.predict returns by default. RocketQA's score is the "
                                                 "same kind of number, the softmax probability of the relevant class "
                                                 "of a two-output cross-encoder, sigmoid(logit1 - logit0); a "
                                                 "threshold carries over only between similarly calibrated models. "
                                                 "With filter_model.",
                                           minimum=0.0, check=_at_most_one, added=True,
                                           paper="0.1: RocketQA keeps a retrieved candidate only if its cross-encoder "
                                                 "scores it < 0.1 (research/RocketQA_NAACL2021/data_process/"
                                                 "construct_marco_train_de.py:14,29-36 at e2bfcfc)")
