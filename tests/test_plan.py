"""`drbench plan` and the Plan behind it: what a recipe will run, counted as `validate` counts
it, each run's status against a store and cache (stored / model cached / to evaluate / to train),
its key (the one `drbench run` stores), and nothing written.

One tiny recipe (cranfield: BM25, zero-shot and an in-batch model trained for two steps) is
planned before it runs, run once, and planned again against its store, and against an empty
store beside its cache.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from harness.cli import app
from harness.pipeline import RunOptions, run_recipe
from harness.recipe import build_plan, load_recipe, parse_recipe, run_count

REPO = Path(__file__).resolve().parent.parent
RECIPE = """\
[experiment]
name = "planned"
seed = 5
store = "{folder}/drbench.db"
cache_dir = "{folder}/cache"

[model]
base = "{model}"
batch_size = 128

[data]
train = "cranfield"
eval = ["cranfield"]

[eval]
indexes = ["Flat", "PQ8"]
metrics = ["ndcg@10"]
depth = 20

[variant.bm25]
kind = "bm25"

[variant.zero-shot]
kind = "zero-shot"

[variant.inbatch]
kind = "inbatch"
max_steps = 2
batch_size = 4
warmup_steps = 1
query_max_length = 16
doc_max_length = 16
"""

SWEPT = """\
[experiment]
name = "x"
seeds = [1, 2]
[data]
train = "beir/scifact/train"
eval = ["beir/scifact/test"]
dev = "holdout:0.1"
[variant.bm25]
kind = "bm25"
[variant.star]
kind = "star"
[variant.star.sweep]
lr = [1e-5, 2e-5]
[variant.adore]
kind = "adore"
index_from = "star"
"""


def invoke(*args: object) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def plan_json(*args: object) -> dict:
    result = invoke("plan", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory, mirror: Path, tiny_model: Path, irds_home: Path):
    """(folder, recipe, the plan before the run, the store's run keys after it)."""
    folder = tmp_path_factory.mktemp("plan")
    recipe = folder / "recipe.toml"
    recipe.write_text(RECIPE.format(folder=folder, model=tiny_model))
    home = files_under(irds_home)
    before = plan_json(recipe, "--mirror", mirror)
    # Nothing written: no store, no cache folder, nothing under IR_DATASETS_HOME (ir_datasets'
    # own version markers aside), not even the archive's sha256 sidecar.
    assert sorted(os.listdir(folder)) == ["recipe.toml"]
    assert {p for p in files_under(irds_home) - home if p.name != "irds_version.txt"} == set()
    run_recipe(load_recipe(recipe), RunOptions(mirror=str(mirror)), Console(file=io.StringIO()))
    with closing(sqlite3.connect(folder / "drbench.db")) as conn:
        stored = {(v, c, i, s): k for v, c, i, s, k in conn.execute(
            "SELECT variant, collection, index_factory, seed, run_key FROM runs")}
    return folder, recipe, before, stored


def test_before_the_run_every_run_is_to_evaluate_or_to_train(planned) -> None:
    _, recipe, before, _ = planned
    status = {(r["variant"], r["index"]): r["status"] for r in before["runs"]}
    assert status == {("bm25", "bm25"): "to evaluate", ("zero-shot", "Flat"): "to evaluate",
                      ("zero-shot", "PQ8"): "to evaluate", ("inbatch", "Flat"): "to train",
                      ("inbatch", "PQ8"): "to evaluate"}
    assert before["summary"]["runs"] == len(before["runs"]) == run_count(load_recipe(recipe)) == 5
    # Keys that need no training are known before the run; a model not trained yet has none.
    keys = {(r["variant"], r["index"]): (r["run_key"], r["run_key_unknown"]) for r in before["runs"]}
    assert keys["bm25", "bm25"][0] and keys["zero-shot", "PQ8"][0]
    assert keys["inbatch", "Flat"] == (None, "model inbatch (seed 5) is not trained yet")


def test_the_training_run_produces_the_model_the_others_wait_for(planned) -> None:
    runs = {(r["variant"], r["index"]): r for r in planned[2]["runs"]}
    first, second = runs["inbatch", "Flat"], runs["inbatch", "PQ8"]
    assert first["trains"] and first["produces"] == ["model:inbatch@5"] and first["needs"] == []
    assert second["needs"] == ["model:inbatch@5"] and second["after"] == [first["id"]]
    assert first["cost"] == {"docs": 1400, "queries": 225, "train_steps": 2, "train_batch": 4}
    assert second["cost"] == {"docs": 0, "queries": 0, "train_steps": 0, "train_batch": 0}  # encoded once


def test_after_the_run_every_run_is_stored_under_the_key_the_plan_computed(planned, mirror: Path) -> None:
    folder, recipe, before, stored = planned
    after = plan_json(recipe, "--mirror", mirror)
    assert {r["status"] for r in after["runs"]} == {"stored"}
    assert {(r["variant"], r["collection"], r["index"], r["seed"]): r["run_key"] for r in after["runs"]} == stored
    known = [r for r in before["runs"] if r["run_key"]]
    assert all(stored[r["variant"], r["collection"], r["index"], r["seed"]] == r["run_key"] for r in known)


def test_a_cached_model_is_evaluate_only_against_another_store(planned, mirror: Path, tmp_path: Path) -> None:
    folder, recipe, _, stored = planned
    other = tmp_path / "other.db"
    runs = plan_json(recipe, "--mirror", mirror, "--store", other)["runs"]
    assert {(r["variant"], r["index"]): r["status"] for r in runs if r["variant"] == "inbatch"} == {
        ("inbatch", "Flat"): "model cached", ("inbatch", "PQ8"): "model cached"}
    assert {r["status"] for r in runs if r["variant"] != "inbatch"} == {"to evaluate"}
    assert all(stored[r["variant"], r["collection"], r["index"], r["seed"]] == r["run_key"] for r in runs)
    assert not other.exists()


def test_an_empty_cache_folder_means_to_train(planned, mirror: Path, tmp_path: Path) -> None:
    _, recipe, _, _ = planned
    runs = plan_json(recipe, "--mirror", mirror, "--store", tmp_path / "none.db", "--cache-dir", tmp_path / "c")["runs"]
    assert [r["status"] for r in runs if r["variant"] == "inbatch"] == ["to train", "to evaluate"]
    assert not (tmp_path / "c").exists()


def test_the_table_names_each_status_and_the_totals(planned, mirror: Path, tmp_path: Path) -> None:
    _, recipe, _, _ = planned
    result = invoke("plan", recipe, "--mirror", mirror, "--store", tmp_path / "none.db")
    assert result.exit_code == 0, result.output
    assert "model cached" in result.output and "to evaluate" in result.output
    # zero-shot's and inbatch's corpus and queries, once each (their PQ8 runs reuse them; BM25 encodes nothing)
    assert ("2 model cached, 3 to evaluate; to do: 2,800 documents and 450 queries to encode, 0 training examples"
            in " ".join(result.output.split()))


def test_a_chained_variant_waits_for_the_point_dev_chooses(tmp_path: Path) -> None:
    recipe = parse_recipe(SWEPT, tmp_path / "r.toml")
    plan = build_plan(recipe)
    # dev: bm25 once, 2 star points x 2 seeds, adore x 2 seeds; test: bm25, the chosen star point, adore
    assert len(plan) == run_count(recipe) == (1 + 2 * 2 + 2) + (1 + 2 + 2)
    dev, test = plan.phase("dev"), plan.phase("eval")
    assert {r.collection for r in dev} == {"beir/scifact/train[holdout:0.1]"}
    star_dev = [r.id for r in dev if r.sweep == "star"]
    adore = next(r for r in dev if r.variant == "adore" and r.seed == 2)
    assert adore.later == ("star",) and set(star_dev) <= set(adore.after)
    assert adore.needs == ("model:star@2",) and adore.produces == ("model:adore@2", "frozen:star@2")
    star = next(r for r in test if r.variant == "star" and r.seed == 1)
    assert star.model is None and star.point is None and star.later == ("star",)
    assert star.as_json()["decided_later"] == ["point of star chosen on dev"]
    assert set(star_dev) <= set(star.after) and star.needs == ("model:star@1",)
    # dependencies only point backwards: an executor can run the list in order
    seen: set[str] = set()
    for run in plan:
        assert set(run.after) <= seen
        seen.add(run.id)


def test_what_dev_decides_is_said_not_guessed(tmp_path: Path, mirror: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(SWEPT)
    where = ["--mirror", mirror, "--store", tmp_path / "s.db", "--cache-dir", tmp_path / "cache"]
    planned = plan_json(recipe, *where)
    assert planned["version"] == 2 and planned["summary"]["runs"] == len(planned["runs"]) == 12
    star = next(r for r in planned["runs"] if r["id"] == "eval/star/1/beir/scifact/test/Flat")
    assert star["status"] == "to evaluate" and star["run_key"] is None  # trained on dev, chosen there
    assert star["run_key_unknown"] == "the point of star is chosen on dev once its dev runs are stored"
    adore = next(r for r in planned["runs"] if r["id"] == "dev/adore/1/beir/scifact/train[holdout:0.1]/Flat")
    assert adore["status"] == "to train" and adore["decided_later"] == ["point of star chosen on dev"]
    assert adore["cost"]["train_steps"] is not None and adore["cost"]["queries"] == round(0.1 * 809)
    table = invoke("plan", recipe, *where)
    assert table.exit_code == 0 and "decided later: point of star chosen on dev" in " ".join(table.output.split())
    # names as the store and every other command spell them (rich would take the brackets for markup)
    assert "star[lr=1e-05]" in table.output and "beir/scifact/train[holdout:0.1]" in table.output
    assert sorted(os.listdir(tmp_path)) == ["r.toml"]


def test_plan_counts_what_validate_counts() -> None:
    for path in sorted((REPO / "recipes").glob("*.toml")):
        if path.name.endswith(".expect.toml"):
            continue
        result = invoke("validate", path, "--offline")
        assert result.exit_code == 0, result.output
        assert f": {len(build_plan(load_recipe(path)))} runs" in " ".join(result.output.split())


@pytest.mark.parametrize("args, message, recipe_text", [
    (["no/such/recipe.toml"], "no/such/recipe.toml", SWEPT),
    (["{recipe}", "--format", "xml"], "--format 'xml': use one of table, json", SWEPT),
    # run's options, refused as run refuses them
    (["{recipe}", "--precision", "fp8"], "--precision fp8: unknown precision", SWEPT),
    (["{recipe}", "--device", "gpu"], "--device gpu: unknown device", SWEPT),
    (["{recipe}", "--store", "{folder}"], "is a folder", SWEPT),
    (["{recipe}", "--cache-dir", "{recipe}"], "is a file; pass --cache-dir a folder", SWEPT),
    # what validate checks: a collection id ir_datasets does not know, a factory string the model cannot take
    (["{recipe}"], "did you mean 'beir/scifact/test'", SWEPT.replace('eval = ["beir/scifact/test"]',
                                                                      'eval = ["beir/scifakt/test"]')),
    (["{recipe}"], "PQ47", SWEPT.replace("[variant.bm25]", '[eval]\nindexes = ["PQ47"]\n[variant.bm25]')),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str, recipe_text: str, tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(recipe_text)
    args = [a.replace("{folder}", str(tmp_path)) for a in args]
    result = invoke("plan", *[a.format(recipe=recipe) for a in args])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.output
