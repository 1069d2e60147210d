"""Training cost (issue 22 §6): each trained model's cost along what it builds on, every shared
part counted once, stored with its runs outside every key, shown by the leaderboard, its JSON
and the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.data.collection import Collection
from harness.pipeline import RunOptions, run_recipe
from harness.recipe import parse_recipe
from harness.store import list_runs, open_store
from leaderboard import leaderboard_rows
from leaderboard.plot import store_plots
from test_ance import VARIANTS as ANCE_VARIANTS

# Fixtures (cranfield, one_torch_thread, ...) are used by name, hence the noqa.
from train_helpers import one_torch_thread, cranfield, use_cranfield, quiet_console, recipe_text  # noqa: F401

# zero-shot, ANCE from its static warm-up (test_ance.py's recipe), STAR and STAR+ADORE on it
LENGTHS = "query_max_length = 16\ndoc_max_length = 32\nbatch_size = 4\n"
VARIANTS = f"""
[variant.zs]
kind = "zero-shot"
{ANCE_VARIANTS}
[variant.star]
kind = "star"
negatives_from = "base"
negatives_depth = 20
max_steps = 2
{LENGTHS}
[variant.sa]
kind = "star+adore"
star = "star"
max_steps = 2
{LENGTHS}"""


def test_costs_add_up_along_each_chain_and_stay_out_of_keys(tiny_model: Path, tmp_path: Path,
                                                            use_cranfield: Collection, one_torch_thread) -> None:
    recipe_file = tmp_path / "recipe.toml"
    recipe_file.write_text(recipe_text(tmp_path, tiny_model, VARIANTS, name="cost"))
    recipe = parse_recipe(recipe_file.read_text(), recipe_file)
    assert {o.status for o in run_recipe(recipe, RunOptions(device="cpu"), quiet_console())} == {"done"}
    db = open_store(tmp_path / "drbench.db")
    runs = {run["variant"]: run for run in list_runs(db)}
    costs = {name: (run["model"] or {}).get("trained", {}).get("cost") for name, run in runs.items()}
    docs = len(use_cranfield.doc_ids)
    assert costs["zs"] is None  # nothing trained

    def train(name: str) -> str:
        return f"train {runs[name]['model']['trained']['key']}"

    warm, anc, star, sa = (costs[name]["parts"] for name in ("warm", "anc", "star", "sa"))
    # static: BM25 mines (no encode), 2 steps of 4 queries
    assert warm == {train("warm"): [0, 8]}
    # ance: its warm-up's part, and its own: 3 steps of 4 queries, a corpus per refresh (steps 0 and 2)
    assert anc == {train("warm"): [0, 8], train("anc"): [2 * docs, 12]}
    # star: the base model's corpus encode (mining), its own training
    [star_encode] = [p for p in star if p.startswith("encode ")]
    assert star == {star_encode: [docs, 0], train("star"): [0, 8]}
    # star+adore: STAR's parts once (its training is both its init and its documents' model), STAR's
    # corpus encode (the frozen index), its own training
    [sa_encode] = [p for p in sa if p.startswith("encode ") and p not in star]
    assert sa == {**star, sa_encode: [docs, 0], train("sa"): [0, 8]}
    assert costs["sa"]["units"] == 2 * docs + 16 and costs["sa"]["documents"] == 2 * docs
    # seconds: the run's timings, the trainings along its chain
    timings = {name: run["timings"] for name, run in runs.items()}
    assert timings["sa"]["train_chain"] == pytest.approx(timings["star"]["train"] + timings["sa"]["train"])
    assert timings["anc"]["train_chain"] == pytest.approx(timings["warm"]["train"] + timings["anc"]["train"])
    assert "train_chain" not in timings["zs"]

    # Out of every key: a rerun finds every run stored, costs and all.
    assert {o.status for o in run_recipe(recipe, RunOptions(device="cpu"), quiet_console())} == {"skipped"}
    rows = {row.variant: row for row in leaderboard_rows(db, experiment="cost")}
    assert rows["zs"].cost is None and rows["sa"].cost["units"] == costs["sa"]["units"]
    assert rows["sa"].cost["seconds"] == pytest.approx(timings["sa"]["train_chain"])
    assert rows["sa"].cost_label.endswith(f", {costs['sa']['units']:,}")

    result = CliRunner().invoke(app, ["leaderboard", "--store", str(tmp_path / "drbench.db"), "--format", "json"])
    assert result.exit_code == 0, result.output
    by_variant = {row["variant"]: row for row in json.loads(result.stdout)}
    assert by_variant["anc"]["cost"]["documents"] == 2 * docs and by_variant["zs"]["cost"] is None
    table = CliRunner().invoke(app, ["leaderboard", "--store", str(tmp_path / "drbench.db")])
    assert "cost (time, units)" in table.output

    # `drbench plot` (and the report): quality against cost, a dot per trained variant's seed at its units
    plots, _ = store_plots(db, experiments=["cost"])
    [cost_plot] = [p for p in plots if p.what == "cost"]
    units_axes = cost_plot.figure.axes[0]
    drawn = {tuple(np.round(point, 6)) for c in units_axes.collections for point in c.get_offsets()}
    quality = {row.variant: row.metrics["mrr@10"] for row in leaderboard_rows(db, experiment="cost")}
    for name in ("warm", "anc", "star", "sa"):
        assert (round(costs[name]["units"], 6), round(quality[name], 6)) in drawn
    assert [line.get_linestyle() for line in units_axes.lines] == ["--"]  # zero-shot: no cost, a reference line


def test_the_plan_counts_the_corpus_encodes_ance_makes_as_it_trains(tiny_model: Path, tmp_path: Path) -> None:
    recipe_file = tmp_path / "recipe.toml"
    recipe_file.write_text(recipe_text(tmp_path, tiny_model, VARIANTS, name="cost"))
    result = CliRunner().invoke(app, ["plan", str(recipe_file), "--format", "json"])
    assert result.exit_code == 0, result.output
    docs = {run["variant"]: run["cost"]["docs"] for run in json.loads(result.stdout)["runs"]}
    # each shared tower encodes the evaluation corpus once; ANCE also refreshes twice (steps 0 and 2 of 3)
    assert docs["anc"] == 3 * docs["warm"] and docs["warm"] > 0
