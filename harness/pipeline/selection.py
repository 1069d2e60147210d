"""Choose each swept variant's point on the dev split: the best mean over seeds
(`harness.store.seed_mean`, every seed's dev run stored) of the recipe's first metric, on its
first index (BM25: its own), read from the dev runs in the store.

Ties go to the earlier point in grid order. The evaluation splits are never read here.
"""

from __future__ import annotations

from typing import Any

from harness.errors import StoreError
from harness.recipe.expand import variant_seeds
from harness.recipe.model import Recipe, Variant
from harness.recipe.plan import selection_index
from harness.store import list_runs, run_metrics, seed_mean


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
    """The point's mean over its seeds on dev (`harness.store.seed_mean`), which must cover every
    seed: points chosen on means over different seeds would not be compared alike."""
    seeds = variant_seeds(recipe, point)
    runs = {run["seed"]: run["id"] for run in stored
            if run["variant"] == point.name and run["index_factory"] == index and run["seed"] in seeds}
    values = run_metrics(db, list(runs.values()))
    mean = seed_mean((seed, values.get(run_id, {}).get(metric)) for seed, run_id in runs.items())
    if mean is None or not mean.covers(seeds):
        missing = [seed for seed in seeds if mean is None or seed not in mean.seeds]
        raise StoreError(f"no dev run of {point.name} on {dev} with seed {missing[0]} to select on; "
                         "re-run the recipe")
    return mean.value
