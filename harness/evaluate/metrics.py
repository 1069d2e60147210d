"""Score runs with ranx, keeping every run paired with the qrels.

Every query in the qrels gets a per-query value in every run (0 when nothing relevant was
retrieved, or nothing at all), so significance tests compare like with like.
"""

from __future__ import annotations

import difflib
import re
import warnings
from dataclasses import dataclass

# ranx metric names (ranx.metrics.metric_switch); `@k` is optional for the rank-wide ones.
RANX_METRICS = ("hits", "hit_rate", "precision", "recall", "f1", "r-precision", "mrr", "map",
                "dcg", "dcg_burges", "ndcg", "ndcg_burges", "bpref")
_METRIC_RE = re.compile(r"^(?P<name>[a-z_-]+?)(?:@(?P<k>[1-9][0-9]*))?$")


def metric_problem(metric: str) -> str | None:
    """Why `metric` is not a ranx metric name, or None when it is."""
    match = _METRIC_RE.match(metric)
    if not match or match["name"] not in RANX_METRICS:
        return "unknown metric"
    return None


def metric_cutoff(metric: str) -> int | None:
    """The `k` of `name@k`, or None for a rank-wide metric."""
    match = _METRIC_RE.match(metric)
    return int(match["k"]) if match and match["k"] else None


def metrics_problem(values: list[str]) -> str | None:
    bad = [m for m in values if metric_problem(m)]
    if not bad:
        return None
    name, _, k = bad[0].partition("@")
    close = difflib.get_close_matches(name.lower(), RANX_METRICS, n=1)
    hint = f'; did you mean "{close[0]}{"@" + k if k else ""}"?' if close else ""
    return f"unknown metric {bad[0]!r}{hint} (ranx names: {', '.join(RANX_METRICS)}, optionally @k)"


@dataclass(frozen=True)
class Evaluation:
    """Aggregate (mean over qrels queries) and per-query values, keyed by ranx metric name."""

    metrics: dict[str, float]
    query_metrics: dict[str, dict[str, float]]


def evaluate(qrels: dict[str, dict[str, int]], results: dict[str, list[tuple[str, float]]],
             metrics: tuple[str, ...] | list[str]) -> Evaluation:
    """Evaluate ranked `results` against `qrels` with ranx.

    >>> e = evaluate({"q1": {"d1": 1}, "q2": {"d9": 1}}, {"q1": [("d1", 2.0), ("d2", 1.0)]}, ["mrr@10"])
    >>> e.metrics["mrr@10"], e.query_metrics["mrr@10"]["q2"]
    (0.5, 0.0)
    """
    from ranx import Qrels, Run, evaluate as ranx_evaluate

    query_ids = sorted(qrels)
    run_dict: dict[str, dict[str, float]] = {}
    for query_id in query_ids:
        ranked = results.get(query_id, [])
        # ranx ranks by score; a strictly decreasing tie-breaker keeps our own order on ties.
        run_dict[query_id] = {doc_id: float(score) - i * 1e-9 for i, (doc_id, score) in enumerate(ranked)}
    if not any(run_dict.values()):  # ranx cannot build a Run without a single document
        zeros = {m: {q: 0.0 for q in query_ids} for m in metrics}
        return Evaluation({m: 0.0 for m in metrics}, zeros)
    qrels_obj = Qrels({q: dict(qrels[q]) for q in query_ids})
    run_obj = Run(run_dict)
    with warnings.catch_warnings():
        # ranx's numba kernels warn about a uint64 -> int64 cast of ranks; harmless, and noisy.
        warnings.filterwarnings("ignore", message="unsafe cast from uint64 to int64")
        scores = ranx_evaluate(qrels_obj, run_obj, list(metrics), return_mean=False, make_comparable=True)
    if len(metrics) == 1:
        scores = {metrics[0]: scores}
    # ranx returns per-query arrays in its own (sorted) query order.
    ordered = list(qrels_obj.keys())
    per_query = {m: {q: float(v) for q, v in zip(ordered, scores[m])} for m in metrics}
    means = {m: float(sum(per_query[m].values()) / len(ordered)) if ordered else 0.0 for m in metrics}
    return Evaluation(means, per_query)
