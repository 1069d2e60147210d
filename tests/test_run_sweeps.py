"""Sweeps selected on a dev split: every point is trained and evaluated on the dev split (a
holdout of the training queries here), the best dev point is the one the test split reports, and
the test split chooses nothing.

One recipe (BM25 and STAR, each swept over two values, and ADORE on whichever STAR point the dev
split chooses; two seeds) runs once per module on SciFact with the tiny model; the tests read its
store.
"""

from __future__ import annotations

import io
import json
import sqlite3
import statistics
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console
from typer.testing import CliRunner

import harness.train.trainer as trainer
from harness.cli import app
from harness.data.holdout import holdout_ids
from harness.errors import RecipeError
from harness.pipeline import RunOptions, run_recipe
from harness.pipeline.run import run_key
from harness.recipe import load_recipe, parse_recipe, run_count

DEV = "beir/scifact/train[holdout:0.1]"
RECIPE = """\
[experiment]
name = "sweep"
seeds = [13, 14]
store = "{folder}/drbench.db"
cache_dir = "{folder}/cache"

[model]
base = "{model}"
batch_size = 256

[data]
train = "beir/scifact/train"
eval = ["beir/scifact/test"]
dev = "holdout:0.1"

[eval]
metrics = ["ndcg@10", "mrr@10"]
depth = 100

[variant.bm25]
kind = "bm25"

[variant.bm25.sweep]
k1 = [0.5, 1.2]

[variant.star]
kind = "star"
max_steps = 2
batch_size = 8
warmup_steps = 1
negatives_depth = 20
query_max_length = 16
doc_max_length = 32

[variant.star.sweep]
lr = [1e-4, 1e-3]

[variant.adore]
kind = "adore"
index_from = "star"
max_steps = 3
batch_size = 8
query_max_length = 16
eval_every = 1
keep = "best"
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory, mirror: Path, tiny_model: Path) -> tuple[Path, list, str]:
    folder = tmp_path_factory.mktemp("sweep")
    recipe = folder / "recipe.toml"
    recipe.write_text(RECIPE.format(folder=folder, model=tiny_model))
    trained_on: list[tuple[str, ...]] = []
    original = trainer.train_into

    def recording(work, strategy, params, inputs, *args, **kwargs):
        trained_on.append(inputs.data.query_ids)
        return original(work, strategy, params, inputs, *args, **kwargs)

    log = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer, "train_into", recording)
        run_recipe(load_recipe(recipe), RunOptions(mirror=str(mirror)), Console(file=log, width=250))
    return folder, trained_on, log.getvalue()


def rows(folder: Path, sql: str, *args: object) -> list[tuple]:
    with closing(sqlite3.connect(folder / "drbench.db")) as conn:
        return conn.execute(sql, args).fetchall()


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})


def dev_means(folder: Path) -> dict[str, float]:
    values: dict[str, list[float]] = {}
    for variant, value in rows(folder, "SELECT variant, value FROM metrics JOIN runs ON runs.id = run_id "
                                       "WHERE collection = ? AND metric = 'ndcg@10'", DEV):
        values.setdefault(variant, []).append(value)
    return {variant: statistics.fmean(v) for variant, v in values.items()}


def test_every_point_and_seed_is_evaluated_on_the_dev_split(swept) -> None:
    folder, *_ = swept
    stored = rows(folder, "SELECT variant, seed FROM runs WHERE collection = ? ORDER BY variant, seed", DEV)
    assert stored == [("adore", 13), ("adore", 14), ("bm25[k1=0.5]", 13), ("bm25[k1=1.2]", 13),
                      ("star[lr=0.0001]", 13), ("star[lr=0.0001]", 14), ("star[lr=0.001]", 13), ("star[lr=0.001]", 14)]
    [(queries,)] = rows(folder, "SELECT DISTINCT n_queries FROM runs WHERE collection = ?", DEV)
    assert queries == round(0.1 * 809)


def test_the_test_split_reports_the_best_dev_point_under_the_variants_name(swept) -> None:
    folder, *_ = swept
    means = dev_means(folder)
    test = {(v, s): (json.loads(p), json.loads(sel or "null")) for v, s, p, sel in rows(
        folder, "SELECT variant, seed, params, selection FROM runs WHERE collection = 'beir/scifact/test'")}
    assert sorted(test) == [("adore", 13), ("adore", 14), ("bm25", 13), ("star", 13), ("star", 14)]
    for name, key in (("bm25", "k1"), ("star", "lr")):
        points = {v: m for v, m in means.items() if v.startswith(name + "[")}
        best = max(points, key=points.get)
        params, selection = test[(name, 13)]
        assert selection["name"] == best and selection["score"] == pytest.approx(points[best])
        assert selection["scores"] == pytest.approx(points) and selection["dev"] == DEV
        assert params[key] == selection["point"][key]  # the test run evaluated the chosen point
        assert test[(name, 13)][1] == selection


def test_training_never_sees_the_held_out_queries(swept) -> None:
    folder, trained_on, _ = swept
    held = {q for q, in rows(folder, "SELECT DISTINCT query_id FROM query_metrics JOIN runs ON runs.id = run_id "
                                     "WHERE collection = ?", DEV)}
    assert len(held) == 81 and len(trained_on) == 6  # STAR: 2 points x 2 seeds; ADORE: 2 seeds
    for query_ids in trained_on:
        assert not held & set(query_ids) and len(query_ids) == 809 - 81


def test_a_variant_chained_on_a_sweep_trains_on_its_chosen_point(swept) -> None:
    folder, *_ = swept
    stored = rows(folder, "SELECT variant, collection, seed, model FROM runs WHERE model IS NOT NULL")
    models = {(v, c, s): json.loads(m) for v, c, s, m in stored}
    [(selection,)] = rows(folder, "SELECT DISTINCT selection FROM runs WHERE variant = 'star'")
    chosen = json.loads(selection)["name"]
    for seed in (13, 14):  # ADORE's frozen documents are the chosen STAR point's, of the same seed
        point = models[(chosen, DEV, seed)]["fingerprint"]
        assert models[("adore", DEV, seed)]["fingerprint"] == point
        assert models[("adore", "beir/scifact/test", seed)]["fingerprint"] == point
        assert models[("star", "beir/scifact/test", seed)]["fingerprint"] == point


def test_the_log_names_points_and_the_holdout_as_they_are(swept) -> None:
    *_, log = swept  # rich would read "[lr=0.001]" as a markup tag and drop it
    assert f"done star[lr=0.001] (seed 14) / {DEV} / Flat" in log
    assert "star: chose star[lr=" in log and f"{DEV}: 81 training queries held out" in log
    # Not a terminal: every stage prints plain lines (issue 13), here its start and its end.
    assert "star[lr=0.001]: training: 2 steps" in log and "star[lr=0.001]: training: done, 2 steps in" in log


def test_eval_every_logs_dev_scores_and_keep_best_keeps_that_step(swept) -> None:
    folder, *_ = swept
    for seed in (13, 14):
        log = [(step, json.loads(extra)) for step, extra in rows(
            folder, "SELECT step, extra FROM training_log WHERE variant = 'adore' AND seed = ? ORDER BY step", seed)]
        assert [step for step, _ in log] == [1, 2, 3] and all("dev_ndcg@10" in extra for _, extra in log)
        scores = {step: extra["dev_ndcg@10"] for step, extra in log}
        kept = log[-1][1]["kept_step"]
        assert scores[kept] == max(scores.values()) and kept == min(s for s in scores if scores[s] == scores[kept])
        # The kept model is the one evaluated: its dev run scores what training logged for that step.
        [(stored,)] = rows(folder, "SELECT value FROM metrics JOIN runs ON runs.id = run_id WHERE variant = 'adore' "
                                   "AND seed = ? AND collection = ? AND metric = 'ndcg@10'", seed, DEV)
        assert stored == pytest.approx(scores[kept], abs=1e-6)


def test_check_names_a_selected_sweep_as_its_evaluation_runs_are_stored(swept) -> None:
    folder, *_ = swept
    [(value,)] = rows(folder, "SELECT avg(value) FROM metrics JOIN runs ON runs.id = run_id WHERE variant = 'star' "
                              "AND collection = 'beir/scifact/test' AND metric = 'ndcg@10'")
    expect = folder / "expect.toml"
    row = '[[expect]]\nvariant = "{}"\ncollection = "beir/scifact/test"\nindex = "Flat"\nmetric = "ndcg@10"\n'
    expect.write_text('recipe = "recipe.toml"\n' + row.format("star") + f"value = {value!r}\ntolerance = 0.0\n")
    assert invoke("check", expect).exit_code == 0
    expect.write_text('recipe = "recipe.toml"\n' + row.format("star[lr=0.001]") + "value = 0.5\n")
    point = invoke("check", expect)
    assert point.exit_code == 2 and 'variant = "star[lr=0.001]": not a variant' in point.output


def test_holdout_is_seeded_and_independent_of_the_recipe_seed() -> None:
    ids = [f"q{i}" for i in range(100)]
    assert holdout_ids(ids, 0.1) == holdout_ids(reversed(ids), 0.1) and len(holdout_ids(ids, 0.1)) == 10


def test_leaderboard_shows_the_chosen_point_and_its_dev_score(swept) -> None:
    folder, *_ = swept
    result = invoke("leaderboard", "--store", folder / "drbench.db", "--collection", "beir/scifact/test")
    assert result.exit_code == 0 and "chosen on dev" in result.output and "(dev ndcg@10 0." in result.output
    board = json.loads(invoke("leaderboard", "--store", folder / "drbench.db", "--format", "json").output)
    star = next(r for r in board if r["variant"] == "star" and r["collection"] == "beir/scifact/test")
    assert star["selection"]["metric"] == "ndcg@10" and star["seeds"] == [13, 14]


def test_the_leaderboard_names_the_point_a_chained_variant_trained_on(swept) -> None:
    folder, *_ = swept
    [(selection,)] = rows(folder, "SELECT DISTINCT selection FROM runs WHERE variant = 'star'")
    chosen = json.loads(selection)["name"]
    board = json.loads(invoke("leaderboard", "--store", folder / "drbench.db", "--format", "json").output)
    adore = [r for r in board if r["variant"] == "adore"]
    assert {r["collection"] for r in adore} == {DEV, "beir/scifact/test"}
    assert all(r["selection"] == {"on": {"star": chosen}} for r in adore)
    result = invoke("leaderboard", "--store", folder / "drbench.db", "--collection", "beir/scifact/test")
    assert f"on {chosen}" in result.output  # escaped: rich would take "[lr=...]" for a markup tag
    # Not part of the run key (the model's identity already tells the STAR points apart), so runs
    # stored before drbench recorded it keep their keys and are reused.
    recipe = load_recipe(folder / "recipe.toml")
    parts = (recipe, recipe.variant("adore"), SimpleNamespace(dataset_id=DEV, archive_digests={}), "Flat", {})
    assert run_key(*parts, {"on": {"star": chosen}}) == run_key(*parts, None)
    point = {"name": chosen, "point": {"lr": 1e-3}}
    assert run_key(*parts, {**point, "on": {"star": chosen}}) == run_key(*parts, point) != run_key(*parts, None)


def test_plan_after_the_run_finds_every_run_stored_chosen_points_included(swept, mirror: Path) -> None:
    # The test split's runs of a selected sweep, and of ADORE chained on it, have keys only once
    # dev has chosen: the plan reads the choice from the stored dev runs and gets the stored keys.
    folder, *_ = swept
    result = invoke("plan", folder / "recipe.toml", "--mirror", mirror, "--format", "json")
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    stored = {(v, c, i, s): k for v, c, i, s, k in rows(folder, "SELECT variant, collection, index_factory, seed, "
                                                               "run_key FROM runs")}
    assert {(r["variant"], r["collection"], r["index"], r["seed"]): r["run_key"] for r in runs} == stored
    assert {r["status"] for r in runs} == {"stored"}
    star = next(r for r in runs if r["phase"] == "eval" and r["variant"] == "star" and r["seed"] == 13)
    assert star["point"] is None  # the plan itself never guesses; what dev chose is read from the store
    chosen = next(json.loads(s)["name"] for v, s in rows(folder, "SELECT variant, selection FROM runs WHERE "
                                                                 "collection = 'beir/scifact/test' AND seed = 13")
                  if v == "star")
    assert star["chosen"] == chosen and star["decided_later"] == []


def test_chained_on_follows_variants_not_builtins(tmp_path: Path) -> None:
    # `negatives_from = "bm25"` is the built-in BM25 even beside a swept variant named bm25, and a
    # chain through an unswept variant (ado -> star2 -> star) still names star's chosen point.
    from harness.pipeline.models import Models
    from harness.progress import StageProgress

    recipe = parse_recipe(
        '[experiment]\nname = "x"\n[data]\ntrain = "beir/scifact/train"\neval = ["beir/scifact/test"]\n'
        'dev = "holdout:0.1"\n[variant.bm25]\nkind = "bm25"\n[variant.bm25.sweep]\nk1 = [0.5, 1.2]\n'
        '[variant.sta]\nkind = "static"\nnegatives_from = "bm25"\n'
        '[variant.star]\nkind = "star"\n[variant.star.sweep]\nlr = [1e-5, 2e-5]\n'
        '[variant.star2]\nkind = "star"\ninit = "star"\n[variant.ado]\nkind = "adore"\nindex_from = "star2"\n',
        tmp_path / "r.toml")
    console = Console(file=io.StringIO())
    models = Models(recipe, tmp_path / "cache", StageProgress(console), console)
    models.alias("bm25", "bm25[k1=0.5]")
    models.alias("star", "star[lr=2e-05]")
    assert models.chained_on("sta") == {} and models.chained_on("bm25[k1=0.5]") == {}
    assert models.chained_on("star2") == models.chained_on("ado") == {"star": "star[lr=2e-05]"}


def test_a_second_run_skips_and_validate_counts_the_runs(swept, mirror: Path) -> None:
    folder, *_ = swept
    recipe = load_recipe(folder / "recipe.toml")
    outcomes = run_recipe(recipe, RunOptions(mirror=str(mirror)), Console(file=io.StringIO()))
    assert {o.status for o in outcomes} == {"skipped"}
    assert len(outcomes) == run_count(recipe) == len(rows(folder, "SELECT id FROM runs"))
    result = invoke("validate", folder / "recipe.toml", "--offline")
    assert "star (star, 2 sweep points)" in result.output and "selected on dev holdout:0.1: 13 runs" in result.output


HEAD = ('[experiment]\nname = "x"\n[data]\ntrain = "beir/scifact/train"\neval = ["beir/scifact/test"]\n{data}\n'
        '[variant.star]\nkind = "star"\n{variant}')


@pytest.mark.parametrize("data, variant, fragment", [
    ('dev = "holdout:0.1"', "[variant.star.sweep]\nlrr = [1e-5]\n",
     '[variant.star.sweep] lrr: not a key kind "star" takes, so it cannot be swept; did you mean "lr"?'),
    ('select = "dev"', "", '[data] select = "dev": needs [data] dev'),
    ("", "[variant.star.sweep]\nlr = [1e-5, 2e-5]\n", "[data] dev: variant 'star' is swept"),
    ('dev = "holdout:0.6"', "", '[data] dev = "holdout:0.6": a holdout fraction must be in (0, 0.5]'),
    ('dev = "holdout:0"', "", "a holdout fraction must be in (0, 0.5]"),
    ('dev = "beir/scifact/test"', "", "is also an evaluation split"),
    ('dev = "holdout:0.1"', "lr = 1e-5\n[variant.star.sweep]\nlr = [1e-5]\n", "also set in [variant.star]"),
    ('dev = "holdout:0.1"', "[variant.star.sweep]\nlr = [1e-5, 1e-5]\n", "lists a value twice"),
    ('dev = "holdout:0.1"', '[variant.star.sweep]\nlr = ["fast"]\n', "expected float, got str"),
    ('dev = "beir/scifact/train"', "", '[data] dev = "beir/scifact/train": is the training split'),
    ('dev = "holdout:0.1"', 'init = "star"\n[variant.star.sweep]\nlr = [1e-5, 2e-5]\n',
     '[variant.star] init = "star": names its own sweep'),
    ('dev = "holdout:0.1"',
     'negatives_from = "lex"\n[variant.lex]\nkind = "bm25"\n[variant.lex.sweep]\nk1 = [0.9, 1.2]\n',
     '[variant.star] negatives_from = "lex": not a built-in or another dense variant'),
    ("", "eval_every = 5\n", "[variant.star] eval_every = 5: scores on the dev split; set [data] dev"),
    ('dev = "holdout:0.1"', 'keep = "best"\n', '[variant.star] keep = "best": keeps the step with the best dev '
                                               "score; set eval_every = N too"),
])
def test_bad_sweeps_and_dev_splits_get_one_line_before_any_work(data: str, variant: str, fragment: str,
                                                                  tmp_path: Path) -> None:
    with pytest.raises(RecipeError) as err:
        parse_recipe(HEAD.format(data=data, variant=variant), "r.toml")
    assert fragment in str(err.value) and "\n" not in str(err.value)
    path = tmp_path / "r.toml"
    path.write_text(HEAD.format(data=data, variant=variant))
    result = invoke("run", path, "--store", tmp_path / "drbench.db")
    assert result.exit_code == 2 and fragment in result.output and not (tmp_path / "drbench.db").exists()


@pytest.mark.parametrize("dev, evaluated", [("beir/scifact", "beir/scifact/test"), ("holdout:0.1", "beir/scifact")])
def test_a_split_without_queries_or_qrels_is_refused_before_any_file(dev: str, evaluated: str, tmp_path: Path) -> None:
    # beir/scifact is the corpus alone: ir_datasets knows it has no qrels without reading an archive.
    path = tmp_path / "r.toml"
    path.write_text(HEAD.format(data=f'dev = "{dev}"', variant="").replace("beir/scifact/test", evaluated))
    for command in (["validate", path], ["run", path, "--store", tmp_path / "s.db", "--cache-dir", tmp_path / "cache"]):
        result = invoke(*command)
        assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
        assert '= "beir/scifact": collection \'beir/scifact\' has no qrels in ir_datasets' in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.toml"]


def test_a_holdout_of_an_evaluation_split_is_refused() -> None:
    text = HEAD.format(data='dev = "holdout:0.1"', variant="").replace('eval = ["beir/scifact/test"]',
                                                                     'eval = ["beir/scifact/train"]')
    with pytest.raises(RecipeError, match="also an evaluation split; evaluate on another split"):
        parse_recipe(text, "r.toml")


def test_chaining_on_a_sweep_that_selects_nothing_names_its_points() -> None:
    text = HEAD.format(data='select = "none"', variant='[variant.star.sweep]\nlr = [1e-5, 2e-5]\n'
                       '[variant.ad]\nkind = "adore"\nindex_from = "star"\n')
    with pytest.raises(RecipeError, match=r'is swept and select = "none" picks no point; name one of its points '
                                          r"\(star\[lr=1e-05\], star\[lr=2e-05\]\)"):
        parse_recipe(text, "r.toml")
    assert parse_recipe(text.replace('select = "none"', 'dev = "holdout:0.1"'), "r.toml").selects


def test_the_leaderboard_names_every_point_and_the_holdout(swept) -> None:
    folder, *_ = swept
    board = CliRunner().invoke(app, ["leaderboard", "--store", str(folder / "drbench.db"), "-c", DEV])
    assert board.exit_code == 0, board.output
    # rich would read "[lr=0.001]" and "[holdout:0.1]" as markup tags and drop them
    assert "star[lr=0.001]" in board.output and "star[lr=0.0001]" in board.output and DEV in board.output
