"""A sweep end to end without training: BM25 swept over three k1 values, chosen on a holdout of
SciFact's training queries and reported on its test split. Seconds, so it can check exact stored
numbers: every point's dev run, the chosen point's test run under the sweep's name with the dev
scores behind it, and re-runs that reuse or redo the test run as the grid changes.
"""

from __future__ import annotations

import io
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from rich.console import Console

from harness.pipeline import RunOptions, run_recipe
from harness.recipe import load_recipe, run_count

DEV = "beir/scifact/train[holdout:0.1]"
TEST = "beir/scifact/test"
RECIPE = """\
[experiment]
name = "bm25sweep"

[data]
train = "beir/scifact/train"
eval = ["beir/scifact/test"]
dev = "holdout:0.1"

[eval]
metrics = ["ndcg@10", "recall@100"]
depth = 100

[variant.bm25]
kind = "bm25"

[variant.bm25.sweep]
k1 = [{grid}]
"""


def run(folder: Path, grid: str, mirror: Path) -> tuple[list[tuple[str, str, str]], str]:
    recipe = folder / "recipe.toml"
    recipe.write_text(RECIPE.format(grid=grid))
    log = io.StringIO()
    outcomes = run_recipe(load_recipe(recipe), RunOptions(mirror=str(mirror), store=str(folder / "drbench.db"),
                                                          cache_dir=str(folder / "cache")),
                          Console(file=log, width=250))
    return [(o.variant, o.collection, o.status) for o in outcomes], log.getvalue()


def rows(folder: Path, sql: str, *args: object) -> list[tuple]:
    with closing(sqlite3.connect(folder / "drbench.db")) as conn:
        return conn.execute(sql, args).fetchall()


def dev_scores(folder: Path) -> dict[str, float]:
    return dict(rows(folder, "SELECT variant, value FROM metrics JOIN runs ON runs.id = run_id "
                             "WHERE collection = ? AND metric = 'ndcg@10'", DEV))


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory, mirror: Path) -> tuple[Path, list, str]:
    folder = tmp_path_factory.mktemp("bm25sweep")
    outcomes, log = run(folder, "0.3, 0.9, 1.5", mirror)
    return folder, outcomes, log


def test_every_point_runs_on_dev_then_the_chosen_one_on_test(swept) -> None:
    folder, outcomes, _ = swept
    assert outcomes == [("bm25[k1=0.3]", DEV, "done"), ("bm25[k1=0.9]", DEV, "done"), ("bm25[k1=1.5]", DEV, "done"),
                        ("bm25", TEST, "done")]
    assert len(outcomes) == run_count(load_recipe(folder / "recipe.toml"))
    assert len(set(dev_scores(folder).values())) == 3  # k1 matters: no tie to hide a wrong choice


def test_the_test_run_is_the_best_dev_point_with_its_scores(swept) -> None:
    folder, _, log = swept
    scores = dev_scores(folder)
    best = max(scores, key=scores.get)
    [(params, selection)] = rows(folder, "SELECT params, selection FROM runs WHERE collection = ?", TEST)
    selection = json.loads(selection)
    assert selection == {"name": best, "point": {"k1": float(best[len("bm25[k1="):-1])}, "dev": DEV,
                         "metric": "ndcg@10", "index": "bm25", "score": scores[best], "scores": scores, "seeds": [42]}
    assert json.loads(params)["k1"] == selection["point"]["k1"]
    assert f"bm25: chose {best} on {DEV} (ndcg@10 {scores[best]:.4f}, best of 3 points)" in log


def test_the_test_runs_numbers_are_the_chosen_points(swept, tmp_path: Path, mirror: Path) -> None:
    # the chosen k1 set in an unswept recipe gives the same test numbers
    folder, *_ = swept
    [(selection,)] = rows(folder, "SELECT selection FROM runs WHERE collection = ?", TEST)
    k1 = json.loads(selection)["point"]["k1"]
    text = RECIPE.format(grid="0").split("[variant.bm25.sweep]")[0].replace('dev = "holdout:0.1"\n', "")
    (tmp_path / "recipe.toml").write_text(text.replace('kind = "bm25"', f'kind = "bm25"\nk1 = {k1}'))
    run_recipe(load_recipe(tmp_path / "recipe.toml"), RunOptions(mirror=str(mirror), store=str(tmp_path / "s.db"),
                                                                 cache_dir=str(tmp_path / "cache")),
               Console(file=io.StringIO()))
    query = "SELECT metric, value FROM metrics JOIN runs ON runs.id = run_id WHERE collection = ?"
    with closing(sqlite3.connect(tmp_path / "s.db")) as conn:
        alone = dict(conn.execute(query, (TEST,)).fetchall())
    assert dict(rows(folder, query, TEST)) == alone


def test_an_unchanged_sweep_reuses_every_run(swept, tmp_path: Path, mirror: Path) -> None:
    folder, *_ = swept
    copy = tmp_path / "copy"
    copy.mkdir()
    with closing(sqlite3.connect(folder / "drbench.db")) as src:
        with closing(sqlite3.connect(copy / "drbench.db")) as dst:
            src.backup(dst)
    outcomes, _ = run(copy, "0.3, 0.9, 1.5", mirror)
    assert {status for *_, status in outcomes} == {"skipped"}
    # a new point changes the dev scores behind the choice: its dev run and the test run are redone
    outcomes, _ = run(copy, "0.3, 0.9, 1.5, 3.0", mirror)
    assert [(v, c, s) for v, c, s in outcomes if s == "done"] == [("bm25[k1=3.0]", DEV, "done"), ("bm25", TEST, "done")]
