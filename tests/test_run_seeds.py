"""Several seeds: `[experiment] seeds` trains and evaluates every trained variant once per seed,
runs BM25 and zero-shot once, and the leaderboard, compare, check, plot and export read them.

One recipe (BM25, zero-shot, STAR and ADORE on STAR, seeds 13 and 14) runs once per module on
Cranfield with the tiny model; the tests read its store.
"""

from __future__ import annotations

import io
import json
import re
import sqlite3
import statistics
from contextlib import closing
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import RecipeError
from harness.pipeline import RunOptions, run_recipe
from harness.recipe import load_recipe, parse_recipe, run_count

RECIPE = """\
[experiment]
name = "seeds"
{seeds}
store = "{folder}/drbench.db"
cache_dir = "{cache}"

[model]
base = "{model}"
batch_size = 128

[data]
train = "cranfield"
eval = ["cranfield"]

[eval]
indexes = ["Flat"]
metrics = ["ndcg@10", "mrr@10"]
depth = 100

[train]
max_steps = 2
batch_size = 4
lr = 1e-3
warmup_steps = 1

[variant.bm25]
kind = "bm25"

[variant.zero-shot]
kind = "zero-shot"

[variant.star]
kind = "star"
negatives_depth = 20

[variant.adore]
kind = "adore"
index_from = "star"
"""


def write_recipe(folder: Path, model: Path, seeds: str, cache: Path | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "recipe.toml"
    path.write_text(RECIPE.format(folder=folder, model=model, seeds=seeds, cache=cache or folder / "cache"))
    return path


def run(recipe: Path, mirror: Path) -> list:
    return run_recipe(load_recipe(recipe), RunOptions(mirror=str(mirror)), Console(file=io.StringIO()))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, mirror: Path, tiny_model: Path) -> Path:
    folder = tmp_path_factory.mktemp("seeds")
    run(write_recipe(folder, tiny_model, "seeds = [13, 14]"), mirror)
    return folder


def rows(folder: Path, sql: str, *args: object) -> list[tuple]:
    with closing(sqlite3.connect(folder / "drbench.db")) as conn:
        return conn.execute(sql, args).fetchall()


def invoke(*args: object) -> object:
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})


def metric(folder: Path, variant: str, seed: int, name: str = "ndcg@10") -> float:
    [(value,)] = rows(folder, "SELECT value FROM metrics JOIN runs ON runs.id = run_id WHERE variant = ? "
                              "AND seed = ? AND metric = ?", variant, seed, name)
    return value


def test_trained_variants_run_once_per_seed_and_the_others_once(seeded: Path) -> None:
    stored = rows(seeded, "SELECT variant, seed FROM runs ORDER BY variant, seed")
    assert stored == [("adore", 13), ("adore", 14), ("bm25", 13), ("star", 13), ("star", 14), ("zero-shot", 13)]
    assert run_count(load_recipe(seeded / "recipe.toml")) == len(stored)


def test_each_seed_trains_its_own_model_and_log(seeded: Path) -> None:
    assert metric(seeded, "star", 13) != metric(seeded, "star", 14)
    logs = {seed: [loss for (loss,) in rows(seeded, "SELECT loss FROM training_log WHERE variant = 'star' AND "
                                                     "seed = ? ORDER BY step", seed)] for seed in (13, 14)}
    assert len(logs[13]) == len(logs[14]) == 2 and logs[13] != logs[14]
    # Each seed's log is linked to that seed's run.
    for seed in (13, 14):
        [(run_id,)] = rows(seeded, "SELECT id FROM runs WHERE variant = 'star' AND seed = ?", seed)
        assert {r for (r,) in rows(seeded, "SELECT run_id FROM training_log WHERE variant = 'star' AND seed = ?",
                                   seed)} == {run_id}


def test_a_chained_variant_trains_on_the_model_of_its_own_seed(seeded: Path) -> None:
    models = {(v, s): json.loads(m) for v, s, m in rows(seeded, "SELECT variant, seed, model FROM runs "
                                                                "WHERE variant IN ('star', 'adore')")}
    for seed in (13, 14):  # ADORE's document encoder is the STAR model of the same seed
        assert models[("adore", seed)]["fingerprint"] == models[("star", seed)]["fingerprint"]
    assert models[("star", 13)]["fingerprint"] != models[("star", 14)]["fingerprint"]


