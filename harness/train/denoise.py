"""Denoised hard negatives: which mined candidates may become negatives (issue 22 §2).

The semantics are sentence-transformers' `mine_hard_negatives`, read at
UKPLab/sentence-transformers@85ec6455 (5.2.0.dev0), `sentence_transformers/util/hard_negatives.py`:

* candidates: the ranking with the query's positives removed (:458, :508-517), the first
  `range_max` of them (:574);
* margins, against the query's *lowest*-scoring positive (:523-528): a candidate is rejected when
  `score + absolute_margin > positive` (:532) or `score > positive * (1 - relative_margin)` (:541);
  then `score > max_score` (:550-551);
* `range_min`: the first `range_min` candidates that survive are skipped (:577-579, after the
  filters, as there);
* `sampling`: "top" keeps the best `depth` of the rest (:582-584); "random" draws `depth` of them
  without replacement and keeps them best first (:586-596); fewer than `depth` left: all of them.

Three differences, all deliberate. s-t retrieves `range_max + max_positives` over the whole data
set (:458), so a query with fewer positives than the largest set gets a few extra candidates; here
every query has exactly `range_max` non-positive candidates. Unset, s-t's `range_max` is
`range_min + 10 * num_negatives + max_positives` when a filter is set (:296-302); here it is what
the miner retrieves, `range_min + negatives_depth + 10` plus room for the positives
(:meth:`Denoise.retrieve_depth`), since 10 x 200 candidates per MS MARCO query would not fit; set
`range_max` for more room. And s-t's per-query minimum of positives walks its offsets with
`n_positives[q_idx - 1]` (:529), which misaligns queries whose positive counts differ; here each
query's own positives are used. Scores are the miner's, as s-t's are its model's: dot products for
a dense miner, BM25 scores for BM25 (the positives scored by the same index,
:func:`harness.retrieval.bm25.bm25_search_scoring`). With every setting at its default the result is
:func:`harness.train.mining.hard_negatives`' exactly.

The optional cross-encoder filter (`filter_model`, `filter_max_score`; RocketQA's denoising, which
s-t's function does not have) runs where RocketQA runs it, on the retriever's candidates: after
the candidate depth and the score filters above and before `range_min` and sampling, so that
`range_min` skips the first survivors of every filter and sampling draws only among candidates
the cross-encoder let through (:mod:`harness.train.cross_filter`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Sequence

import numpy as np

from harness.api.train_params import Denoised
from harness.train.data import TrainData


@dataclass(frozen=True)
class Denoise:
    """The denoising keys of a :class:`~harness.api.train_params.MinedParams` or an
    :class:`~harness.train.strategies.ance.AnceParams` (see their help)."""

    range_min: int = 0
    range_max: int | None = None
    max_score: float | None = None
    absolute_margin: float | None = None
    relative_margin: float | None = None
    sampling: str = "top"
    filter_model: str | None = None
    filter_max_score: float | None = None

    @classmethod
    def of(cls, params: Denoised) -> Denoise:
        """The denoising keys of `params`; a key its class does not declare keeps its default
        (ance declares no `range_max`: its `negatives_depth` bounds the candidates)."""
        return cls(**{f.name: getattr(params, f.name, f.default) for f in fields(cls)})

    @property
    def needs_scores(self) -> bool:
        """Whether the miner must hand scores (and positives' scores, for the margins)."""
        return self.max_score is not None or self.needs_positive_scores

    @property
    def needs_positive_scores(self) -> bool:
        return self.absolute_margin is not None or self.relative_margin is not None

    def settings(self, seed: int) -> dict[str, Any]:
        """The settings changed from their defaults (and the seed, when it draws), as written in
        the recipe: what names these negatives in the plan."""
        default = Denoise()
        changed = {k: v for k, v in asdict(self).items() if v != getattr(default, k)}
        if self.sampling == "random":
            changed["seed"] = seed
        return changed

    def key(self, seed: int, device_type: str = "cpu") -> dict[str, Any]:
        """What enters the negatives' cache key: :meth:`settings`, {} when none is set, so today's
        keys stay; the cross-encoder by its content's fingerprint, not its folder (and the device
        it scores on, `device_type`, when not the CPU, as dense models' keys say theirs)."""
        changed = self.settings(seed)
        if self.filter_model is not None:
            changed["filter_model"] = {**self.filter_identity(),
                                       **({"device": device_type} if device_type != "cpu" else {})}
        return changed

    def filter_identity(self) -> dict[str, Any]:
        """The cross-encoder as keys name it: its content's fingerprint, not its folder ({} without one)."""
        if self.filter_model is None:
            return {}
        from harness.model.spec import fingerprint

        return {"fingerprint": fingerprint(self.filter_model)}

    def retrieve_depth(self, depth: int, data: TrainData) -> int:
        """How deep the miner retrieves: room for the candidates plus the largest positive set."""
        most = max(len(p) for p in data.positives.values())
        return (self.range_max if self.range_max is not None else self.range_min + depth + 10) + most


# The cross-encoder filter as the denoising sees it: each query's eligible rows in -> those kept.
Keep = Callable[[dict[str, list[int]]], dict[str, list[int]]]


def denoised_negatives(ranked: dict[str, Sequence[tuple[int, float]]], depth: int, data: TrainData,
                       denoise: Denoise, positive_scores: dict[str, Sequence[float]] | None = None,
                       rng: np.random.Generator | None = None, keep: Keep | None = None) -> dict[str, np.ndarray]:
    """Up to `depth` negatives (document rows) per training query from its ranking of
    (row, score), best first, under `denoise`; `positive_scores`: the miner's score of each of the
    query's positives (the margins need them); `rng`: what "random" sampling draws with; `keep`:
    the cross-encoder filter (`filter_model`), given every query's candidates that pass the score
    filters at once, so that it can batch across queries.

    >>> data = TrainData(("q",), {"q": "x"}, {"q": (1,)}, ("a", "b", "c", "d"))
    >>> ranked = {"q": [(1, 9.0), (3, 8.9), (0, 5.0), (2, 1.0)]}
    >>> denoised_negatives(ranked, 2, data, Denoise(relative_margin=0.05), {"q": [9.0]})["q"].tolist()
    [0, 2]
    """
    if denoise.needs_positive_scores and positive_scores is None:
        raise ValueError("absolute_margin and relative_margin need the positives' scores")
    if denoise.sampling == "random" and rng is None:
        raise ValueError('sampling = "random" needs an rng')
    if denoise.filter_model is not None and keep is None:
        raise ValueError("filter_model needs the cross-encoder filter (harness.train.cross_filter)")
    passed = {}
    for q in data.query_ids:
        positives = set(data.positives[q])
        candidates = [(r, s) for r, s in ranked[q] if r not in positives][:denoise.range_max]
        ceiling = _ceiling(denoise, positive_scores[q] if positive_scores is not None else ())
        passed[q] = [r for r, s in candidates if s <= ceiling]
    if keep is not None:
        passed = keep(passed)
    out = {}
    for q in data.query_ids:  # in query order, so "random" draws as it did before the filter existed
        eligible = passed[q][denoise.range_min:]
        if denoise.sampling == "random" and len(eligible) > depth:
            assert rng is not None
            eligible = [eligible[i] for i in sorted(rng.choice(len(eligible), size=depth, replace=False))]
        out[q] = np.asarray(eligible[:depth], dtype=np.int64)
    return out


def _ceiling(denoise: Denoise, positive_scores: Sequence[float]) -> float:
    """The highest score a candidate may have and stay eligible (+inf: no filter)."""
    ceiling = np.inf if denoise.max_score is None else denoise.max_score
    if denoise.needs_positive_scores and len(positive_scores):
        positive = min(positive_scores)  # the hardest positive, as s-t (:523-528)
        if denoise.absolute_margin is not None:
            ceiling = min(ceiling, positive - denoise.absolute_margin)
        if denoise.relative_margin is not None:
            ceiling = min(ceiling, positive * (1 - denoise.relative_margin))
    return float(ceiling)
