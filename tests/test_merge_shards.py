"""Array jobs and merged stores: `run --shard I/N` runs chains of the plan that never cross shards,
`merge` joins the shards' stores into what one run stores, merging again changes nothing, and
conflicting numbers are refused with nothing written."""

from __future__ import annotations

import io
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from rich.console import Console
from sqlite_utils import Database
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import RecipeError, StoreError
from harness.pipeline import RunOptions, run_recipe
from harness.recipe import load_recipe, parse_recipe
from harness.recipe.plan import build_plan
from harness.recipe.shards import chains, parse_shard, shard_of
from harness.store.merge import merge_stores
from harness.store.schema import MIGRATIONS

RECIPE = """\
[experiment]
name = "shards"
seed = 3
store = "{folder}/whole.db"
cache_dir = "{folder}/cache"

[model]
base = "{model}"

[collections.cran]
from = "cranfield"
split = {{ train = 0.6, test = 0.4 }}

[data]
train = "cran/train"
dev = "holdout:0.2"
eval = ["cran/test"]

[eval]
depth = 100

[train]
max_steps = 2
batch_size = 8

[variant.bm25]
kind = "bm25"

[variant.zero-shot]
kind = "zero-shot"

[variant.star]
kind = "star"

[variant.star.sweep]
lr = [1e-5, 2e-5]

[variant.adore]
kind = "star+adore"
star = "star"
"""


def _recipe(folder: Path, model: Path) -> Path:
    path = folder / "recipe.toml"
    path.write_text(RECIPE.format(folder=folder, model=model))
    return path


def test_chains_never_cross_shards() -> None:
    recipe = parse_recipe(RECIPE.format(folder="/tmp", model="minilm"), "r.toml")
    plan = build_plan(recipe)
    for count in (1, 2, 3, 5):
        shards = [shard_of(plan, i, count) for i in range(1, count + 1)]
        ids = [run.id for shard in shards for run in shard.runs]
        assert sorted(ids) == sorted(run.id for run in plan.runs) and len(set(ids)) == len(ids)
        for shard in shards:
            mine = {run.id for run in shard.runs}
            assert all(before in mine for run in shard.runs for before in run.after)
    # the sweep's dev runs, its chosen point's runs and the variant chained on it are one chain; runs
    # that need nothing of each other (BM25's and zero-shot's dev and eval runs) are four more
    found = chains(plan.runs)
    assert len(found) == 5
    trained = next(chain for chain in found if any(run.trains for run in chain))
    assert {run.variant for run in trained} == {"star[lr=1e-05]", "star[lr=2e-05]", "star", "adore"}


@pytest.mark.parametrize(("text", "fragment"), [("3/2", "does not exist"), ("0/2", "does not exist"),
                                                ("1-2", "write I/N"), ("a/b", "write I/N")])
def test_a_bad_shard_is_one_line(text: str, fragment: str, tmp_path: Path, tiny_model: Path) -> None:
    with pytest.raises(RecipeError, match=fragment):
        parse_shard(text)
    result = CliRunner().invoke(app, ["run", str(_recipe(tmp_path, tiny_model)), "--shard", text])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and fragment in result.stderr
    assert not (tmp_path / "whole.db").exists() and not list(tmp_path.glob("*.shard-*"))


def _copy(store: Path, to: Path) -> None:
    """A store as SQLite reads it (a byte copy could miss what its write-ahead log holds)."""
    with closing(sqlite3.connect(store)) as source, closing(sqlite3.connect(to)) as target:
        source.backup(target)


