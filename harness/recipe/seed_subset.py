"""Some of a recipe's seeds (`drbench run RECIPE --seeds 14,15`): add or redo seeds without the
others, whose stored runs stay.

Without `--seeds`, a run replaces the stored runs of seeds its recipe no longer lists, so a copy of
a recipe that lists one seed under the same experiment name would delete the others' runs. The
subset keeps the recipe's first seed as `seed`, so BM25 and zero-shot run (or are skipped) as the
whole recipe runs them, and keeps the recipe's text and hash: every run key is the one the whole
recipe gives that seed. A recipe that chooses sweep points on dev needs every seed's dev runs to
choose (means over different seeds are not compared alike), so it is refused.
"""

from __future__ import annotations

import re
from dataclasses import replace

from harness.errors import RecipeError
from harness.recipe.model import Recipe

_SEEDS = re.compile(r"^\s*-?\d+\s*(,\s*-?\d+\s*)*$")


def parse_seeds(text: str) -> tuple[int, ...]:
    """`14,15` -> (14, 15); a RecipeError naming the option otherwise.

    >>> parse_seeds("14, 15")
    (14, 15)
    """
    if not _SEEDS.match(text):
        raise RecipeError(f"--seeds {text!r}: write the seeds as integers separated by commas, e.g. --seeds 14,15")
    seeds = tuple(int(part) for part in text.split(","))
    if len(set(seeds)) != len(seeds):
        raise RecipeError(f"--seeds {text}: a seed is listed twice; list each once")
    return seeds


def only_seeds(recipe: Recipe, seeds: tuple[int, ...]) -> Recipe:
    """`recipe` running only `seeds` (each one of its own), in its own order.

    >>> from harness.recipe import parse_recipe
    >>> r = parse_recipe('[experiment]\\nname="x"\\nseeds=[13, 14, 15]\\n[data]\\neval=["cranfield"]\\n'
    ...                  '[variant.bm25]\\nkind="bm25"\\n')
    >>> sub = only_seeds(r, (15, 14))
    >>> sub.seeds, sub.experiment.seed, sub.hash == r.hash
    ((14, 15), 13, True)
    """
    listed = recipe.seeds
    if unknown := [seed for seed in seeds if seed not in listed]:
        raise RecipeError(f"--seeds: {recipe.path} does not list seed {unknown[0]} (its seeds: "
                          f"{', '.join(map(str, listed))}); add it to [experiment] seeds, or pick among them")
    if recipe.selects and recipe.sweeps:
        raise RecipeError(f"--seeds: {recipe.path} chooses sweep points on dev over all its seeds "
                          f"({', '.join(map(str, listed))}); run it without --seeds")
    kept = tuple(seed for seed in listed if seed in seeds)
    return replace(recipe, experiment=replace(recipe.experiment, seeds=kept))
