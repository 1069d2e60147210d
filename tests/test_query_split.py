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
    recipe.write_text(RECIPE.format(folder=tmp_path, model=tiny_model, eval='["cran/test", "cranfield"]'))
    result = CliRunner().invoke(app, ["validate", str(recipe)], env={"DRBENCH_MIRROR": str(mirror)})
    assert result.exit_code == 0, result.output
    assert ('warning: ' + f'{recipe} [data] eval = "cranfield" shares 135 judged queries with train = "cran/train"'
            ) in " ".join(result.stderr.split())
    assert "cran/test\" shares" not in result.stderr
