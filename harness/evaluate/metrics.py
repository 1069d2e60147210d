"""Score runs with ranx, keeping every run paired with the qrels.

Every query in the qrels gets a per-query value in every run (0 when nothing relevant was
retrieved, or nothing at all), so significance tests compare like with like.
"""

from __future__ import annotations

import difflib
import re
import warnings
from dataclasses import dataclass



def _ranx_metric_names() -> tuple[str, ...]:
    """The metric names ranx evaluates: those its `ranx.metrics.metric_switch` dispatches on, read
    from its source, since importing ranx takes seconds (numba, scipy) and `validate` must not."""
    import ast
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("ranx")
    if spec is None or not spec.submodule_search_locations:
        return ()
    source = Path(spec.submodule_search_locations[0]) / "metrics" / "__init__.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    return tuple(node.comparators[0].value for switch in ast.walk(tree)
                 if isinstance(switch, ast.FunctionDef) and switch.name == "metric_switch"
                 for node in ast.walk(switch)
                 if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name)
                 and isinstance(node.comparators[0], ast.Constant) and isinstance(node.comparators[0].value, str))


# ranx metric names, `@k` optional for the rank-wide ones; tests/test_metrics.py pins them to ranx.
RANX_METRICS = _ranx_metric_names()
_METRIC_RE = re.compile(r"^(?P<name>[a-z_-]+?)(?:@(?P<k>[1-9][0-9]*))?$")
# Rank-biased precision takes a persistence, not a cut: `rbp.95` is p = 0.95 (ranx's spelling).
_PERSISTENCE = {"rbp": re.compile(r"^rbp\.[0-9]+$")}


def metric_problem(metric: str) -> str | None:
    """Why `metric` is not a ranx metric name, or None when it is.

    >>> metric_problem("ndcg@10"), metric_problem("rbp.95"), metric_problem("rbp@10")
    (None, None, 'unknown metric')
    """
    name = metric.partition(".")[0]
    if name in _PERSISTENCE and name in RANX_METRICS:
        return None if _PERSISTENCE[name].match(metric) else "unknown metric"
    match = _METRIC_RE.match(metric)
    if not match or match["name"] not in RANX_METRICS or match["name"] in _PERSISTENCE:
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
    cut = ".95" if close and close[0] in _PERSISTENCE else "@" + k if k else ""
    hint = f'; did you mean "{close[0]}{cut}"?' if close else ""
    return (f"unknown metric {bad[0]!r}{hint} (ranx names: {', '.join(RANX_METRICS)}, optionally @k; "
            "rbp with its persistence: rbp.95)")


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
    from harness.evaluate.numba_cache import compiled, import_ranx

    ranx = import_ranx()  # says so where its numba functions are about to compile

    query_ids = sorted(qrels)
    run_dict: dict[str, dict[str, float]] = {}
    for query_id in query_ids:
        ranked = results.get(query_id, [])
        # ranx ranks by score; a strictly decreasing tie-breaker keeps our own order on ties.
        run_dict[query_id] = {doc_id: float(score) - i * 1e-9 for i, (doc_id, score) in enumerate(ranked)}
    if not any(run_dict.values()):  # ranx cannot build a Run without a single document
        zeros = {m: {q: 0.0 for q in query_ids} for m in metrics}
        return Evaluation({m: 0.0 for m in metrics}, zeros)
    qrels_obj = ranx.Qrels({q: dict(qrels[q]) for q in query_ids})
    run_obj = ranx.Run(run_dict)
    with warnings.catch_warnings():
        # ranx's numba kernels warn about a uint64 -> int64 cast of ranks; harmless, and noisy.
        warnings.filterwarnings("ignore", message="unsafe cast from uint64 to int64")
        scores = ranx.evaluate(qrels_obj, run_obj, list(metrics), return_mean=False, make_comparable=True)
    compiled()
    if len(metrics) == 1:
        scores = {metrics[0]: scores}
    # ranx returns per-query arrays in its own (sorted) query order.
    ordered = list(qrels_obj.keys())
    per_query = {m: {q: float(v) for q, v in zip(ordered, scores[m])} for m in metrics}
    means = {m: float(sum(per_query[m].values()) / len(ordered)) if ordered else 0.0 for m in metrics}
    return Evaluation(means, per_query)
