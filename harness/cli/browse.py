"""`drbench leaderboard`, `ls` and `export-run`: read the results store, never write it.

Only SQLite and rich here, so browsing results works on a machine without torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from harness.cli.common import (DEFAULT_STORE, Format, StoreOpt, counted, err, fail, open_results, out,
                                print_leaderboard)
from harness.cli.output import check_output
from harness.errors import DrbenchError

if TYPE_CHECKING:
    from rich.table import Table


def leaderboard(store: str | None = StoreOpt,
                experiment: str | None = typer.Option(None, "--experiment", "-e", help="Only this experiment."),
                collection: str | None = typer.Option(None, "--collection", "-c", help="Only this collection."),
                format: Format = typer.Option(Format.table, "--format", help="table or json."),
                seeds: bool = typer.Option(False, "--seeds", help="One row per seed instead of the mean and "
                                                                  "standard deviation over seeds.")) -> None:
    """Print stored results: one table per collection, best value per metric marked."""
    try:
        print_leaderboard(store, experiment, collection, format, per_seed=seeds)
    except DrbenchError as exc:
        raise fail(exc) from None


def ls(store: str | None = StoreOpt) -> None:
    """List experiments and their runs."""
    from harness.store import list_experiments, list_runs

    try:
        db = open_results(store)
        experiments = list_experiments(db)
        runs = list_runs(db)
    except DrbenchError as exc:
        raise fail(exc) from None
    out.print(_experiments_table(experiments, runs))
    out.print(_runs_table(runs))


def _experiments_table(experiments: list[dict[str, Any]], runs: list[dict[str, Any]]) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="experiments")
    for column in ("experiment", "runs", "recipe", "git", "seed", "started", "finished"):
        table.add_column(column)
    for exp in experiments:
        count = sum(1 for r in runs if r["experiment"] == exp["name"])
        commit = (exp.get("git_commit") or "-")[:10] + ("+dirty" if exp.get("git_dirty") else "")
        # Text, not markup: names and paths hold brackets (`x[1]`) that rich would take for markup
        table.add_row(*map(Text, (exp["name"], str(count), exp.get("recipe_path") or "-", commit, str(exp.get("seed")),
                                  exp.get("started_at") or "-", exp.get("finished_at") or "-")))
    return table


def _runs_table(runs: list[dict[str, Any]]) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="runs")
    for column in ("id", "experiment", "variant", "seed", "kind", "collection", "index", "queries", "finished"):
        table.add_column(column)
    for r in runs:
        # Text, not markup: `star[lr=2e-05]` and `cranfield[holdout:0.2]` are names other commands take whole
        table.add_row(*map(Text, (str(r["id"]), r["experiment"], r["variant"], str(r.get("seed")), r["kind"],
                                  r["collection"], r["index_factory"], str(r.get("n_queries")),
                                  r.get("finished_at") or "-")))
    return table


def export_run(variant: str = typer.Argument(..., help="Variant name."),
               collection: str = typer.Argument(..., help="ir_datasets id of the evaluated collection."),
               output: Path = typer.Option(..., "--output", "-o", help="TREC run file to write."),
               index: str | None = typer.Option(None, "--index", help="Index factory string (if several)."),
               experiment: str | None = typer.Option(None, "--experiment", "-e", help="Experiment (if several)."),
               seed: int | None = typer.Option(None, "--seed", help="Seed of the run (if several)."),
               tag: str | None = typer.Option(None, "--tag", help="Run tag (default: the variant name)."),
               store: str | None = StoreOpt) -> None:
    """Write a stored run as a TREC run file (qid Q0 docid rank score tag)."""
    from harness.store import find_run, run_results, write_trec_run

    try:
        check_output(output, "-o", store or DEFAULT_STORE, example="run.trec")
        db = open_results(store)
        found = find_run(db, variant, collection, index_factory=index, experiment=experiment, seed=seed)
        results = run_results(db, found["id"])
        # TREC run files split on whitespace, so a tag must be one token
        write_trec_run(results, output, tag or variant.replace(" ", "_"))
    except DrbenchError as exc:
        raise fail(exc) from None
    count = sum(len(v) for v in results.values())
    err.print(f"wrote {counted(count, 'line')} for {counted(len(results), 'query', 'queries')} to {output}",
              highlight=False)
