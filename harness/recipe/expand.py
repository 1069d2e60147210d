"""What a recipe expands to: the seeds each variant runs with, the variants each one depends on and the
order the dev split evaluates them in. The runs they make are :mod:`harness.recipe.plan`'s."""

from __future__ import annotations

from harness.recipe.model import Recipe, Variant


def variant_seeds(recipe: Recipe, variant: Variant) -> tuple[int, ...]:
    """The seeds a variant runs with: every seed of the recipe for a trained kind, else the first
    (BM25 and zero-shot rankings do not depend on it).

    >>> from harness.recipe import parse_recipe
    >>> r = parse_recipe('[experiment]\\nname="x"\\nseeds=[3, 1]\\n[data]\\neval=["cranfield"]\\n'
    ...                  '[variant.bm25]\\nkind="bm25"\\n')
    >>> variant_seeds(r, r.variants[0])
    (3,)
    """
    from harness.api.registry import kind

    return recipe.seeds if kind(variant.kind).trains else (recipe.experiment.seed,)


def referenced_names(variant: Variant) -> list[str]:
    """The variant names `variant`'s parameters hold (init, index_from, negatives_from...), as
    written: a parameter's built-in sources ("base", "bm25") left out, a swept variant by its own
    name. :func:`dependencies` expands them to the variants to train first."""
    from harness.api.params import declared
    from harness.api.registry import kind

    names = []
    for ref in declared(kind(variant.kind).Params):
        value = getattr(variant.params, ref.name)
        if ref.refers is not None and value and value not in ref.refers:  # refers: that parameter's built-ins
            names.append(value)
    return names


def dependencies(recipe: Recipe, variant: Variant) -> list[str]:
    """The recipe variants `variant` needs trained first: its :func:`referenced_names`, a swept
    variant's name standing for every one of its points (its chosen point is one of them)."""
    names = []
    for value in referenced_names(variant):
        names += [p.name for p in recipe.sweeps[value]] if value in recipe.sweeps else [value]
    return names


def dev_order(recipe: Recipe) -> list[Variant]:
    """The variants in recipe order, except that each comes after its dependencies, so
    a sweep's points are all evaluated on the dev split (and one chosen) before a variant chained
    on it trains."""
    order: list[Variant] = []

    def visit(variant: Variant) -> None:
        if variant in order:
            return
        for name in dependencies(recipe, variant):
            visit(recipe.variant(name))
        order.append(variant)

    for variant in recipe.variants:
        visit(variant)
    return order
