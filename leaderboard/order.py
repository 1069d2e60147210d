"""The order a recipe lists its metrics and indexes in, which the store does not keep."""

from __future__ import annotations

from typing import Any

from harness.store import list_experiments


def recipe_order(db: Any) -> dict[str, dict[str, tuple[str, ...]]]:
    """Each experiment's `[eval] metrics` and `indexes` in the order its recipe lists them (the
    store keeps them unordered); the leaderboard and compare show, group and rank in that order."""
    import tomllib
    from dataclasses import fields

    from harness.recipe.model import EvalConfig

    # a recipe that lists no metrics or indexes ran the declared defaults, in their order
    default = {f.name: tuple(f.default) for f in fields(EvalConfig) if f.name in ("metrics", "indexes")}
    order = {}
    for exp in list_experiments(db):
        try:
            table = tomllib.loads(exp.get("recipe_text") or "").get("eval", {})
            given = {key: table.get(key, default[key]) for key in ("metrics", "indexes")}
            # a lone string is a one-element list, as the loader reads it
            order[exp["name"]] = {k: (v,) if isinstance(v, str) else tuple(v) for k, v in given.items()}
        except (tomllib.TOMLDecodeError, AttributeError):
            continue
    return order


def ordered(values: dict[str, float], order: tuple[str, ...]) -> dict[str, float]:
    """`values` with its keys in `order`, then the others sorted."""
    known = [m for m in order if m in values]
    return {m: values[m] for m in known + sorted(set(values) - set(known))}
