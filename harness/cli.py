"""`drbench` command line. The only place errors become messages and exit codes."""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from harness.errors import DrbenchError

app = typer.Typer(help="Train, evaluate and compare dense retrievers from TOML recipes.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
err = Console(stderr=True)
# Piped or captured output (CI logs, files) gets room for wide leaderboards instead of 80 columns.
out = Console() if Console().is_terminal else Console(width=200)

StoreOpt = typer.Option(None, "--store", envvar="DRBENCH_STORE", help="Results store (default: drbench.db).")


class Format(str, Enum):
    table = "table"
    json = "json"


def _fail(exc: DrbenchError | str, code: int = 2) -> typer.Exit:
    # escape: messages name recipe tables like "[model]", which rich would take for markup
    err.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _open(store: Optional[str]):
    from harness.store import open_store

    return open_store(store or "drbench.db", create=False)


@app.command()
def validate(recipe: Optional[Path] = typer.Argument(None, help="Recipe file to check."),
             explain: bool = typer.Option(False, "--explain", help="Print every recipe key and exit."),
             offline: bool = typer.Option(False, "--offline",
                                          help="Only check the recipe's structure, not ids, models, indexes.")) -> None:
    """Check a recipe without running it (exit 0, or 2 with a one-line error)."""
    from harness.recipe import load_recipe

    if explain:
        from harness.recipe.explain import explain_markdown

        # soft_wrap: a table row wrapped at the terminal width is no longer markdown
        out.print(explain_markdown(), markup=False, highlight=False, soft_wrap=True)
        return
    if recipe is None:
        raise _fail("give a recipe file, or --explain for the reference")
    try:
        parsed = load_recipe(recipe)
        if not offline:
            from harness.recipe.checks import check_resources

            check_resources(parsed)
    except DrbenchError as exc:
        raise _fail(exc) from None
    kinds = ", ".join(f"{v.name} ({v.kind})" for v in parsed.variants)
    out.print(f"{recipe}: ok — {len(parsed.variants)} variants [{kinds}] x "
              f"{len(parsed.data.eval)} collections x {len(parsed.eval.indexes)} indexes", highlight=False,
              markup=False, soft_wrap=True)


@app.command()
def run(recipe: Path = typer.Argument(..., help="Recipe file."),
        mirror: Optional[str] = typer.Option(None, "--mirror", help="Offline ir_datasets mirror folder "
                                             "(also $DRBENCH_MIRROR)."),
        force: bool = typer.Option(False, "--force", help="Re-run runs already in the store."),
        store: Optional[str] = typer.Option(None, "--store", help="Results store [default: the recipe's]."),
        cache_dir: Optional[str] = typer.Option(None, "--cache-dir", help="Embedding cache folder.")) -> None:
    """Train and evaluate every variant of RECIPE, store the results, print the leaderboard."""
    from harness.pipeline import RunOptions, run_recipe, store_path
    from harness.recipe import load_recipe

    try:
        parsed = load_recipe(recipe)
        options = RunOptions(mirror=mirror, force=force, store=store, cache_dir=cache_dir)
        run_recipe(parsed, options, err)
        _print_leaderboard(str(store_path(parsed, options)), parsed.experiment.name, None, Format.table)
    except DrbenchError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:
        raise _fail("interrupted; completed runs are stored, the rest re-run next time", 130) from None


@app.command()
def leaderboard(store: Optional[str] = StoreOpt,
                experiment: Optional[str] = typer.Option(None, "--experiment", "-e", help="Only this experiment."),
                collection: Optional[str] = typer.Option(None, "--collection", "-c", help="Only this collection."),
                format: Format = typer.Option(Format.table, "--format", help="table or json.")) -> None:
    """Print stored results: one table per collection, best value per metric marked."""
    try:
        _print_leaderboard(store, experiment, collection, format)
    except DrbenchError as exc:
        raise _fail(exc) from None


def _print_leaderboard(store: Optional[str], experiment: Optional[str], collection: Optional[str],
                       format: Format) -> None:
    from leaderboard import leaderboard_rows, render, rows_as_json

    rows = leaderboard_rows(_open(store), experiment=experiment, collection=collection)
    if format is Format.json:
        print(json.dumps(rows_as_json(rows), indent=2))
    else:
        render(rows, out)


@app.command("ls")
def ls(store: Optional[str] = StoreOpt) -> None:
    """List experiments and their runs."""
    from rich.table import Table

    from harness.store import list_experiments, list_runs

    try:
        db = _open(store)
        experiments = list_experiments(db)
        runs = list_runs(db)
    except DrbenchError as exc:
        raise _fail(exc) from None
    table = Table(title="experiments")
    for column in ("experiment", "runs", "recipe", "git", "seed", "started", "finished"):
        table.add_column(column)
    for exp in experiments:
        count = sum(1 for r in runs if r["experiment"] == exp["name"])
        commit = (exp.get("git_commit") or "-")[:10] + ("+dirty" if exp.get("git_dirty") else "")
        table.add_row(exp["name"], str(count), exp.get("recipe_path") or "-", commit, str(exp.get("seed")),
                      exp.get("started_at") or "-", exp.get("finished_at") or "-")
    out.print(table)
    runs_table = Table(title="runs")
    for column in ("id", "experiment", "variant", "kind", "collection", "index", "queries", "finished"):
        runs_table.add_column(column)
    for r in runs:
        runs_table.add_row(str(r["id"]), r["experiment"], r["variant"], r["kind"], r["collection"],
                           r["index_factory"], str(r.get("n_queries")), r.get("finished_at") or "-")
    out.print(runs_table)


@app.command("export-run")
def export_run(variant: str = typer.Argument(..., help="Variant name."),
               collection: str = typer.Argument(..., help="ir_datasets id of the evaluated collection."),
               output: Path = typer.Option(..., "--output", "-o", help="TREC run file to write."),
               index: Optional[str] = typer.Option(None, "--index", help="Index factory string (if several)."),
               experiment: Optional[str] = typer.Option(None, "--experiment", "-e", help="Experiment (if several)."),
               tag: Optional[str] = typer.Option(None, "--tag", help="Run tag [default: variant]."),
               store: Optional[str] = StoreOpt) -> None:
    """Write a stored run as a TREC run file (qid Q0 docid rank score tag)."""
    from harness.store import find_run, run_results, write_trec_run

    try:
        db = _open(store)
        found = find_run(db, variant, collection, index_factory=index, experiment=experiment)
        results = run_results(db, found["id"])
        write_trec_run(results, output, tag or variant.replace(" ", "_"))
    except DrbenchError as exc:
        raise _fail(exc) from None
    count = sum(len(v) for v in results.values())
    err.print(f"wrote {count:,} lines for {len(results):,} queries to {output}", highlight=False)


# compare, plot and check live in harness/cli_report.py; importing it registers them on `app`.
import harness.cli_report  # noqa: E402,F401


def main() -> None:  # pragma: no cover - console-script shim for `python -m harness.cli`
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
