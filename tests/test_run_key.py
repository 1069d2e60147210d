"""The run key: a stored run is reused only when everything that determines its numbers or its
stored rows is unchanged. BM25 on Cranfield (seconds) is run once with `store_depth = 10`; each
test re-runs a copy of that store with one thing changed and checks whether the run is redone.
"""

from __future__ import annotations

import io
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from rich.console import Console

from harness.pipeline import RunOptions, run_recipe
from harness.recipe import load_recipe

RECIPE = """\
[experiment]
name = "keys"
seed = 7

[data]
eval = ["cranfield"]

[eval]
metrics = ["ndcg@10", "recall@100"]
depth = 100
store_depth = 10

[variant.bm25]
kind = "bm25"
"""


def run(folder: Path, text: str, mirror: Path, force: bool = False) -> list[tuple[str, str]]:
    recipe = folder / "recipe.toml"
    recipe.write_text(text)
    outcomes = run_recipe(load_recipe(recipe), RunOptions(mirror=str(mirror), store=str(folder / "drbench.db"),
                                                          cache_dir=str(folder / "cache"), force=force),
                          Console(file=io.StringIO()))
    return [(o.variant, o.status) for o in outcomes]


def stored(folder: Path) -> dict[str, object]:
    with closing(sqlite3.connect(folder / "drbench.db")) as conn:
        [(run_id, key, depth)] = conn.execute("SELECT id, run_key, depth FROM runs").fetchall()
        deepest = conn.execute("SELECT max(rank), count(DISTINCT query_id) FROM results WHERE run_id = ?",
                               (run_id,)).fetchone()
        metrics = dict(conn.execute("SELECT metric, value FROM metrics WHERE run_id = ?", (run_id,)).fetchall())
    return {"key": key, "depth": depth, "deepest": deepest[0], "queries": deepest[1], "metrics": metrics}


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory, mirror: Path) -> Path:
    folder = tmp_path_factory.mktemp("keys")
    assert run(folder, RECIPE, mirror) == [("bm25", "done")]
    return folder


@pytest.fixture
def copy(first: Path, tmp_path: Path) -> Path:
    with closing(sqlite3.connect(first / "drbench.db")) as src:
        with closing(sqlite3.connect(tmp_path / "drbench.db")) as dst:
            src.backup(dst)
    return tmp_path


def test_the_first_run_stores_store_depth_documents_per_query(first: Path) -> None:
    got = stored(first)
    assert got["deepest"] == 10 and got["depth"] == 100 and got["queries"] == 225


@pytest.mark.parametrize("change", [
    ("store_depth = 10", "store_depth = 10\n# a comment changes nothing"),
    ("[variant.bm25]", '[variant.other]\nkind = "bm25"\nk1 = 1.5\n\n[variant.bm25]'),  # another variant
])
def test_an_unchanged_run_is_reused(copy: Path, mirror: Path, change: tuple[str, str]) -> None:
    assert dict(run(copy, RECIPE.replace(*change), mirror))["bm25"] == "skipped"


@pytest.mark.parametrize("store_depth, deepest", [(5, 5), (20, 20), (None, 100)])
def test_a_new_store_depth_re_runs_and_stores_that_many_documents(copy: Path, mirror: Path, store_depth: int | None,
                                                                  deepest: int) -> None:
    before = stored(copy)
    line = "" if store_depth is None else f"store_depth = {store_depth}"
    assert run(copy, RECIPE.replace("store_depth = 10", line), mirror) == [("bm25", "done")]
    after = stored(copy)
    assert after["deepest"] == deepest and after["key"] != before["key"]
    assert after["metrics"] == before["metrics"]  # computed at full depth either way
    # and the new run is reused in turn
    assert run(copy, RECIPE.replace("store_depth = 10", line), mirror) == [("bm25", "skipped")]


@pytest.mark.parametrize("change", [
    ("depth = 100", "depth = 200"),
    ('metrics = ["ndcg@10", "recall@100"]', 'metrics = ["ndcg@10", "recall@100", "mrr@10"]'),
    ('kind = "bm25"', 'kind = "bm25"\nk1 = 1.5'),
    ("seed = 7", "seed = 8"),
])
def test_a_change_that_alters_the_numbers_re_runs(copy: Path, mirror: Path, change: tuple[str, str]) -> None:
    before = stored(copy)
    assert run(copy, RECIPE.replace(*change), mirror) == [("bm25", "done")]
    assert stored(copy)["key"] != before["key"]


def test_force_re_runs_an_unchanged_run_under_the_same_key(copy: Path, mirror: Path) -> None:
    before = stored(copy)
    assert run(copy, RECIPE, mirror, force=True) == [("bm25", "done")]
    assert stored(copy)["key"] == before["key"]
