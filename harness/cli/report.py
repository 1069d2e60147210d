"""`drbench report`: the store as one self-contained HTML page (`leaderboard/report/`).

Reads SQLite, and the collections' texts for the drill-down; never imports torch.
"""

from __future__ import annotations

from pathlib import Path

import typer

from harness.cli.common import DEFAULT_STORE, StoreOpt, err, fail, open_results
from harness.cli.compare import Correction, StatTest
from harness.cli.output import check_output
from harness.errors import DrbenchError


def report(store: str | None = StoreOpt,
           output: Path = typer.Option(Path("report.html"), "--output", "-o", help="HTML file to write."),
           experiment: list[str] | None = typer.Option(None, "--experiment", "-e",
                                                       help="Experiment(s) to show; repeat for several (default: all)."),
           collection: str | None = typer.Option(None, "--collection", "-c", help="Only this collection."),
           baseline: str | None = typer.Option(None, "--baseline", "-b",
                                               help="Variant (experiment/variant, variant@index) the markers test "
                                                    "against (default: each collection's zero-shot run, else its "
                                                    "first)."),
           queries: int = typer.Option(200, "--queries", min=0,
                                       help="Queries in the per-query drill-down per collection, those where the "
                                            "systems differ most (0: all)."),
           test: StatTest = typer.Option(StatTest.student, "--test", help="Paired significance test."),
           correction: Correction = typer.Option(Correction.holm, "--correction",
                                                 help="Multiple-comparison correction (per collection)."),
           alpha: float = typer.Option(0.05, "--alpha", help="Significance level after correction."),
           bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the CIs."),
           seed: int = typer.Option(42, "--seed", help="Seed of the permutations and bootstrap resamples."),
           mirror: str | None = typer.Option(None, "--mirror", envvar="DRBENCH_MIRROR",
                                             help="Offline ir_datasets mirror the drill-down reads texts and "
                                                  "labels from (also $DRBENCH_MIRROR)."),
           ) -> None:
    """Write the stored results as one self-contained HTML page: sortable leaderboards, tests,
    plots, per-query rankings and provenance."""
    from harness.data.availability import resolve_mirror
    from harness.files import write_text_atomic
    from leaderboard.compare import CompareSettings
    from leaderboard.report import ReportOptions, build_report, render_page

    try:
        target = check_output(output, "-o", store or DEFAULT_STORE, example="report.html")
        texts_from = resolve_mirror(mirror, None)  # a missing folder is refused, as `run` refuses it
        settings = CompareSettings(test=test.value, correction=correction.value, alpha=alpha,
                                   bootstrap=bootstrap, seed=seed)
        db = open_results(store)
        built = build_report(db, store or DEFAULT_STORE, ReportOptions(
            experiments=tuple(experiment or ()), collection=collection, baseline=baseline, queries=queries,
            settings=settings, mirror=texts_from))
        write_text_atomic(target, [render_page(built)])
    except DrbenchError as exc:
        raise fail(exc) from None
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc.strerror or exc}; pass -o a writable file") from None
    size = target.stat().st_size
    err.print(f"wrote {output} ({size / 1e6:.1f} MB): {len(built.collections)} collection(s), "
              f"{len(built.experiments)} experiment(s)", highlight=False, soft_wrap=True)
