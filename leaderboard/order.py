"""What a stored recipe's text says that the store's rows do not: the order it lists its metrics
and indexes in, and the grids its sweeps tried."""

from __future__ import annotations

from typing import Any

from harness.errors import RecipeError
from harness.recipe.grid import recipe_grids
from harness.recipe.loader import parse_eval
from harness.store import list_experiments


def recipe_grids_of(db: Any) -> dict[str, dict[str, dict[str, list[Any]]]]:
    """Each experiment's swept variants' grids (variant -> key -> values), from its recipe text."""
    return {exp["name"]: recipe_grids(exp.get("recipe_text") or "") for exp in list_experiments(db)}


def recipe_order(db: Any) -> dict[str, dict[str, tuple[str, ...]]]:
    """Each experiment's `[eval] metrics` and `indexes` in the order its recipe lists them (the
    store keeps them unordered), as the recipe loader reads them (a key left out: its declared
    default, in its declared order); the leaderboard and compare show, group and rank in that
    order. An experiment stored without its recipe text ran no recipe we can read: its metrics
    follow the declared defaults' order (others sorted after them) and its runs keep the store's
    order. One whose `[eval]` the loader no longer accepts orders nothing."""
    order: dict[str, dict[str, tuple[str, ...]]] = {}
    for exp in list_experiments(db):
        if not exp.get("recipe_text"):
            order[exp["name"]] = {"metrics": parse_eval("").metrics}
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
