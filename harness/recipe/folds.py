"""K-fold cross-validation: a recipe that trains on `NAME/train` and reports `NAME/test` of a
`[collections.NAME] folds = K` split runs once per fold, and each run's folds combine into one.

Fold K is the recipe with `[data] train = "NAME/foldK/train"` and `eval = ["NAME/foldK/test"]`
(:func:`fold_recipe`): its own training queries, models, negatives and (with `dev = "holdout:F"`)
dev split, each fold's runs stored under `NAME/foldK/test`. Once every fold of a (variant, seed,
index) is stored, :mod:`harness.pipeline.folds` stores their combination under `NAME/test`: every
judged query's value from the one fold that held it out, so the leaderboard, paired tests, the
report and `check` read it as one run over all queries, and seeds average as for any run.
"""

from __future__ import annotations

from dataclasses import replace

from harness.data.local.declared import QuerySplit
from harness.recipe.model import Recipe


def folds_of(recipe: Recipe) -> QuerySplit | None:
    """The folds split whose generic parts (`NAME/train`, `NAME/test`) the recipe trains and
    reports on, or None (the loader has checked that [data] uses nothing else then)."""
    for collection in recipe.collections:
        if isinstance(collection, QuerySplit) and collection.folds and recipe.data.eval == (f"{collection.name}/test",):
            return collection
    return None


def fold_recipe(recipe: Recipe, k: int) -> Recipe:
    """The recipe of fold `k` (from 1): its training split and evaluation split are fold k's."""
    split = folds_of(recipe)
    assert split is not None
    train = f"{split.name}/fold{k}/train" if recipe.data.train else None
    return replace(recipe, data=replace(recipe.data, train=train, eval=(f"{split.name}/fold{k}/test",)))


def fold_recipes(recipe: Recipe) -> list[Recipe]:
    """One recipe per fold, or [recipe] itself without folds."""
    split = folds_of(recipe)
    return [recipe] if split is None else [fold_recipe(recipe, k) for k in range(1, int(split.folds or 0) + 1)]


def folds_problem(recipe: Recipe) -> tuple[str, str, str] | None:
    """(key, value, why) when [data] names a folds split's generic parts other than as
    train = "NAME/train" with eval = ["NAME/test"] alone; None when fine."""
    for collection in recipe.collections:
        if not (isinstance(collection, QuerySplit) and collection.folds):
            continue
        name, data = collection.name, recipe.data
        train, test = f"{name}/train", f"{name}/test"
        if test in data.eval and data.eval != (test,):
            return ("eval", test, f"is the {collection.folds} folds' combined test part: a recipe that reports "
                                  "it evaluates nothing else (each fold's model is another model); evaluate other "
                                  "collections in another recipe")
        if data.train == train and test not in data.eval:
            return ("train", train, f'trains once per fold; set eval = ["{test}"], or name one fold '
                                    f'("{name}/fold1/train")')
        if data.dev in (train, test):
            return ("dev", data.dev, 'a fold has no dev part; set dev = "holdout:0.1" (held out of each fold\'s '
                                     "training queries)")
        if data.dev and data.dev.startswith(f"{name}/"):
            return ("dev", data.dev, "is a fold part; the dev split of a fold is its holdout: "
                                     'dev = "holdout:0.1"')
        if test in data.eval and data.train not in (None, train):
            return ("train", str(data.train), f'a folds recipe trains on each fold\'s training part: train = "{train}"')
    return None
