"""Collections with a single split: `[collections.NAME] from = ... split = {...}` or `folds = K`
partitions the judged queries once, the same everywhere; a recipe trains on one part, selects on
another and reports the third; overlapping training and evaluation queries are warned about."""

from __future__ import annotations

import io
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from harness.cli import app
from harness.data.catalog import partition
from harness.data.collection import load_collection
from harness.data.local.declared import QuerySplit, declare
from harness.errors import RecipeError
from harness.pipeline import RunOptions, run_recipe
from harness.recipe import load_recipe, parse_recipe

SPLIT = QuerySplit("cran", "cranfield", (("train", 0.6), ("dev", 0.2), ("test", 0.2)))


def test_a_split_partitions_the_judged_queries_once(mirror: Path) -> None:
    parts = partition(SPLIT, mirror)
    assert {k: len(v) for k, v in parts.items()} == {"train": 135, "dev": 45, "test": 45}
    assert not parts["train"] & parts["test"] and not parts["train"] & parts["dev"] and not parts["dev"] & parts["test"]
    judged = set(load_collection("cranfield", mirror, with_docs=False).queries)
    assert parts["train"] | parts["dev"] | parts["test"] == judged
    again = partition(QuerySplit("other", "cranfield", SPLIT.fractions), mirror)
    assert again == parts  # the name does not matter; the source, fractions and seed do
    assert partition(QuerySplit("cran", "cranfield", SPLIT.fractions, seed=1), mirror) != parts


def test_folds_hold_out_every_query_once(mirror: Path) -> None:
    parts = partition(QuerySplit("cran", "cranfield", folds=5), mirror)
    tests = [parts[f"fold{k}/test"] for k in range(1, 6)]
    assert sorted(len(t) for t in tests) == [45] * 5
    assert set().union(*tests) == parts["fold1/train"] | parts["fold1/test"]
    for k, test in enumerate(tests, 1):
        assert not parts[f"fold{k}/train"] & test and len(parts[f"fold{k}/train"]) == 180


def test_a_part_loads_as_a_collection_over_the_sources_documents(mirror: Path) -> None:
    declare((SPLIT,))
    try:
        test, whole = load_collection("cran/test", mirror), load_collection("cranfield", mirror)
        assert set(test.queries) == partition(SPLIT, mirror)["test"]
        assert test.doc_ids == whole.doc_ids and test.docs_id == whole.docs_id  # one corpus: one embedding
        assert test.qrels == {q: whole.qrels[q] for q in test.queries}
        assert any(a.relpath == "queries of cran/test" for a in test.archives)  # the partition is in keys
    finally:
        declare(())


@pytest.mark.parametrize(("table", "fragment"), [
    ('from = "cranfield"\nsplit = { train = 0.6, test = 0.3 }', "add up to 0.9; they must add up to 1"),
    ('from = "cranfield"\nsplit = { train = 0.6, eval = 0.4 }', "not a part name"),
    ('from = "cranfield"\nsplit = { train = 0.6, test = 0.4 }\nfolds = 5', "one of the two"),
    ('from = "cranfield"', "one of the two"),
    ('from = "cranfield"\nsplit = { folds = 3 }', "for k-fold write folds = 3 beside from"),
    ('from = "cran/train"\nfolds = 3', "names this collection itself"),
    ('from = "cranfield"\nfolds = 1', "at least 2"),
    ('format = "csv"\npath = "x"', "not a format drbench reads"),
    ('format = "beir"', "missing; name the BEIR folder"),
    ('format = "trec"\ndocs = "d.tsv"\nqueries = "q.tsv"', "qrels: missing"),
    ('from = "cranfield"\nsplit = { train = 0.5, test = 0.5 }\nshuffle = true', "unknown key"),
])
def test_a_bad_declaration_is_one_line(table: str, fragment: str) -> None:
    with pytest.raises(RecipeError) as caught:
        parse_recipe(f'[experiment]\nname = "x"\n[collections.cran]\n{table}\n[data]\neval = ["cranfield"]\n'
                     '[variant.bm25]\nkind = "bm25"\n', "r.toml")
    assert str(caught.value).startswith("r.toml [collections.cran]") and fragment in str(caught.value)


def test_a_misspelt_part_gets_a_suggestion() -> None:
    with pytest.raises(RecipeError, match=r'r.toml \[data\] eval = "cran/tset": cran has no split \'tset\'; '
                                          r'did you mean "cran/test"\?'):
        parse_recipe('[experiment]\nname = "x"\n[collections.cran]\nfrom = "cranfield"\n'
                     'split = { train = 0.8, test = 0.2 }\n[data]\neval = ["cran/tset"]\n'
                     '[variant.bm25]\nkind = "bm25"\n', "r.toml")


