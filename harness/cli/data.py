"""`drbench data export`: a collection drbench can load, written as a BEIR folder.

Torch-free: the collection is read through ir_datasets (:mod:`harness.data.export`); `--recipe`
first declares the recipe's own collections, as loading it for `run` does.
"""

from __future__ import annotations

from pathlib import Path

import typer

from harness.cli.common import MirrorOpt, counted, err, fail
from harness.cli.output import check_output_folder
from harness.errors import DrbenchError

app = typer.Typer(help="Collections: write one as a BEIR folder.", no_args_is_help=True)

# No square brackets in help: typer renders it as rich markup.
RecipeOpt = typer.Option(None, "--recipe", metavar="FILE", help="Also know the collections this recipe declares "
                                                                "(its collections tables); its mirror is the default.")


@app.command("export")
def export(dataset_id: str = typer.Argument(..., metavar="ID", help="An ir_datasets id (beir/scifact/test, cranfield) "
                                                                    "or a split --recipe declares (mine/test)."),
           output: Path = typer.Option(..., "-o", "--output", metavar="DIR",
                                       help="The folder to write (created; must be missing or empty)."),
           split: str | None = typer.Option(None, "--split", metavar="NAME",
                                            help="Name of the qrels file, qrels/NAME.tsv (default: the id's last "
                                                 "part if it is train, dev, test or validation, else test)."),
           force: bool = typer.Option(False, "--force", help="Replace DIR if it holds a BEIR folder."),
           mirror: str | None = MirrorOpt, recipe: Path | None = RecipeOpt) -> None:
    """Write a collection as a BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) for BEIR or MTEB:
    every document, every query and every judgment with its grade."""
    from harness.data.availability import resolve_mirror
    from harness.data.export import export_beir
    from harness.progress import StageProgress

    try:
        target = check_output_folder(output, "-o", None)
        source = resolve_mirror(mirror, _declare(recipe))
        with StageProgress(err) as progress:
            done = export_beir(dataset_id, target, mirror=source, split=split, force=force, progress=progress)
    except DrbenchError as exc:
        raise fail(exc) from None
    except OSError as exc:
        raise fail(f"cannot write -o {output}: {exc.strerror or exc}; pass -o a folder you can write") from None
    err.print(f"wrote {output}: {counted(done.docs, 'document')}, {counted(done.queries, 'query', 'queries')}, "
              f"{counted(done.judgments, 'judgment')} ({done.qrels_file})", markup=False, highlight=False,
              soft_wrap=True)


def _declare(recipe: Path | None) -> str | None:
    """Load `recipe`, which declares its collections as loading any recipe does; its mirror, if any."""
    if recipe is None:
        return None
    from harness.recipe import load_recipe

    return load_recipe(recipe).data.mirror