def test_the_first_seed_is_the_run_a_single_seed_recipe_makes(seeded: Path, tmp_path: Path, mirror: Path,
                                                               tiny_model: Path) -> None:
    single = tmp_path / "single"
    outcomes = run(write_recipe(single, tiny_model, "seed = 13", cache=seeded / "cache"), mirror)
    assert {o.seed for o in outcomes} == {13}
    for variant in ("bm25", "zero-shot", "star", "adore"):
        key = "SELECT run_key FROM runs WHERE variant = ? AND seed = 13"
        assert rows(single, key, variant) == rows(seeded, key, variant)
        assert metric(single, variant, 13) == metric(seeded, variant, 13)


def test_a_second_run_skips_every_variant_seed_run(seeded: Path, mirror: Path) -> None:
    outcomes = run(seeded / "recipe.toml", mirror)
    assert len(outcomes) == 6 and {o.status for o in outcomes} == {"skipped"}


def test_runs_of_seeds_the_recipe_no_longer_lists_are_removed(seeded: Path, tmp_path: Path, mirror: Path,
                                                               tiny_model: Path) -> None:
    import shutil

    folder = tmp_path / "fewer"
    recipe = write_recipe(folder, tiny_model, "seeds = [14]", cache=seeded / "cache")  # seed 14's models are cached
    shutil.copy(seeded / "drbench.db", folder / "drbench.db")
    run(recipe, mirror)
    assert rows(folder, "SELECT DISTINCT seed FROM runs") == [(14,)]  # BM25 and zero-shot now run with 14
    assert rows(folder, "SELECT DISTINCT seed FROM training_log") == [(14,)]
    board = json.loads(invoke("leaderboard", "--store", folder / "drbench.db", "--format", "json").output)
    assert {row["variant"]: row["seeds"] for row in board} == {v: [14] for v in ("bm25", "zero-shot", "star", "adore")}


def test_leaderboard_json_has_the_mean_its_seeds_and_their_sd(seeded: Path) -> None:
    result = invoke("leaderboard", "--store", seeded / "drbench.db", "--format", "json")
    assert result.exit_code == 0, result.output
    board = {row["variant"]: row for row in json.loads(result.output)}
    star = [metric(seeded, "star", s) for s in (13, 14)]
    assert board["star"]["seeds"] == [13, 14]
    assert board["star"]["metrics"]["ndcg@10"] == pytest.approx(statistics.fmean(star), abs=1e-12)
    assert board["star"]["sd"]["ndcg@10"] == pytest.approx(statistics.stdev(star), abs=1e-12)
    assert board["bm25"]["seeds"] == [13] and board["bm25"]["sd"] == {"ndcg@10": 0.0, "mrr@10": 0.0}


def test_leaderboard_table_shows_the_spread_and_seeds_one_row_per_seed(seeded: Path) -> None:
    table = invoke("leaderboard", "--store", seeded / "drbench.db")
    assert table.exit_code == 0 and "±" in table.output and "standard deviation over seeds" in table.output
    star = next(line for line in table.output.splitlines() if " star " in line)
    assert "±" in star and " 2 " in star  # mean ± sd, and 2 seeds
    per_seed = invoke("leaderboard", "--store", seeded / "drbench.db", "--seeds")
    assert per_seed.exit_code == 0 and "±" not in per_seed.output
    assert len([line for line in per_seed.output.splitlines() if " star " in line]) == 2


def test_compare_pairs_per_query_means_over_seeds_and_counts_agreeing_seeds(seeded: Path) -> None:
    result = invoke("compare", "--store", seeded / "drbench.db", "--format", "json", "--metrics", "ndcg@10")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    systems = {s["label"]: s for s in report["collections"][0]["systems"]}
    assert systems["star"]["seeds"] == [13, 14] and systems["bm25"]["seeds"] == [13]
    assert systems["star"]["means"]["ndcg@10"] == pytest.approx(
        statistics.fmean(metric(seeded, "star", s) for s in (13, 14)), abs=1e-9)
    pairs = {(c["system"], c["reference"]): c for c in report["comparisons"]}
    assert pairs[("star", "bm25")]["seed_pairs"] == 2  # each STAR seed against BM25's one run
    assert pairs[("adore", "star")]["seed_pairs"] == 2  # paired by seed: 13 with 13, 14 with 14
    for c in pairs.values():
        assert 0 <= c["seeds_agree"] <= c["seed_pairs"]
    assert "mean over its seeds" in report["settings"]["legend"]
    table = invoke("compare", "--store", seeded / "drbench.db", "--metrics", "ndcg@10")
    assert table.exit_code == 0 and "seeds" in table.output and "/2 " in table.output


