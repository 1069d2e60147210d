"""What a recipe expands to: each variant's seeds, the order the dev split visits variants in (a
chained variant after every point of the sweep it references, whichever is declared first), and
how many runs the recipe stores."""

from __future__ import annotations

import pytest

from harness.recipe import parse_recipe, run_count
from harness.recipe.expand import dependencies, dev_order, variant_seeds

HEAD = """\
[experiment]
name = "x"
seeds = [{seeds}]
[data]
train = "beir/scifact/train"
eval = [{eval}]
{data}
[eval]
indexes = [{indexes}]
"""
BM25 = '[variant.bm25]\nkind = "bm25"\n'
ZERO = '[variant.zero]\nkind = "zero-shot"\n'
STAR = '[variant.star]\nkind = "star"\n[variant.star.sweep]\nlr = [2e-5, 1e-5]\n'
AD = '[variant.ad]\nkind = "adore"\nindex_from = "star"\n'
POINTS = ["star[lr=2e-05]", "star[lr=1e-05]"]


def recipe(*variants: str, seeds: str = "13, 14", eval: str = '"beir/scifact/test"', indexes: str = '"Flat"',
           data: str = 'dev = "holdout:0.1"'):
    return parse_recipe(HEAD.format(seeds=seeds, eval=eval, indexes=indexes, data=data) + "".join(variants), "r.toml")


def names(variants) -> list[str]:
    return [v.name for v in variants]


@pytest.mark.parametrize("declared", [(BM25, STAR, AD), (BM25, AD, STAR), (AD, BM25, STAR), (AD, STAR, BM25)])
def test_a_chained_variant_comes_after_every_point_of_its_sweep_in_either_order(declared) -> None:
    r = recipe(*declared)
    order = names(dev_order(r))
    assert sorted(order) == sorted(names(r.variants))  # each variant once
    assert order.index("ad") > max(order.index(p) for p in POINTS)
    assert order.index(POINTS[0]) < order.index(POINTS[1])  # grid order within a sweep


def test_dev_order_is_recipe_order_except_where_a_reference_pulls_a_variant_forward() -> None:
    assert names(dev_order(recipe(BM25, STAR, AD))) == ["bm25", *POINTS, "ad"]
    assert names(dev_order(recipe(AD, BM25, STAR))) == [*POINTS, "ad", "bm25"]
    assert names(dev_order(recipe(AD, STAR, ZERO, BM25))) == [*POINTS, "ad", "zero", "bm25"]


def test_a_chain_through_an_unswept_variant_declared_backwards() -> None:
    ado = '[variant.ado]\nkind = "adore"\nindex_from = "star2"\n'
    star2 = '[variant.star2]\nkind = "star"\ninit = "star"\n'
    r = recipe(ado, star2, STAR)
    assert names(dev_order(r)) == [*POINTS, "star2", "ado"]
    assert dependencies(r, r.variant("star2")) == POINTS and dependencies(r, r.variant("ado")) == ["star2"]


def test_built_in_sources_are_not_references() -> None:
    static = '[variant.sta]\nkind = "static"\nnegatives_from = "bm25"\n'
    r = recipe(static, BM25, data="")
    assert dependencies(r, r.variant("sta")) == [] and names(dev_order(r)) == ["sta", "bm25"]


def test_trained_variants_run_every_seed_in_the_recipes_order_and_the_others_the_first() -> None:
    r = recipe(BM25, ZERO, STAR, AD, seeds="15, 13, 14")
    assert r.seeds == (15, 13, 14)
    assert {v.name: variant_seeds(r, v) for v in r.variants} == {
        "bm25": (15,), "zero": (15,), POINTS[0]: (15, 13, 14), POINTS[1]: (15, 13, 14), "ad": (15, 13, 14)}
    one = parse_recipe(HEAD.replace("seeds = [{seeds}]", "seed = 7").format(
        eval='"beir/scifact/test"', indexes='"Flat"', data="") + BM25 + ZERO, "r.toml")
    assert one.seeds == (7,) and variant_seeds(one, one.variant("zero")) == (7,)
    assert recipe(BM25, seeds="3").with_seed(9).experiment.seed == 9


def test_run_count_by_hand() -> None:
    # dev: bm25 1 + zero 2 indexes + star 2 points x 2 seeds x 2 indexes + ad 2 seeds x 2 indexes = 15
    # each of 2 eval splits: bm25 1 + zero 2 + the chosen star point 4 + ad 4 = 11
    r = recipe(BM25, ZERO, STAR, AD, eval='"beir/scifact/test", "cranfield"', indexes='"Flat", "PQ8"')
    assert run_count(r) == 15 + 2 * 11
    # no dev split and nothing swept: every variant on every eval split
    assert run_count(recipe(BM25, ZERO, AD.replace('index_from = "star"', ""), data="",
                            indexes='"Flat", "PQ8"')) == 1 + 2 + 4
    # select = "none": every point is reported on the evaluation split, nothing runs on dev
    unselected = recipe(BM25, STAR, data='select = "none"')
    assert not unselected.selects and run_count(unselected) == 1 + 2 * 2


@pytest.mark.parametrize("grid", ["2e-5, 1e-5", "2e-5, 1e-5, 5e-6", "2e-5, 1e-5, 5e-6, 1e-6"])
def test_a_selected_sweep_is_one_row_of_each_evaluation_split_whatever_its_size(grid: str) -> None:
    from harness.recipe import build_plan

    r = recipe(BM25, STAR.replace("lr = [2e-5, 1e-5]", f"lr = [{grid}]"))
    points = grid.count(",") + 1
    plan = build_plan(r)
    assert len(plan.phase("dev")) == 1 + points * 2  # every point, each seed
    evaluated = [(run.variant, run.seed) for run in plan.phase("eval")]
    assert evaluated == [("bm25", 13), ("star", 13), ("star", 14)]  # the chosen point, under the sweep's name
