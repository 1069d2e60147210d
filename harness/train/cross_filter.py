"""RocketQA's denoised hard negatives: a cross-encoder vetoes candidates it judges relevant
(Qu et al., NAACL 2021, issue 22 §2; the keys `filter_model` and `filter_max_score`).

RocketQA retrieves candidates with its dual encoder and keeps as negatives those its
cross-encoder scores below 0.1. Here the candidates are those the denoising keys of
:mod:`harness.train.denoise` leave (the candidate depth, the margins, `max_score`); the filter
runs on them before `range_min` and sampling, and a candidate stays only if its score,
`sigmoid(logit)` of the cross-encoder's one output, is below `filter_max_score`.

A query the filter leaves without candidates ends with no hard negative, as a query the other
denoising keys empty does: training then draws random documents for it
(:func:`harness.train.sampling.draw_mined`). :meth:`CrossFilter.summary` says how many, as a
`warning:` line, and says it loudly when the filter kept nothing at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.train.data import TrainData

if TYPE_CHECKING:
    from harness.progress import StageProgress

# (query text, document text) pairs -> one score each; advance(n) after every n scored.
Scorer = Callable[[Sequence[tuple[str, str]], Callable[[int], None]], np.ndarray]


@dataclass(frozen=True)
class FilterCounts:
    """What one filtering did: candidates scored and kept, queries it left without any."""

    candidates: int
    kept: int
    emptied: int  # queries that had candidates and have none left
    queries: int


def cross_filtered(eligible: dict[str, list[int]], data: TrainData, score: Scorer, max_score: float,
                   advance: Callable[[int], None] = lambda _: None) -> tuple[dict[str, list[int]], FilterCounts]:
    """Each query's `eligible` rows, in order, that `score` puts below `max_score`, scored all at
    once (so batches span queries), and the counts.

    >>> data = TrainData(("q",), {"q": "x"}, {"q": (0,)}, ("a", "b", "c"))
    >>> fake = lambda pairs, advance: np.array([0.9 if d == "b" else 0.05 for _, d in pairs])
    >>> cross_filtered({"q": [1, 2]}, data, fake, 0.1)[0]
    {'q': [2]}
    """
    pairs = [(q, r) for q in data.query_ids for r in eligible[q]]
    scores = score([(data.queries[q], data.doc_texts[r]) for q, r in pairs], advance) if pairs else np.empty(0)
    kept: dict[str, list[int]] = {q: [] for q in data.query_ids}
    for (q, r), s in zip(pairs, scores):
        if s < max_score:
            kept[q].append(r)
    emptied = sum(1 for q in data.query_ids if eligible[q] and not kept[q])
    counts = FilterCounts(len(pairs), sum(map(len, kept.values())), emptied, len(data.query_ids))
    return kept, counts


class CrossFilter:
    """The filter :func:`harness.train.denoise.denoised_negatives` calls (its `keep`): loads the
    cross-encoder in `folder` when first called, scores on `device` with a progress bar, and
    remembers the counts for :meth:`summary`."""

    def __init__(self, folder: str | Path, max_score: float, data: TrainData, *, device: str = "cpu",
                 allow_pickle: bool = False, progress: StageProgress | None = None, batch_size: int = 32):
        self.folder, self.max_score, self.data = Path(folder), max_score, data
        self.device, self.allow_pickle, self.progress, self.batch_size = device, allow_pickle, progress, batch_size
        self.counts: FilterCounts | None = None

    def __call__(self, eligible: dict[str, list[int]]) -> dict[str, list[int]]:
        from harness.model.cross_encoder import CrossEncoder, check_cross_encoder

        model = CrossEncoder(check_cross_encoder(str(self.folder), self.allow_pickle), device=self.device,
                             batch_size=self.batch_size, allow_pickle=self.allow_pickle)
        total = sum(len(eligible[q]) for q in self.data.query_ids)
        if self.progress is None:
            kept, self.counts = cross_filtered(eligible, self.data, model.score, self.max_score)
        else:
            with self.progress.task(f"cross-encoder filter ({self.folder.name})", total, "pairs") as advance:
                kept, self.counts = cross_filtered(eligible, self.data, model.score, self.max_score, advance)
        return kept

    def summary(self) -> str:
        """One line: what the filter kept; a `warning:` when it left queries without candidates."""
        c = self.counts
        if c is None:
            return "cross-encoder filter: not run"
        line = (f"cross-encoder filter {self.folder.name}: kept {c.kept:,} of {c.candidates:,} candidates scored "
                f"below filter_max_score = {self.max_score}")
        if c.candidates and not c.kept:
            return (f"warning: {line}: every candidate scored at or above it, so no query has a hard negative and "
                    "training draws random documents instead; raise filter_max_score")
        if c.emptied:
            return (f"warning: {line}; {c.emptied:,} of {c.queries:,} training queries have no candidate left and "
                    "draw random documents as negatives")
        return line