def test_check_gates_on_the_mean_over_seeds_or_on_one_seed(seeded: Path, tmp_path: Path) -> None:
    mean = statistics.fmean(metric(seeded, "star", s) for s in (13, 14))
    expect = seeded / "expect.toml"
    rows_ = ('[[expect]]\nvariant = "star"\ncollection = "cranfield"\nindex = "Flat"\nmetric = "ndcg@10"\n'
             f'value = {mean!r}\ntolerance = 0.0\n'
             '[[expect]]\nvariant = "star"\ncollection = "cranfield"\nindex = "Flat"\nmetric = "ndcg@10"\n'
             f'value = {metric(seeded, "star", 14)!r}\nseed = 14\ntolerance = 0.0\n')
    expect.write_text('recipe = "recipe.toml"\n' + rows_)
    result = invoke("check", expect)
    assert result.exit_code == 0, result.output
    markdown = invoke("check", expect, "--format", "markdown").output
    assert "| star | mean of 13, 14 | cranfield |" in markdown and "| star | 14 | cranfield |" in markdown
    expect.write_text('recipe = "recipe.toml"\n' + rows_.replace("seed = 14", "seed = 15"))
    bad = invoke("check", expect)
    assert bad.exit_code == 2 and "seed = 15" in bad.output and "does not run with this seed" in bad.output


def test_export_run_asks_which_seed(seeded: Path, tmp_path: Path) -> None:
    args = ("export-run", "star", "cranfield", "--store", seeded / "drbench.db", "-o", tmp_path / "star.trec")
    ambiguous = invoke(*args)
    assert ambiguous.exit_code == 2 and "seeds 13, 14; pass --seed" in ambiguous.output
    assert invoke(*args, "--seed", 14).exit_code == 0 and (tmp_path / "star.trec").stat().st_size > 0


def test_plot_draws_one_training_curve_per_seed(seeded: Path, tmp_path: Path) -> None:
    from harness.store import open_store_readonly
    from leaderboard.plot import plot_store

    written, _ = plot_store(open_store_readonly(seeded / "drbench.db"), tmp_path / "plots")
    assert {p.name for p in written} >= {"seeds-training.png", "cranfield-metrics.png"}


HEAD = '[experiment]\nname = "x"\n{}\n[data]\neval = ["cranfield"]\n[variant.bm25]\nkind = "bm25"\n'


@pytest.mark.parametrize("line, fragment", [
    ("seeds = [13, -1]", "[experiment] seeds = [13, -1]: -1 is below the minimum 0"),
    ("seeds = [13, 13]", "13 is listed twice; seeds must be distinct"),
    ("seeds = []", "must not be empty"),
    ('seeds = [13, "14"]', "expected a list of integers"),
    ("seeds = [1.5]", "expected a list of integers"),
    ("seed = 1\nseeds = [1, 2]", "give seed or seeds, not both"),
    ("seed = -5", "[experiment] seed = -5: must be >= 0"),
])
def test_bad_seeds_get_one_line(line: str, fragment: str, tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=None) as err:
        parse_recipe(HEAD.format(line), "r.toml")
    assert fragment in str(err.value) and "\n" not in str(err.value)
    path = tmp_path / "r.toml"
    path.write_text(HEAD.format(line))
    result = invoke("validate", path, "--offline")
    assert result.exit_code == 2 and fragment in result.output


def test_validate_says_how_many_runs_the_seeds_make(seeded: Path) -> None:
    result = invoke("validate", seeded / "recipe.toml", "--offline")
    assert result.exit_code == 0, result.output
    assert "trained with seeds 13, 14: 6 runs" in result.output
    recipe = parse_recipe(HEAD.format("seeds = [5, 3]"), "r.toml")
    assert recipe.seeds == (5, 3) and recipe.experiment.seed == 5


