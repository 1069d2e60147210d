"""The order a recipe lists its metrics and indexes in, which the store does not keep."""

from __future__ import annotations

from typing import Any

from harness.errors import RecipeError
from harness.recipe.loader import parse_eval
from harness.store import list_experiments


def recipe_order(db: Any) -> dict[str, dict[str, tuple[str, ...]]]:
    """Each experiment's `[eval] metrics` and `indexes` in the order its recipe lists them (the
    store keeps them unordered), as the recipe loader reads them (`indexes` left out: its declared
    default); the leaderboard and compare show, group and rank in that order. An experiment stored
    without its recipe, or with one whose `[eval]` the loader no longer accepts, orders nothing: its
    metrics are sorted and its runs keep the store's order."""
    order = {}
    for exp in list_experiments(db):
        if not exp.get("recipe_text"):
            continue
        try:
            table = parse_eval(exp["recipe_text"], exp["name"])
        except RecipeError:
            continue
        order[exp["name"]] = {"metrics": table.metrics, "indexes": table.indexes}
    return order


def ordered(values: dict[str, float], order: tuple[str, ...]) -> dict[str, float]:
    """`values` with its keys in `order`, then the others sorted."""
    known = [m for m in order if m in values]
    return {m: values[m] for m in known + sorted(set(values) - set(known))}
