"""`drbench check`: the regression gate, stored metrics against expected values; with `--run` it
runs the recipe first (the only path here that imports torch)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from harness.cli.common import (INTERRUPTED, BackendOpt, CacheDirOpt, DeviceOpt, ForceOpt, MirrorOpt, PrecisionOpt,
                                RecipeStoreOpt, err, fail, open_results, out, run_options)
from harness.cli.output import check_output
from harness.errors import DrbenchError


class CheckFormat(str, Enum):
    """How `check` prints its rows: a terminal table, or markdown for a CI job summary."""

    table = "table"
    markdown = "markdown"


def check(expectations: Path = typer.Argument(..., help="Expectations TOML (recipe + expected values)."),
          run_first: bool = typer.Option(False, "--run", help="Run the recipe first (stored runs are reused)."),
          mirror: str | None = MirrorOpt, force: bool = ForceOpt, store: str | None = RecipeStoreOpt,
          cache_dir: str | None = CacheDirOpt, device: str | None = DeviceOpt, precision: str | None = PrecisionOpt,
          backend: str | None = BackendOpt, format: CheckFormat = typer.Option(CheckFormat.table, "--format",
                                             help="table, or markdown (e.g. for $GITHUB_STEP_SUMMARY)."),
          junit: Path | None = typer.Option(None, "--junit", help="Also write JUnit XML to FILE: one test case "
                                            "per expected value, FAIL rows as failures.")
          ) -> None:
    """Regression gate: stored metrics against expected values (exit 1 on any FAIL).

    --mirror, --force, --cache-dir, --device, --precision and --backend act with --run, as in `drbench run`.
    """
    from harness.files import write_text_atomic
    from leaderboard.check import check as check_rows, load_expectations, render_check
    from leaderboard.check_report import to_junit, to_markdown

    try:
        inputs = {"the expectations file": expectations}
        if junit is not None:  # the folder and permissions before any work; the store once it is known
            check_output(junit, "--junit", None, example="check.xml", inputs=inputs)
        expected = load_expectations(expectations)
        path = store or expected.recipe.experiment.store
        if junit is not None:
            check_output(junit, "--junit", path, example="check.xml", inputs=inputs)
        if run_first:
            from harness.pipeline import run_recipe  # the only path that imports torch

            run_recipe(expected.recipe, run_options(mirror, force, path, cache_dir, device, precision, backend=backend), err)
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