def test_seeds_option_redoes_one_seed_and_keeps_the_others_runs(seeded: Path, tmp_path: Path, mirror: Path,
                                                                 tiny_model: Path) -> None:
    import shutil

    folder = tmp_path / "redo"
    recipe = write_recipe(folder, tiny_model, "seeds = [13, 14]", cache=seeded / "cache")
    shutil.copy(seeded / "drbench.db", folder / "drbench.db")
    before = dict(rows(folder, "SELECT variant || '@' || seed, id FROM runs"))
    planned = invoke("plan", recipe, "--seeds", "14", "--format", "json")
    assert planned.exit_code == 0, planned.output
    assert sorted((r["variant"], r["seed"]) for r in json.loads(planned.stdout)["runs"]) == [
        ("adore", 14), ("bm25", 13), ("star", 14), ("zero-shot", 13)]  # BM25 and zero-shot as the whole recipe
    result = invoke("run", recipe, "--mirror", mirror, "--seeds", "14", "--force")
    assert result.exit_code == 0, result.output
    after = dict(rows(folder, "SELECT variant || '@' || seed, id FROM runs"))
    assert set(after) == set(before)  # no seed's runs went
    assert all(after[run] == before[run] for run in ("star@13", "adore@13"))  # seed 13's untouched
    assert all(after[run] != before[run] for run in ("star@14", "adore@14", "bm25@13", "zero-shot@13"))  # re-run
    assert rows(folder, "SELECT DISTINCT seed FROM training_log ORDER BY seed") == [(13,), (14,)]
    for seed in (13, 14):  # the cached models: the same numbers
        assert metric(folder, "star", seed) == metric(seeded, "star", seed)


@pytest.mark.parametrize(("seeds", "message"), [
    ("16", r"--seeds: .*recipe\.toml does not list seed 16 \(its seeds: 13, 14\); add it to \[experiment\] seeds"),
    ("14,x", r"--seeds '14,x': write the seeds as integers separated by commas, e.g\. --seeds 14,15"),
    ("14,14", r"--seeds 14,14: a seed is listed twice"),
])
def test_seeds_option_refuses_what_the_recipe_does_not_run_in_one_line(tmp_path: Path, tiny_model: Path,
                                                                       seeds: str, message: str) -> None:
    recipe = write_recipe(tmp_path, tiny_model, "seeds = [13, 14]")
    for command in ("run", "plan"):
        result = invoke(command, recipe, "--seeds", seeds)
        assert result.exit_code == 2, result.output
        [line] = [line for line in result.output.strip().splitlines() if not line.startswith("warning:")]
        assert re.search(message, line), line
    assert not (tmp_path / "drbench.db").exists() and not (tmp_path / "cache").exists()


def test_seeds_option_refuses_a_recipe_that_chooses_on_dev_over_its_seeds() -> None:
    from harness.recipe.seed_subset import only_seeds

    swept = parse_recipe('[experiment]\nname="x"\nseeds=[13, 14]\n[data]\ntrain="beir/scifact/train"\n'
                         'eval=["beir/scifact/test"]\ndev="holdout:0.1"\n[variant.star]\nkind="star"\n'
                         '[variant.star.sweep]\nlr=[1e-3, 2e-3]\n', "swept.toml")
    with pytest.raises(RecipeError, match=r"^--seeds: swept\.toml chooses sweep points on dev over all its seeds "
                                          r"\(13, 14\); run it without --seeds$"):
        only_seeds(swept, (14,))
    every_point = parse_recipe(swept.text.replace("[variant.star]", "select = \"none\"\n[variant.star]"), "all.toml")
    assert only_seeds(every_point, (14,)).seeds == (14,)  # every point is reported: nothing to choose over seeds


def test_seeds_option_reaches_the_processes_nproc_launches() -> None:
    from harness.cli.recipes import _passed_on

    args = _passed_on(RunOptions(mirror="m", seeds=(14, 15), shard=(1, 2), threads=1, force=True))
    assert args == ["--mirror", "m", "--shard", "1/2", "--seeds", "14,15", "--threads", "1", "--force"]
