"""Choose each swept variant's point on the dev split: the best mean over seeds of the recipe's
first metric, on its first index (BM25: its own), read from the dev runs in the store.

Ties go to the earlier point in grid order. The evaluation splits are never read here.
"""

from __future__ import annotations

import statistics
from typing import Any

from harness.errors import StoreError
from harness.recipe.expand import variant_seeds
from harness.recipe.model import Recipe, Variant
from harness.recipe.plan import selection_index
from harness.store import list_runs, run_metrics


def select_point(db: Any, recipe: Recipe, dev: str, name: str) -> tuple[Variant, dict[str, Any]]:
    """The chosen point of the swept variant `name`, and the selection record stored with its runs."""
    return select_points(db, recipe, dev, [name])[name]


def select_points(db: Any, recipe: Recipe, dev: str,
                  names: list[str] | None = None) -> dict[str, tuple[Variant, dict[str, Any]]]:
    """Swept variant name (every one, or `names`) -> (its chosen point, its selection record)."""
    metric = recipe.eval.metrics[0]
    stored = list_runs(db, recipe.experiment.name, dev)
    chosen = {}
    for name, points in recipe.sweeps.items():
        if names is not None and name not in names:
            continue
        index = selection_index(recipe, points[0])
        scores = {point.name: _dev_score(db, stored, point, recipe, index, metric, dev) for point in points}
        best = max(points, key=lambda point: scores[point.name])  # max keeps the first of equals
        chosen[name] = (best, {"name": best.name, "point": dict(best.point), "dev": dev, "metric": metric,
                               "index": index, "score": scores[best.name], "scores": scores,
                               "seeds": list(variant_seeds(recipe, best))})
    return chosen


def _dev_score(db: Any, stored: list[dict[str, Any]], point: Variant, recipe: Recipe, index: str, metric: str,
               dev: str) -> float:
    seeds = variant_seeds(recipe, point)
    runs = {run["seed"]: run["id"] for run in stored if run["variant"] == point.name and run["index_factory"] == index}
    missing = [seed for seed in seeds if seed not in runs]
    if missing:
        raise StoreError(f"no dev run of {point.name} on {dev} with seed {missing[0]} to select on; "
                         "re-run the recipe")
    values = run_metrics(db, [runs[seed] for seed in seeds])
    return statistics.fmean(values[runs[seed]][metric] for seed in seeds)
