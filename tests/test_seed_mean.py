"""The mean over seeds has one rule (`harness.store.seed_mean`): over the seeds whose run is stored,
carrying those seeds. With one seed's run missing, every reader of a multi-seed result applies it
alike: the leaderboard, compare/plot's systems and Datasette's SQL give the mean over the seeds
stored and show them; the regression gate and a sweep's selection, which need every seed, refuse.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from harness.errors import StoreError
from harness.pipeline.selection import select_points
from harness.recipe import parse_recipe
from harness.store import ExperimentRecord, RunRecord, open_store, seed_mean
from leaderboard.check import check, load_expectations
from leaderboard.datasette import QUERIES
from leaderboard.rows import leaderboard_rows
from leaderboard.select import select_systems

RECIPE = """
[experiment]
name = "seeded"
seeds = [13, 14, 15]

[model]
base = "tiny"

[data]
train = "beir/scifact/train"
eval = ["beir/scifact/test"]
dev = "holdout:0.5"

[eval]
metrics = ["ndcg@10"]

[variant.inbatch]
kind = "inbatch"

[variant.random]
kind = "random"

[variant.star]
kind = "star"

[variant.star.sweep]
lr = [1e-4, 1e-3]
"""
TEST, DEV = "beir/scifact/test", "beir/scifact/train[holdout:0.5]"
# Dyadic values, so every mean below is exact. star's seed 14 never ran on the evaluation split,
# nor did the second sweep point's seed 14 on dev; random's seed 14 run lacks the metric (None).
EVAL = {"inbatch": {13: 0.25, 14: 0.5, 15: 0.75}, "star": {13: 0.5, 15: 0.25}, "random": {13: 0.5, 14: None, 15: 0.25}}


def store(path: Path, recipe: str) -> Path:
    db = open_store(path)
    experiment = ExperimentRecord(name="seeded", recipe_path=None, recipe_text=recipe, recipe_hash="h",
                                  git_commit=None, git_dirty=False, packages={}, python="3.11", platform="test",
                                  seed=13, started_at="t")
    points = [point.name for point in parse_recipe(recipe).sweeps["star"]]
    dev = {points[0]: {13: 0.25, 14: 0.25, 15: 0.25}, points[1]: {13: 0.5, 15: 0.5}}
    for collection, variants in ((TEST, EVAL), (DEV, dev)):
        for variant, seeds in variants.items():
            for seed, value in seeds.items():
                db_write(db, experiment, collection, variant, seed, value)
    db.close()
    return path


def db_write(db, experiment: ExperimentRecord, collection: str, variant: str, seed: int, value: float | None) -> None:
    from harness.store import write_run

    write_run(db, experiment, RunRecord(
        experiment="seeded", variant=variant, kind=variant.split("[")[0], collection=collection,
        index_factory="Flat", seed=seed, run_key=f"k{variant}{seed}", model=None, depth=10, n_docs=10,
        started_at="t", finished_at="t", metrics={"ndcg@10": value} if value is not None else {"mrr@10": 0.5}))


@pytest.fixture
def stored(tmp_path: Path) -> Path:
    (tmp_path / "seeded.toml").write_text(RECIPE)
    return store(tmp_path / "seeded.db", RECIPE)


def test_the_rule_is_a_mean_over_the_seeds_with_a_value_carrying_them() -> None:
    mean = seed_mean([(15, 0.25), (13, 0.5), (14, None)])
    assert (mean.value, mean.sd, mean.seeds) == (0.375, 0.1767766952966369, (13, 15))
    assert mean.covers((13, 15)) and not mean.covers((13, 14, 15))
    assert seed_mean([]) is None and seed_mean([(13, None)]) is None


def test_leaderboard_compare_and_datasette_give_the_mean_over_the_seeds_stored(stored: Path) -> None:
    db = open_store(stored)
    rows = {row.variant: row for row in leaderboard_rows(db, collection=TEST)}
    assert (rows["star"].metrics, rows["star"].seeds) == ({"ndcg@10": 0.375}, (13, 15))
    assert rows["star"].sd == {"ndcg@10": 0.1767766952966369}
    assert (rows["inbatch"].metrics, rows["inbatch"].seeds) == ({"ndcg@10": 0.5}, (13, 14, 15))
    assert rows["random"].metrics == {"ndcg@10": 0.375, "mrr@10": 0.5}

    systems = {s.variant: s for s in select_systems(db, collection=TEST)[TEST]}
    assert (systems["star"].metrics, systems["star"].seeds) == ({"ndcg@10": 0.375}, (13, 15))
    assert (systems["inbatch"].metrics, systems["inbatch"].seeds) == ({"ndcg@10": 0.5}, (13, 14, 15))
    assert systems["random"].metrics == {"ndcg@10": 0.375, "mrr@10": 0.5}
    db.close()

    with closing(sqlite3.connect(stored)) as conn:
        conn.row_factory = sqlite3.Row
        served = {(r["variant"], r["metric"]): (r["value"], r["seeds"])
                  for r in conn.execute(QUERIES["leaderboard"]["sql"]) if r["collection"] == TEST}
    assert served == {("star", "ndcg@10"): (0.375, 2), ("inbatch", "ndcg@10"): (0.5, 3),
                      ("random", "ndcg@10"): (0.375, 2), ("random", "mrr@10"): (0.5, 1)}


def test_the_gate_and_the_selection_refuse_a_mean_that_misses_a_seed(stored: Path) -> None:
    rows = ('[[expect]]\nvariant = "{variant}"\ncollection = "beir/scifact/test"\nindex = "Flat"\nmetric = "ndcg@10"\n'
            'value = 0.375\n{seed}')
    expect = stored.parent / "seeded.expect.toml"
    expect.write_text('recipe = "seeded.toml"\ntolerance = 0.01\n' + "\n".join(
        rows.format(variant=variant, seed=seed) for variant, seed in
        (("star", ""), ("star", "seed = 13"), ("star", "seed = 14"), ("inbatch", ""), ("random", ""))))
    db = open_store(stored)
    checked = check(db, load_expectations(expect))
    assert [(row.actual, row.status) for row in checked] == [(None, "FAIL"), (0.5, "FAIL"), (None, "FAIL"),
                                                              (0.5, "FAIL"), (None, "FAIL")]

    with pytest.raises(StoreError, match=r"no dev run of star\[lr=0.001\] on .* with seed 14"):
        select_points(db, parse_recipe(RECIPE), DEV)
    db.close()
