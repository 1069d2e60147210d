"""`drbench compare`: paired significance tests between stored systems (reads SQLite only)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.console import Console

from harness.cli.common import DEFAULT_STORE, StoreOpt, err, fail, open_results, out
from harness.cli.output import check_output
from harness.errors import DrbenchError


class CompareFormat(str, Enum):
    """Where a comparison goes: a terminal table, or a paper/spreadsheet/script format."""

    table = "table"
    markdown = "markdown"
    latex = "latex"
    csv = "csv"
    json = "json"


class StatTest(str, Enum):
    """Paired tests `compare` offers; an Enum so typer rejects a typo with the allowed values."""

    student = "student"
    fisher = "fisher"


class Correction(str, Enum):
    """Multiple-comparison corrections `compare` offers."""

    holm = "holm"
    bonferroni = "bonferroni"
    none = "none"


def split_metrics(metrics: str | None) -> tuple[str, ...]:
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
        settings = CompareSettings(baseline=baseline, metrics=split_metrics(metrics), test=test.value,
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
