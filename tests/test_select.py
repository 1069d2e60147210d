"""The mean over seeds, as every read-side view shows it: `select_systems` (compare, plots), the
quality-vs-bytes and metric-bar plots, and the leaderboard rows with their sample sd.

One system of three seeds, stored out of seed order, whose seed means are 0.5, 0.1 and 0.45: its
mean is 0.35, which neither its first seed (0.5) nor its first-stored seed (0.1) is.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.store import open_memory_store, open_store
from leaderboard.plot import store_plots
from leaderboard.rows import leaderboard_rows
from leaderboard.select import seed_scores, select_systems
from store_helpers import add_run

# seed -> per-query ndcg@10 on Flat; PQ8 scores 0.1 lower on every query
STAR = {14: [0.1, 0.1, 0.1, 0.1], 13: [0.2, 0.4, 0.6, 0.8], 15: [0.3, 0.3, 0.6, 0.6]}
SEED_MEANS = {13: 0.5, 14: 0.1, 15: 0.45}
MEAN = 0.35
BM25 = [0.3, 0.2, 0.2, 0.1]  # one run, mean 0.2


def populate(db) -> None:
    for index, shift, size in (("Flat", 0.0, 3072.0), ("PQ8", -0.1, 8.0)):
        add_run(db, "bm25", {"ndcg@10": BM25}, kind="bm25", index=index, bytes_per_doc=size)
        for seed, values in STAR.items():  # seed 14 first: stored order is not seed order
            add_run(db, "star", {"ndcg@10": [v + shift for v in values]}, seed=seed, index=index,
                    bytes_per_doc=size)


@pytest.fixture
def db():
    db = open_memory_store()
    populate(db)
    return db


def star(db, index: str = "Flat"):
    [system] = [s for s in select_systems(db)["toy"] if s.variant == "star" and s.index == index]
    return system


def test_a_systems_metrics_are_the_mean_over_its_seeds(db) -> None:
    system = star(db)
    assert system.seeds == (13, 14, 15)  # in seed order, whatever order they were stored in
    assert system.metrics["ndcg@10"] == pytest.approx(MEAN, abs=1e-12)
    assert star(db, "PQ8").metrics["ndcg@10"] == pytest.approx(MEAN - 0.1, abs=1e-12)
    [bm25] = [s for s in select_systems(db)["toy"] if s.variant == "bm25" and s.index == "Flat"]
    assert bm25.seeds == (13,) and bm25.metrics["ndcg@10"] == pytest.approx(0.2, abs=1e-12)


def test_seed_scores_hold_one_array_per_seed_in_seed_order(db) -> None:
    system = star(db)
    query_ids, scores = seed_scores(db, [system], "ndcg@10")
    assert query_ids == ["q00", "q01", "q02", "q03"]
    assert [list(a) for a in scores[system.run_id]] == [pytest.approx(STAR[s]) for s in (13, 14, 15)]


def test_the_size_plot_draws_each_indexs_mean_over_seeds(db) -> None:
    plots, skipped = store_plots(db, bootstrap=50)
    assert skipped == ["exp: no training log stored; skipped the training curves"]
    [size] = [p for p in plots if p.what == "size"]
    lines = {line.get_label(): line for line in size.figure.axes[0].get_lines()}
    # x: bytes per document ascending (PQ8, then Flat); y: the mean over seeds at each
    assert list(lines["star"].get_xdata()) == [8.0, 3072.0]
    assert list(lines["star"].get_ydata()) == pytest.approx([MEAN - 0.1, MEAN])
    assert list(lines["bm25"].get_ydata()) == pytest.approx([0.2, 0.2])


def test_the_metric_bars_are_the_mean_over_seeds_and_the_dots_each_seeds_mean(db) -> None:
    plots, _ = store_plots(db, bootstrap=50)
    [bars] = [p for p in plots if p.what == "metrics"]
    ax = bars.figure.axes[0]
    labels = [s.label for s in select_systems(db)["toy"]]
    heights = dict(zip(labels, [patch.get_height() for patch in ax.patches]))
    assert heights == {"bm25 [Flat]": pytest.approx(0.2), "star [Flat]": pytest.approx(MEAN),
                       "bm25 [PQ8]": pytest.approx(0.2), "star [PQ8]": pytest.approx(MEAN - 0.1)}
    from matplotlib.collections import PathCollection  # the scatter's dots; error bars are LineCollections

    dots = sorted(round(float(y), 10) for collection in ax.collections if isinstance(collection, PathCollection)
                  for _, y in collection.get_offsets())
    assert dots == sorted(round(m + shift, 10) for m in SEED_MEANS.values() for shift in (0.0, -0.1))


def test_leaderboard_rows_hold_the_mean_and_sample_sd_over_seeds(db) -> None:
    rows = {(r.variant, r.index): r for r in leaderboard_rows(db)}
    row = rows[("star", "Flat")]
    assert row.seeds == (13, 14, 15) and row.metrics["ndcg@10"] == pytest.approx(MEAN, abs=1e-12)
    assert row.sd["ndcg@10"] == pytest.approx(statistics.stdev(SEED_MEANS.values()), abs=1e-12)
    assert rows[("bm25", "Flat")].sd["ndcg@10"] == 0.0 and rows[("bm25", "Flat")].seeds == (13,)
    per_seed = [r for r in leaderboard_rows(db, per_seed=True) if (r.variant, r.index) == ("star", "Flat")]
    assert {r.seeds[0]: r.metrics["ndcg@10"] for r in per_seed} == pytest.approx(SEED_MEANS)


def test_the_json_leaderboard_and_compare_agree_on_the_mean(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    db = open_store(store)
    populate(db)
    db.close()
    board = json.loads(CliRunner().invoke(app, ["leaderboard", "--store", str(store), "--format", "json"]).output)
    [row] = [r for r in board if r["variant"] == "star" and r["index"] == "Flat"]
    assert row["seeds"] == [13, 14, 15] and row["metrics"]["ndcg@10"] == pytest.approx(MEAN)
    result = CliRunner().invoke(app, ["compare", "--store", str(store), "--index", "Flat", "--format", "json"])
    assert result.exit_code == 0, result.output
    systems = {s["label"]: s for g in json.loads(result.output)["collections"] for s in g["systems"]}
    assert systems["star"]["means"]["ndcg@10"] == pytest.approx(MEAN)
    [c] = json.loads(result.output)["comparisons"]
    assert c["diff"] == pytest.approx(MEAN - 0.2) and np.sign(c["diff"]) == 1


def test_rows_and_metrics_follow_the_recipes_order() -> None:
    # the recipe lists PQ8 before Flat and mrr@10 before ndcg@10; the store was written Flat first
    db = open_memory_store()
    text = '[eval]\nindexes = ["PQ8", "Flat"]\nmetrics = ["mrr@10", "ndcg@10"]\n'
    for index in ("Flat", "PQ8"):
        add_run(db, "star", {"ndcg@10": [0.5], "mrr@10": [0.6]}, index=index, recipe_text=text)
    rows = leaderboard_rows(db)
    assert [r.index for r in rows] == ["PQ8", "Flat"]
    assert all(list(r.metrics) == ["mrr@10", "ndcg@10"] for r in rows)
    assert [list(s.metrics) for s in select_systems(db)["toy"]] == [["mrr@10", "ndcg@10"]] * 2


def test_the_terminal_leaderboard_shows_mean_sd_and_each_seed(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    db = open_store(store)
    populate(db)
    db.close()
    board = CliRunner().invoke(app, ["leaderboard", "--store", str(store)], env={"COLUMNS": "250"})
    assert board.exit_code == 0, board.output
    assert "0.3500" in board.output and "±0.2179" in board.output  # sd of 0.5, 0.1, 0.45
    assert "0.5000" not in board.output  # no seed's own value stands in for the mean
    per_seed = CliRunner().invoke(app, ["leaderboard", "--store", str(store), "--seeds"], env={"COLUMNS": "250"})
    assert per_seed.exit_code == 0 and "±" not in per_seed.output
    assert all(f"{m:.4f}" in per_seed.output for m in SEED_MEANS.values())
