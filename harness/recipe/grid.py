"""Where a sweep's chosen point sits in its grid: a point at the edge of a key's values hints that
the best value lies outside them. drbench never widens a grid by itself (the user decides, before
reading any test number); it says so.
"""

from __future__ import annotations

import tomllib
from typing import Any


def grid_edges(grid: dict[str, list[Any]], point: dict[str, Any]) -> list[str]:
    """One phrase per numeric key of `grid` (key -> values tried) whose chosen value in `point`
    is the smallest or largest of at least two, e.g. `lr = 0.0001, the largest of 3`.

    >>> grid_edges({"lr": [2e-05, 5e-05, 1e-4], "epochs": [1, 2, 3], "pooling": ["cls", "mean"]},
    ...            {"lr": 1e-4, "epochs": 2, "pooling": "cls"})
    ['lr = 0.0001, the largest of 3']
    """
    out = []
    for key, values in grid.items():
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        value = point.get(key)
        if len(set(numbers)) < 2 or len(numbers) != len(values) or value not in numbers:
            continue
        if value == max(numbers):
            out.append(f"{key} = {value:g}, the largest of {len(numbers)}")
        elif value == min(numbers):
            out.append(f"{key} = {value:g}, the smallest of {len(numbers)}")
    return out


def recipe_grids(text: str) -> dict[str, dict[str, list[Any]]]:
    """Each swept variant's `[variant.NAME.sweep]` (key -> values) in a recipe's text, as written;
    {} for text that is not TOML (a store may hold recipes a later drbench no longer reads)."""
    try:
        variants = tomllib.loads(text).get("variant", {})
    except tomllib.TOMLDecodeError:
        return {}
    return {name: dict(table["sweep"]) for name, table in variants.items()
            if isinstance(table, dict) and isinstance(table.get("sweep"), dict)}
