"""`drbench check` with several seeds, on a hand-built store: a trained variant is checked on the
mean over the recipe's seeds (every one must be stored), `seed = N` checks that seed's run alone,
and BM25 is checked on its one run (the first seed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.store import open_store
from store_helpers import add_run

RECIPE = """\
[experiment]
name = "exp"
seeds = [13, 14, 15]
[data]
train = "cranfield"
eval = ["toy"]
[eval]
indexes = ["Flat"]
metrics = ["ndcg@10"]
[variant.bm25]
kind = "bm25"
[variant.star]
kind = "star"
"""
ROW = """
[[expect]]
variant = "{variant}"
collection = "toy"
index = "{index}"
metric = "ndcg@10"
value = {value}
tolerance = 0.0
{extra}"""
SEED_MEANS = {14: 0.1, 13: 0.5, 15: 0.45}  # mean 0.35


def check(tmp_path: Path, *rows: str, seeds: dict[int, float] = SEED_MEANS) -> tuple[int, str]:
    store = tmp_path / "s.db"
    db = open_store(store)
    add_run(db, "bm25", {"ndcg@10": [0.2, 0.2]}, kind="bm25", index="bm25")
    for seed, mean in seeds.items():
        add_run(db, "star", {"ndcg@10": [mean, mean]}, seed=seed)
    db.close()
    (tmp_path / "recipe.toml").write_text(RECIPE)
    expect = tmp_path / "expect.toml"
    expect.write_text('recipe = "recipe.toml"\n' + "".join(rows))
    result = CliRunner().invoke(app, ["check", str(expect), "--store", str(store), "--format", "markdown"],
                                env={"COLUMNS": "250"})
    return result.exit_code, result.output


def row(variant: str, value: float, index: str = "Flat", extra: str = "") -> str:
    return ROW.format(variant=variant, value=value, index=index, extra=extra)


def test_a_trained_variant_is_checked_on_the_mean_over_its_seeds(tmp_path: Path) -> None:
    code, output = check(tmp_path, row("star", 0.35), row("bm25", 0.2, "bm25"))
    assert code == 0, output
    assert "mean of 13, 14, 15" in output and "0.3500" in output


@pytest.mark.parametrize("value", [0.5, 0.1])  # the first seed's, the first-stored seed's
def test_one_seeds_value_is_not_the_mean(tmp_path: Path, value: float) -> None:
    code, output = check(tmp_path, row("star", value))
    assert code == 1 and "FAIL" in output, output


def test_seed_n_checks_that_seeds_run_alone(tmp_path: Path) -> None:
    code, output = check(tmp_path, row("star", 0.1, extra="seed = 14\n"))
    assert code == 0, output
    code, output = check(tmp_path / "b", row("star", 0.35, extra="seed = 14\n"))
    assert code == 1, output


def test_a_missing_seed_is_missing_not_a_mean_over_fewer(tmp_path: Path) -> None:
    code, output = check(tmp_path, row("star", 0.3), seeds={13: 0.5, 14: 0.1})  # the mean of two is 0.3
    assert code == 1 and "missing" in output, output
