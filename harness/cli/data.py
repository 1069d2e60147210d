"""`drbench data export`: a collection drbench can load, written as a BEIR folder.

Torch-free: the collection is read through ir_datasets (:mod:`harness.data.export`).
"""

from __future__ import annotations

from pathlib import Path

import typer

from harness.cli.common import MirrorOpt, counted, err, fail
from harness.cli.output import check_output_folder
from harness.errors import DrbenchError

app = typer.Typer(help="Collections: write one as a BEIR folder.", no_args_is_help=True)


@app.command("export")
def export(dataset_id: str = typer.Argument(..., metavar="ID", help="An ir_datasets id, e.g. beir/scifact/test "
                                                                    "or cranfield."),
           output: Path = typer.Option(..., "-o", "--output", metavar="DIR",
                                       help="The folder to write (created; must be missing or empty)."),
           split: str | None = typer.Option(None, "--split", metavar="NAME",
                                            help="Name of the qrels file, qrels/NAME.tsv (default: the id's last "
                                                 "part if it is train, dev, test or validation, else test)."),
           force: bool = typer.Option(False, "--force", help="Replace DIR if it holds a BEIR folder."),
           mirror: str | None = MirrorOpt) -> None:
    """Write a collection as a BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) for BEIR or MTEB:
    every document, every query and every judgment with its grade."""
    from harness.data.availability import resolve_mirror
    from harness.data.export import export_beir
    from harness.progress import StageProgress

    try:
        target = check_output_folder(output, "-o", None)
        source = resolve_mirror(mirror, None)
        with StageProgress(err) as progress:
            done = export_beir(dataset_id, target, mirror=source, split=split, force=force, progress=progress)
    except DrbenchError as exc:
        raise fail(exc) from None
    except OSError as exc:
        raise fail(f"cannot write -o {output}: {exc.strerror or exc}; pass -o a folder you can write") from None
    err.print(f"wrote {output}: {counted(done.docs, 'document')}, {counted(done.queries, 'query', 'queries')}, "
              f"{counted(done.judgments, 'judgment')} ({done.qrels_file})", markup=False, highlight=False,
              soft_wrap=True)
