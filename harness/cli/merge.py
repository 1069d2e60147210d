"""`drbench merge A.db B.db ... -o ALL.db`: many results stores as one (`harness.store.merge`)."""

from __future__ import annotations

from pathlib import Path

import typer

from harness.cli.common import counted, err, fail, warn
from harness.errors import DrbenchError


def merge(stores: list[Path] = typer.Argument(..., metavar="STORE...", help="Results stores to merge (read, "
                                              "never written)."),
          output: Path = typer.Option(..., "-o", "--output", metavar="ALL.db",
                                      help="The merged store: created, or merged into (its runs kept) if it exists; "
                                           "written whole or not at all.")) -> None:
    """Merge results stores (shards of one recipe, or a laptop's and a cluster's) into one: experiments,
    runs, metrics, per-query values, rankings and training logs. A run stored twice with the same key
    and numbers is kept once; the same run with other numbers or another key stops the merge in one
    line, and nothing is written."""
    from harness.progress import StageProgress
    from harness.store.merge import merge_stores

    try:
        with StageProgress(err) as progress, progress.task(f"merging into {output}", len(stores), "stores") as advance:
            done = merge_stores(stores, output, advance)
    except DrbenchError as exc:
        raise fail(exc) from None
    except OSError as exc:
        raise fail(f"cannot write -o {output}: {exc.strerror or exc}; pass a file in a folder you can write") from None
    for line in done.warnings:
        warn(line)
    err.print(f"wrote {output}: {counted(done.copied, 'run')} copied, {counted(done.kept_once, 'run')} met again and "
              f"kept once, {counted(done.log_rows, 'training-log row')}; {counted(done.experiments, 'experiment')} in all",
              markup=False, highlight=False, soft_wrap=True)
