"""`drbench plot`: training curves, metric bars, quality against index size and against training
cost, as PNGs (reads SQLite only)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from harness.cli.common import DEFAULT_STORE, StoreOpt, err, fail, open_results, out
from harness.cli.compare import split_metrics
from harness.cli.output import check_output_folder
from harness.errors import DrbenchError


def plot(store: str | None = StoreOpt,
         experiment: list[str] | None = typer.Option(None, "--experiment", "-e", help="Only these; repeatable."),
         collection: str | None = typer.Option(None, "--collection", "-c", help="Only this collection."),
         metrics: str | None = typer.Option(None, "--metrics", "-m",
                                            help="Comma-separated metrics (default: all stored)."),
         out_dir: Path = typer.Option(Path("plots"), "--out", help="Folder for the PNG files."),
         seed: int = typer.Option(42, "--seed", help="Seed of the bootstrap CIs.")) -> None:
    """Training curves, metric bars with 95% CIs, quality vs bytes per document and vs training cost, as PNGs."""
    from leaderboard.plot import plot_store

    try:
        check_output_folder(out_dir, "--out", store or DEFAULT_STORE)
        written, skipped = plot_store(open_results(store), out_dir, experiments=experiment or None,
                                      collection=collection, metrics=list(split_metrics(metrics)) or None,
                                      seed=seed)
    except DrbenchError as exc:
        raise fail(exc) from None
    for reason in skipped:
        err.print(f"[dim]{escape(reason)}[/dim]", highlight=False, soft_wrap=True)
    for path in written:
        out.print(str(path), highlight=False, markup=False, soft_wrap=True)
