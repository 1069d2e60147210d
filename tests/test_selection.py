"""Choosing a sweep's point on the dev split, from dev runs stored by hand: the best mean over
seeds of the recipe's first metric, on the recipe's first index (a sparse sweep: its own index);
ties go to the point declared first in the grid; a missing seed is an error, not a smaller mean.

The numbers are set so that each wrong rule picks the other point: on Flat the first point wins
on the mean (0.40 against 0.35) but loses on seed 13 alone; on PQ8, the recipe's second index,
and on mrr@10, its second metric, the second point wins.
"""

from __future__ import annotations

import pytest

from harness.errors import StoreError
from harness.pipeline.selection import select_point, select_points
from harness.recipe import parse_recipe
from harness.store import open_memory_store
from store_helpers import add_run, around

DEV = "beir/scifact/train[holdout:0.1]"
RECIPE = """\
[experiment]
name = "exp"
seeds = [13, 14]
[data]
train = "beir/scifact/train"
eval = ["beir/scifact/test"]
dev = "holdout:0.1"
[eval]
indexes = [{indexes}]
metrics = ["ndcg@10", "mrr@10"]
[variant.bm25]
kind = "bm25"
[variant.bm25.sweep]
k1 = [0.9, 1.2]
[variant.star]
kind = "star"
[variant.star.sweep]
lr = [{grid}]
"""
FIRST, SECOND = "star[lr=2e-05]", "star[lr=1e-05]"  # grid order as declared, not sorted

# point -> index -> seed -> (ndcg@10, mrr@10) dev means
SCORES = {
    FIRST: {"Flat": {13: (0.30, 0.1), 14: (0.50, 0.1)}, "PQ8": {13: (0.10, 0.1), 14: (0.10, 0.1)}},
    SECOND: {"Flat": {13: (0.45, 0.9), 14: (0.25, 0.9)}, "PQ8": {13: (0.60, 0.9), 14: (0.60, 0.9)}},
}


def recipe(indexes: str = '"Flat", "PQ8"', grid: str = "2e-5, 1e-5"):
    return parse_recipe(RECIPE.format(indexes=indexes, grid=grid), "r.toml")


def store(scores=SCORES):
    db = open_memory_store()
    for point, by_index in scores.items():
        for index, by_seed in by_index.items():
            for seed, (ndcg, mrr) in by_seed.items():
                add_run(db, point, {"ndcg@10": around(ndcg), "mrr@10": around(mrr)}, seed=seed, index=index,
                        collection=DEV)
    for k1, value in (("0.9", 0.2), ("1.2", 0.3)):
        add_run(db, f"bm25[k1={k1}]", {"ndcg@10": around(value), "mrr@10": around(value)}, kind="bm25",
                index="bm25", collection=DEV)
    return db


def test_the_best_mean_over_seeds_of_the_first_metric_on_the_first_index_is_chosen() -> None:
    point, record = select_point(store(), recipe(), DEV, "star")
    assert point.name == FIRST and dict(point.point) == {"lr": 2e-5}
    assert record == {"name": FIRST, "point": {"lr": 2e-5}, "dev": DEV, "metric": "ndcg@10", "index": "Flat",
                      "score": pytest.approx(0.40), "scores": {FIRST: pytest.approx(0.40), SECOND: pytest.approx(0.35)},
                      "seeds": [13, 14]}


def test_the_recipes_first_index_chooses_whichever_order_it_lists_them_in() -> None:
    point, record = select_point(store(), recipe('"PQ8", "Flat"'), DEV, "star")
    assert point.name == SECOND and record["index"] == "PQ8" and record["score"] == pytest.approx(0.60)
    assert record["scores"] == {FIRST: pytest.approx(0.10), SECOND: pytest.approx(0.60)}


def test_a_sparse_sweep_chooses_on_its_own_index() -> None:
    point, record = select_point(store(), recipe(), DEV, "bm25")
    assert point.name == "bm25[k1=1.2]" and record["index"] == "bm25" and record["seeds"] == [13]
    assert record["scores"] == {"bm25[k1=0.9]": pytest.approx(0.2), "bm25[k1=1.2]": pytest.approx(0.3)}


def test_select_points_chooses_every_sweep() -> None:
    chosen = select_points(store(), recipe(), DEV)
    assert {name: point.name for name, (point, _) in chosen.items()} == {"bm25": "bm25[k1=1.2]", "star": FIRST}


@pytest.mark.parametrize("grid, first", [("2e-5, 1e-5", FIRST), ("1e-5, 2e-5", SECOND)])
def test_a_tie_goes_to_the_point_declared_first(grid: str, first: str) -> None:
    tied = {point: {"Flat": {13: (0.30, 0.5), 14: (0.50, 0.5)}} for point in (FIRST, SECOND)}
    point, record = select_point(store(tied), recipe('"Flat"', grid), DEV, "star")
    assert point.name == first and record["scores"] == {FIRST: pytest.approx(0.4), SECOND: pytest.approx(0.4)}


def test_a_missing_seed_is_an_error_not_a_mean_over_fewer_seeds() -> None:
    partial = {FIRST: SCORES[FIRST], SECOND: {"Flat": {13: (0.90, 0.9)}, "PQ8": SCORES[SECOND]["PQ8"]}}
    with pytest.raises(StoreError, match=r"no dev run of star\[lr=1e-05\] on .* with seed 14 to select on"):
        select_point(store(partial), recipe(), DEV, "star")


def test_runs_on_other_collections_are_never_read() -> None:
    db = store()
    # Evaluation runs of the second point that would choose it, on collections sorting before and
    # after the dev split's name: they must not be read.
    for collection in ("beir/scifact/test", "cranfield"):
        for seed in (13, 14):
            add_run(db, SECOND, {"ndcg@10": around(0.99), "mrr@10": around(0.99)}, seed=seed, collection=collection)
    assert select_point(db, recipe(), DEV, "star")[0].name == FIRST


def test_the_evaluation_splits_report_the_chosen_point_under_the_sweeps_name() -> None:
    from harness.pipeline.run import stored_row
    from harness.recipe.plan import build_plan

    r = recipe()
    chosen = select_points(store(), r, DEV)
    reports = {}
    for spec in build_plan(r).phase("eval"):
        row = stored_row(r, spec, chosen)
        reports.setdefault(row.variant.name, row)
    assert set(reports) == {"bm25", "star"}  # one row per sweep, no point by its own name
    star = reports["star"]
    assert star.model == FIRST and star.selection == chosen["star"][1]
    assert star.variant.sweep_of is None and star.variant.point == () and star.variant.params.lr == 2e-5
    assert reports["bm25"].model == "bm25[k1=1.2]" and reports["bm25"].variant.params.k1 == 1.2