RECIPE = """\
[experiment]
name = "split"
store = "{folder}/drbench.db"
cache_dir = "{folder}/cache"

[model]
base = "{model}"

[collections.cran]
from = "cranfield"
split = {{ train = 0.6, dev = 0.2, test = 0.2 }}

[data]
train = "cran/train"
dev = "cran/dev"
eval = {eval}

[eval]
depth = 100

[variant.bm25]
kind = "bm25"

[variant.star]
kind = "star"
max_steps = 2
batch_size = 8
"""


def test_train_on_one_part_select_on_another_report_the_third(tmp_path: Path, mirror: Path,
                                                              tiny_model: Path) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE.format(folder=tmp_path, model=tiny_model, eval='["cran/test"]'))
    log = io.StringIO()
    outcomes = run_recipe(load_recipe(recipe), RunOptions(mirror=str(mirror)), Console(file=log, width=200))
    assert {(o.variant, o.collection) for o in outcomes} == {
        (v, c) for v in ("bm25", "star") for c in ("cran/dev", "cran/test")}
    assert "warning" not in log.getvalue()
    parts = partition(SPLIT, mirror)
    with closing(sqlite3.connect(tmp_path / "drbench.db")) as conn:
        evaluated = {q for (q,) in conn.execute("SELECT DISTINCT query_id FROM query_metrics JOIN runs ON "
                                                "runs.id = run_id WHERE collection = 'cran/test'")}
        data = json.loads(conn.execute("SELECT data FROM runs WHERE collection = 'cran/test' LIMIT 1").fetchone()[0])
    assert evaluated == parts["test"] and not evaluated & parts["train"]
    assert "queries of cran/test" in data["archives"]  # the partition is stored with the runs


def test_overlapping_train_and_eval_queries_are_warned_about(tmp_path: Path, mirror: Path, tiny_model: Path) -> None:
    recipe = tmp_path / "recipe.toml"
    # no dev split: one holding test queries is refused (the next test), not warned about
    recipe.write_text(RECIPE.format(folder=tmp_path, model=tiny_model, eval='["cran/test", "cranfield"]')
                      .replace('dev = "cran/dev"\n', ""))
    result = CliRunner().invoke(app, ["validate", str(recipe)], env={"DRBENCH_MIRROR": str(mirror)})
    assert result.exit_code == 0, result.output
    assert ('warning: ' + f'{recipe} [data] eval = "cranfield" shares 135 judged queries with train = "cran/train"'
            ) in " ".join(result.stderr.split())
    assert "cran/test\" shares" not in result.stderr


FOLDS = """\
[experiment]
name = "folds"
store = "{folder}/drbench.db"
cache_dir = "{folder}/cache"

[model]
base = "{model}"

[collections.cran]
from = "cranfield"
folds = 3

[data]
train = "cran/train"
eval = ["cran/test"]
{dev}
[eval]
depth = 100

[variant.bm25]
kind = "bm25"

[variant.star]
kind = "star"
max_steps = 1
batch_size = 8
"""


def _per_query(conn: sqlite3.Connection, variant: str, collection: str) -> dict[str, float]:
    return dict(conn.execute("SELECT query_id, value FROM query_metrics JOIN runs ON runs.id = run_id WHERE "
                             "variant = ? AND collection = ? AND metric = 'ndcg@10'", (variant, collection)))


def test_every_fold_trains_and_reports_and_the_folds_combine(tmp_path: Path, mirror: Path, tiny_model: Path) -> None:
    from harness.recipe.folds import fold_recipes
    from harness.recipe.plan import build_plan

    recipe_path = tmp_path / "recipe.toml"
    recipe_path.write_text(FOLDS.format(folder=tmp_path, model=tiny_model, dev=""))
    recipe = load_recipe(recipe_path)
    for fold in fold_recipes(recipe):  # no query of a fold's test part is trained on
        trained = set(load_collection(str(fold.data.train), mirror, with_docs=False).queries)
        tested = set(load_collection(fold.data.eval[0], mirror, with_docs=False).queries)
        assert trained and tested and not trained & tested and len(trained | tested) == 225
    plan = build_plan(recipe)
    assert [len(fold.runs) for fold in plan.folds] == [2, 2, 2] and len(plan.phase("folds")) == 2
    models = {a for run in plan.runs for a in run.produces if ":model:" in a}
    assert models == {f"fold{k}:model:star@42" for k in (1, 2, 3)}  # each fold trains its own model
    outcomes = run_recipe(recipe, RunOptions(mirror=str(mirror)), Console(file=io.StringIO()))
    assert sorted((o.collection, o.status) for o in outcomes if o.variant == "star") == [
        ("cran/fold1/test", "done"), ("cran/fold2/test", "done"), ("cran/fold3/test", "done"), ("cran/test", "done")]
    with closing(sqlite3.connect(tmp_path / "drbench.db")) as conn:
        for variant in ("bm25", "star"):
            combined = _per_query(conn, variant, "cran/test")
            folds = [_per_query(conn, variant, f"cran/fold{k}/test") for k in (1, 2, 3)]
            assert len(combined) == 225 and sum(map(len, folds)) == 225
            assert combined == {q: v for fold in folds for q, v in fold.items()}  # each from the fold that held it out
            stored = conn.execute("SELECT value FROM metrics JOIN runs ON runs.id = run_id WHERE variant = ? AND "
                                  "collection = 'cran/test' AND metric = 'ndcg@10'", (variant,)).fetchone()[0]
            assert stored == pytest.approx(sum(combined.values()) / 225, abs=1e-12)
    log = io.StringIO()
    again = run_recipe(load_recipe(recipe_path), RunOptions(mirror=str(mirror)), Console(file=log, width=200))
    assert {o.status for o in again} == {"skipped"} and len(again) == 8


