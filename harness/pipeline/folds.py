"""A k-fold recipe's runs combined (see :mod:`harness.recipe.folds`): once every fold of a
(variant, seed, index) is stored under `NAME/foldK/test`, one run under `NAME/test` holds each
judged query's value and ranking from the one fold that held it out.

Its metrics are the mean over all those queries, what ranx reports for any run over them (the
mean over folds weighted by fold size; with folds of equal size, the mean over folds), so that
the leaderboard's number and the paired tests' per-query values agree. Its key hashes its folds'
keys: a fold that re-runs re-combines. Its timings are the folds' sums (what the whole
cross-validation cost); its model, compute and data records list each fold's.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from typing import Any

from rich.markup import escape

from harness.recipe.plan import Plan, RunSpec
from harness.store import ExperimentRecord, RunRecord, completed_run_key, list_runs, utc_now, write_run
from harness.store.db import query_metrics, run_metrics, run_results


def combined_key(fold_keys: list[str]) -> str:
    """The key of a combination of runs with these keys (in fold order)."""
    return hashlib.sha256(json.dumps({"folds": fold_keys}).encode()).hexdigest()


def combine_folds(db: Any, experiment: ExperimentRecord, plan: Plan, log: Any) -> list[tuple[RunSpec, str, int | None]]:
    """Store the combination of every `folds` run of `plan` whose folds are all stored and that is
    not stored with the same key; (spec, "done" | "skipped" | "incomplete", run id) per run."""
    by_id = {run.id: run for fold in plan.folds for run in fold.runs}
    stored = {(r["variant"], r["collection"], r["index_factory"], r["seed"]): r
              for r in list_runs(db, experiment=experiment.name) if r.get("status", "complete") == "complete"}
    out: list[tuple[RunSpec, str, int | None]] = []
    for spec in plan.phase("folds"):
        folds = [stored.get((f.variant, f.collection, f.index, f.seed)) for f in map(by_id.__getitem__, spec.after)]
        if any(fold is None for fold in folds):
            out.append((spec, "incomplete", None))
            continue
        key = combined_key([fold["run_key"] for fold in folds])  # type: ignore[index]
        if completed_run_key(db, experiment.name, spec.variant, spec.collection, spec.index, spec.seed) == key:
            log(f"[dim]skip {escape(spec.variant)} / {escape(spec.collection)} / {spec.index}: already in the "
                "store[/dim]")
            out.append((spec, "skipped", None))
            continue
        record = _combined(db, experiment.name, spec, key, folds, plan.recipe.eval.metrics)  # type: ignore[arg-type]
        run_id = write_run(db, experiment, record)
        shown = ", ".join(f"{m} {v:.4f}" for m, v in record.metrics.items())
        log(f"[green]done[/green] {escape(spec.variant)} / {escape(spec.collection)} / {spec.index} "
            f"({len(folds)} folds): {shown}")
        out.append((spec, "done", run_id))
    return out


def _in_order(names: list[str], order: tuple[str, ...]) -> list[str]:
    """`names` in the recipe's `order`, the others after them."""
    return [m for m in order if m in names] + [m for m in names if m not in order]


def _combined(db: Any, experiment: str, spec: RunSpec, key: str, folds: list[dict[str, Any]],
              order: tuple[str, ...]) -> RunRecord:
    ids = [fold["id"] for fold in folds]
    names = list(run_metrics(db, ids)[ids[0]])
    per_query: dict[str, dict[str, float]] = {m: {} for m in names}
    results: dict[str, list[tuple[str, float]]] = {}
    for run_id in ids:
        for metric in names:
            per_query[metric].update(query_metrics(db, run_id, metric))
        results.update(run_results(db, run_id))
    first = folds[0]
    timings: dict[str, float] = {}
    for fold in folds:
        for stage, seconds in (fold.get("timings") or {}).items():
            timings[stage] = timings.get(stage, 0.0) + seconds
    same = {k: first.get(k) for k in ("params", "n_docs", "depth")}
    return RunRecord(
        experiment=experiment, variant=spec.variant, kind=spec.kind, collection=spec.collection,
        index_factory=spec.index, run_key=key, seed=spec.seed,
        model=None if first.get("model") is None else {"folds": [fold.get("model") for fold in folds]},
        params=same["params"] or {}, n_docs=same["n_docs"], depth=same["depth"] or 0,
        data={"dataset_id": spec.collection, "folds": [fold.get("data") for fold in folds]},
        timings=timings, index_stats={k: statistics.fmean(f["index_stats"][k] for f in folds)
                                      for k in (first.get("index_stats") or {})
                                      if all(k in (f.get("index_stats") or {}) for f in folds)},
        compute=first.get("compute"),
        selection=first.get("selection") if all(f.get("selection") == first.get("selection") for f in folds)
        else {"folds": [f.get("selection") for f in folds]},
        started_at=min(f["started_at"] for f in folds), finished_at=utc_now(),
        metrics={m: statistics.fmean(v for v in per_query[m].values()) for m in _in_order(names, order)},
        query_metrics=per_query, results=results)