def _board(store: Path) -> list[dict]:
    """The leaderboard as JSON, less what a clock or an insertion order decides."""
    result = CliRunner().invoke(app, ["leaderboard", "--store", str(store), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    for row in rows:
        for key in ("timings", "run_id", "run_ids", "index_stats"):
            row.pop(key, None)
    return sorted(rows, key=lambda r: (r["collection"], r["variant"], r["index"]))


def _numbers(store: Path) -> dict:
    with closing(sqlite3.connect(store)) as conn:
        return {
            "runs": sorted(conn.execute("SELECT experiment, variant, collection, index_factory, seed, run_key FROM runs")),
            "query_metrics": sorted(conn.execute(
                "SELECT variant, collection, index_factory, seed, query_id, metric, value FROM query_metrics "
                "JOIN runs ON runs.id = run_id")),
            "results": conn.execute("SELECT count(*), sum(rank), sum(score) FROM results").fetchone(),
            "logs": sorted(conn.execute("SELECT experiment, variant, seed, step, loss, lr FROM training_log")),
        }


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory, mirror: Path, tiny_model: Path) -> tuple[Path, list[Path]]:
    folder = tmp_path_factory.mktemp("shards")
    recipe = _recipe(folder, tiny_model)
    log = io.StringIO()
    run_recipe(load_recipe(recipe), RunOptions(mirror=str(mirror)), Console(file=log, width=300))
    (folder / "whole.log").write_text(log.getvalue())
    shards = []
    for index in (1, 2):
        run_recipe(load_recipe(recipe), RunOptions(mirror=str(mirror), shard=(index, 2)), Console(file=io.StringIO()))
        shards.append(folder / f"whole.shard-{index}-of-2.db")
    return folder / "whole.db", shards


def test_shards_merged_are_the_whole_run(stores: tuple[Path, list[Path]], tmp_path: Path) -> None:
    whole, shards = stores
    assert all(path.is_file() for path in shards)
    assert 0 < len(_numbers(shards[0])["runs"]) < len(_numbers(whole)["runs"])
    merged = tmp_path / "all.db"
    result = CliRunner().invoke(app, ["merge", *map(str, shards), "-o", str(merged)])
    assert result.exit_code == 0, result.output
    assert _board(merged) == _board(whole)
    assert _numbers(merged) == _numbers(whole)
    again = merge_stores(shards, merged)  # merging the same stores again changes nothing
    assert again.copied == 0 and again.kept_once == len(_numbers(whole)["runs"]) and again.log_rows == 0
    assert _numbers(merged) == _numbers(whole)


def test_a_point_at_the_edge_of_its_grid_is_said(stores: tuple[Path, list[Path]]) -> None:
    """Two learning rates: whichever dev chooses is the smallest or the largest tried."""
    log = (stores[0].parent / "whole.log").read_text()
    assert "warning: star on cran/train[holdout:0.2]: " in log
    edge = ("the point chosen on dev sits at the edge of its grid (lr = " in log
            and "widen the grid in the recipe before reading any test number" in log)
    assert edge or "points tie on dev (star[lr=1e-05], star[lr=2e-05]); the first in grid order was taken" in log


def test_conflicting_numbers_are_refused_and_nothing_is_written(stores: tuple[Path, list[Path]],
                                                                tmp_path: Path) -> None:
    whole, _ = stores
    changed = tmp_path / "changed.db"
    _copy(whole, changed)
    with closing(sqlite3.connect(changed)) as conn, conn:
        conn.execute("UPDATE query_metrics SET value = value + 0.5 WHERE run_id = (SELECT min(id) FROM runs)")
    merged = tmp_path / "all.db"
    result = CliRunner().invoke(app, ["merge", str(whole), str(changed), "-o", str(merged)])
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.exit_code == 2 and len(errors) == 1 and "same run key but other per-query values" in errors[0]
    assert not merged.exists()
    assert not [p.name for p in tmp_path.iterdir() if "all.db" in p.name]  # no temp file left either


def test_bad_inputs_are_one_line(stores: tuple[Path, list[Path]], tmp_path: Path) -> None:
    whole, _ = stores
    text = tmp_path / "notes.txt"
    text.write_text("not a store\n")
    for args, fragment in ((["merge", str(text), "-o", str(tmp_path / "x.db")], "is not a drbench results store"),
                           (["merge", str(whole), "-o", str(whole)], "is also an input"),
                           (["merge", str(tmp_path / "none.db"), "-o", str(tmp_path / "x.db")], "no such store")):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and fragment in result.stderr.strip().splitlines()[-1], result.output
    assert not (tmp_path / "x.db").exists()


def test_an_older_store_is_migrated_before_it_is_merged(tmp_path: Path) -> None:
    old_path = tmp_path / "v4.db"
    old = Database(old_path)
    for migration in MIGRATIONS[:4]:
        migration(old)
    old.execute("PRAGMA user_version = 4")
    old.conn.execute("INSERT INTO experiments (name, seed, recipe_hash) VALUES ('exp', 7, 'h')")
    old.conn.execute("INSERT INTO runs (experiment, variant, collection, index_factory, run_key) "
                     "VALUES ('exp', 'bm25', 'toy', 'bm25', 'k')")
    old.conn.execute("INSERT INTO metrics VALUES (1, 'ndcg@10', 0.5)")
    old.conn.commit()
    old.close()
    before = old_path.read_bytes()
    merged = tmp_path / "all.db"
    assert merge_stores([old_path], merged).copied == 1
    assert old_path.read_bytes() == before  # the input is read, never migrated in place
    with closing(sqlite3.connect(merged)) as conn:
        assert conn.execute("SELECT seed, variant FROM runs").fetchall() == [(7, "bm25")]  # v5 gave it its seed
    other = tmp_path / "other.db"  # the same runs from a copy of the recipe naming another store
    _copy(merged, other)
    with closing(sqlite3.connect(other)) as conn, conn:
        conn.execute("UPDATE experiments SET recipe_hash = 'other'")
    done = merge_stores([merged, other], tmp_path / "both.db")
    assert done.kept_once == 1 and len(done.warnings) == 1 and "ran another recipe text" in done.warnings[0]
    with closing(sqlite3.connect(other)) as conn, conn:
        conn.execute("UPDATE runs SET run_key = 'another'")
    with pytest.raises(StoreError, match=f"stored with another run key in {other} than in {merged}"):
        merge_stores([merged, other], tmp_path / "none.db")
    assert not (tmp_path / "none.db").exists()