def test_bm25_over_folds_is_bm25_over_the_whole_collection(tmp_path: Path, mirror: Path, tiny_model: Path) -> None:
    """BM25 does not train: its folds' combination is its run on every judged query."""
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(FOLDS.format(folder=tmp_path, model=tiny_model, dev="").split("[variant.star]")[0])
    run_recipe(load_recipe(recipe), RunOptions(mirror=str(mirror)), Console(file=io.StringIO()))
    whole = tmp_path / "whole.toml"
    whole.write_text(f'[experiment]\nname = "whole"\nstore = "{tmp_path}/drbench.db"\n[data]\neval = ["cranfield"]\n'
                     '[eval]\ndepth = 100\n[variant.bm25]\nkind = "bm25"\n')
    run_recipe(load_recipe(whole), RunOptions(mirror=str(mirror)), Console(file=io.StringIO()))
    with closing(sqlite3.connect(tmp_path / "drbench.db")) as conn:
        assert _per_query(conn, "bm25", "cran/test") == pytest.approx(_per_query(conn, "bm25", "cranfield"), abs=1e-12)


@pytest.mark.parametrize(("data", "fragment"), [
    ('train = "cran/train"\neval = ["cran/test", "cranfield"]', "evaluates nothing else"),
    ('train = "cran/train"\neval = ["cranfield"]', "trains once per fold"),
    ('train = "cran/train"\neval = ["cran/test"]\ndev = "cran/fold1/test"', "holdout"),
    ('train = "cranfield"\neval = ["cran/test"]', 'train = "cran/train"'),
])
def test_a_folds_recipe_names_its_parts_as_a_fold_runs_them(data: str, fragment: str) -> None:
    with pytest.raises(RecipeError) as caught:
        parse_recipe(f'[experiment]\nname = "x"\n[collections.cran]\nfrom = "cranfield"\nfolds = 3\n[data]\n{data}\n'
                     '[variant.star]\nkind = "star"\n', "r.toml")
    assert str(caught.value).startswith("r.toml [data]") and fragment in str(caught.value)


def test_a_dev_split_that_holds_test_queries_is_refused(tmp_path: Path, mirror: Path, tiny_model: Path) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE.format(folder=tmp_path, model=tiny_model, eval='["cran/test"]')
                      .replace('dev = "cran/dev"', 'dev = "cranfield"'))
    result = CliRunner().invoke(app, ["validate", str(recipe)], env={"DRBENCH_MIRROR": str(mirror)})
    assert result.exit_code == 2, result.output
    assert 'dev = "cranfield" shares 45 judged queries with eval = "cran/test"' in " ".join(result.stderr.split())


def test_the_combined_row_names_each_folds_choice() -> None:
    from leaderboard.rows import LeaderboardRow

    folds = [{"point": {"lr": 1e-5}}, {"point": {"lr": 2e-5}}, None]
    row = LeaderboardRow("e", "star", "star", "cran/test", "Flat", {}, selection={"folds": folds})
    assert row.chosen == "per fold: lr=1e-05; lr=2e-05; -"


def test_the_plan_counts_a_shared_corpus_once_per_encoder(mirror: Path, tiny_model: Path, tmp_path: Path) -> None:
    from harness.pipeline.plan_status import plan_status
    from harness.recipe.plan import build_plan

    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE.format(folder=tmp_path, model=tiny_model, eval='["cran/test"]')
                      .replace('[variant.bm25]\nkind = "bm25"', '[variant.zs]\nkind = "zero-shot"'))
    from harness.data.catalog import ensure_available

    ensure_available("cranfield", mirror)
    runs = plan_status(build_plan(load_recipe(recipe)), tmp_path / "none.db", tmp_path / "cache", mirror)
    zero_shot = [run.cost.docs for run in runs if run.spec.variant == "zs"]
    assert zero_shot == [1400, 0]  # cran/dev and cran/test share cranfield's corpus: one encoding
