"""`drbench compare`, `plot` and `check`: the commands that read the store to judge results.

They import torch only on `check --run`; everything else reads SQLite.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from harness.cli.common import (DEFAULT_STORE, INTERRUPTED, CacheDirOpt, DeviceOpt, ForceOpt, MirrorOpt,
                                PrecisionOpt, RecipeStoreOpt, StoreOpt, err, fail, open_results, out, run_options)
from harness.cli.output import check_output, check_output_folder
from harness.errors import DrbenchError


class CompareFormat(str, Enum):
    """Where a comparison goes: a terminal table, or a paper/spreadsheet/script format."""

    table = "table"
    markdown = "markdown"
    latex = "latex"
    csv = "csv"
    json = "json"


class CheckFormat(str, Enum):
    """How `check` prints its rows: a terminal table, or markdown for a CI job summary."""

    table = "table"
    markdown = "markdown"


class StatTest(str, Enum):
    """Paired tests `compare` offers; an Enum so typer rejects a typo with the allowed values."""

    student = "student"
    fisher = "fisher"


class Correction(str, Enum):
    """Multiple-comparison corrections `compare` offers."""

    holm = "holm"
    bonferroni = "bonferroni"
    none = "none"


def _split_metrics(metrics: str | None) -> tuple[str, ...]:
    return tuple(m.strip() for m in metrics.split(",") if m.strip()) if metrics else ()


def compare(store: str | None = StoreOpt,
            experiment: list[str] | None = typer.Option(None, "--experiment", "-e",
                                                        help="Experiment(s) to compare; repeat for several."),
            collection: str | None = typer.Option(None, "--collection", "-c", help="Only this collection."),
            index: list[str] | None = typer.Option(None, "--index", help="Only these indexes; repeatable."),
            baseline: str | None = typer.Option(None, "--baseline", "-b",
                                                help="Variant, experiment/variant or variant@index every run is "
                                                     "compared with (default: all pairs)."),
            metrics: str | None = typer.Option(None, "--metrics", "-m",
                                               help="Comma-separated metrics (default: all stored)."),
            test: StatTest = typer.Option(StatTest.student, "--test", help="Paired significance test."),
            permutations: int = typer.Option(1000, "--permutations", help="Fisher randomization permutations."),
            seed: int = typer.Option(42, "--seed", help="Seed of the permutations and bootstrap resamples."),
            correction: Correction = typer.Option(Correction.holm, "--correction",
                                                  help="Multiple-comparison correction over all comparisons."),
            alpha: float = typer.Option(0.05, "--alpha", help="Significance level after correction."),
            bootstrap: int = typer.Option(1000, "--bootstrap", help="Paired-bootstrap resamples for the CI."),
            format: CompareFormat = typer.Option(CompareFormat.table, "--format",
                                                 help="table, markdown, latex, csv or json."),
            output: Path | None = typer.Option(None, "--output", "-o", help="Write to FILE instead of stdout.")
            ) -> None:
    """Paired significance tests between stored runs of one collection, corrected for multiple comparisons."""
    from leaderboard.compare import CompareSettings, compare_runs
    from leaderboard.compare_report import format_result, render_table

    try:
        if output is not None:
            check_output(output, "-o", store or DEFAULT_STORE, example=f"compare.{format.value}")
        settings = CompareSettings(baseline=baseline, metrics=_split_metrics(metrics), test=test.value,
                                   correction=correction.value, alpha=alpha, permutations=permutations,
                                   bootstrap=bootstrap, seed=seed)
        result = compare_runs(open_results(store), settings, experiments=experiment or None,
                              collection=collection, indexes=index or None)
    except DrbenchError as exc:
        raise fail(exc) from None
    if format is CompareFormat.table:
        if output is None:
            render_table(result, out)
            return
        with output.open("w", encoding="utf-8") as handle:
            render_table(result, Console(file=handle, width=160, color_system=None))
    elif output is None:
        print(format_result(result, format.value), end="")
        return
    else:
        output.write_text(format_result(result, format.value), encoding="utf-8")
    err.print(f"wrote {output}", highlight=False)


def plot(store: str | None = StoreOpt,
         experiment: list[str] | None = typer.Option(None, "--experiment", "-e", help="Only these; repeatable."),
         collection: str | None = typer.Option(None, "--collection", "-c", help="Only this collection."),
         metrics: str | None = typer.Option(None, "--metrics", "-m",
                                            help="Comma-separated metrics (default: all stored)."),
         out_dir: Path = typer.Option(Path("plots"), "--out", help="Folder for the PNG files."),
         seed: int = typer.Option(42, "--seed", help="Seed of the bootstrap CIs.")) -> None:
    """Training curves, metric bars with 95% CIs, and quality vs bytes per document, as PNGs."""
    from leaderboard.plot import plot_store

    try:
        check_output_folder(out_dir, "--out", store or DEFAULT_STORE)
        written, skipped = plot_store(open_results(store), out_dir, experiments=experiment or None,
                                      collection=collection, metrics=list(_split_metrics(metrics)) or None,
                                      seed=seed)
    except DrbenchError as exc:
        raise fail(exc) from None
    for reason in skipped:
        err.print(f"[dim]{escape(reason)}[/dim]", highlight=False, soft_wrap=True)
    for path in written:
        out.print(str(path), highlight=False, markup=False, soft_wrap=True)


def check(expectations: Path = typer.Argument(..., help="Expectations TOML (recipe + expected values)."),
          run_first: bool = typer.Option(False, "--run", help="Run the recipe first (stored runs are reused)."),
          mirror: str | None = MirrorOpt, force: bool = ForceOpt, store: str | None = RecipeStoreOpt,
          cache_dir: str | None = CacheDirOpt, device: str | None = DeviceOpt, precision: str | None = PrecisionOpt,
          format: CheckFormat = typer.Option(CheckFormat.table, "--format",
                                             help="table, or markdown (e.g. for $GITHUB_STEP_SUMMARY)."),
          junit: Path | None = typer.Option(None, "--junit", help="Also write JUnit XML to FILE: one test case "
                                            "per expected value, FAIL rows as failures.")
          ) -> None:
    """Regression gate: stored metrics against expected values (exit 1 on any FAIL).

    --mirror, --force, --cache-dir, --device and --precision act with --run, as in `drbench run`.
    """
    from leaderboard.check import check as check_rows, load_expectations, render_check
    from harness.store import write_text_atomic
    from leaderboard.check_report import to_junit, to_markdown

    try:
        if junit is not None:  # the folder and permissions before any work; the store once it is known
            check_output(junit, "--junit", None, example="check.xml")
        expected = load_expectations(expectations)
        path = store or expected.recipe.experiment.store
        if junit is not None:
            check_output(junit, "--junit", path, example="check.xml")
        if run_first:
            from harness.pipeline import run_recipe  # the only path that imports torch

            run_recipe(expected.recipe, run_options(mirror, force, path, cache_dir, device, precision), err)
        rows = check_rows(open_results(path), expected)
    except DrbenchError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        raise fail(INTERRUPTED, 130) from None
    if format is CheckFormat.markdown:
        print(to_markdown(rows), end="")
    else:
        render_check(rows, out)
    if junit is not None:
        write_text_atomic(junit, [to_junit(rows, f"drbench check {expectations.name}")])
        err.print(f"wrote {junit}", highlight=False)
    # exit 1, not 2: a FAIL is a regression in the numbers, not a usage or config error
    if any(row.status == "FAIL" for row in rows):
        raise typer.Exit(1)
