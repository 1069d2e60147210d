"""`drbench data check` and `drbench data export`: a collection's files checked and counted, or
any collection drbench can load written as a BEIR folder.

Torch-free: the collection is read through ir_datasets (:mod:`harness.data.export`); `--recipe`
first declares the recipe's own collections, as loading it for `run` does.
"""

from __future__ import annotations

from pathlib import Path

import typer

from harness.cli.common import MirrorOpt, counted, err, fail
from harness.cli.output import check_output_folder
from harness.errors import DrbenchError

app = typer.Typer(help="Collections: check and count one, or write one as a BEIR folder.", no_args_is_help=True)

# No square brackets in help: typer renders it as rich markup.
RecipeOpt = typer.Option(None, "--recipe", metavar="FILE", help="Also know the collections this recipe declares "
                                                                "(its collections tables); its mirror is the default.")


@app.command("check")
def check(target: str = typer.Argument(..., metavar="PATH|NAME",
                                       help="A BEIR folder, or a file collection --recipe declares (mine)."),
          recipe: Path | None = RecipeOpt) -> None:
    """Run the checks a declared collection passes before any work, and print what it holds:
    documents, queries, judged queries and qrels per relevance level of each split, duplicate
    texts, and each file's size and sha256. Exit 2 with one line naming file:line on the first
    problem."""
    from harness.data.catalog import summary
    from harness.data.local.declared import FileCollection, declare, declared, lookup
    from harness.progress import StageProgress

    try:
        _declare(recipe)
        name = target
        found = lookup(target)
        if found is not None and not isinstance(found[0], FileCollection):
            raise DrbenchError(f"{target}: [collections.{found[0].name}] splits the queries of {found[0].source}, "
                               "it has no files of its own; check the source's files (a declared file collection) "
                               "or trust ir_datasets' (an ir_datasets id)")
        if found is None:
            folder = Path(target)
            if not folder.is_dir():
                hint = " (or pass --recipe FILE to check a collection it declares)" if recipe is None else ""
                raise DrbenchError(f"{target}: neither a BEIR folder nor a collection declared in [collections]"
                                   f"{hint}; pass a folder holding corpus.jsonl, queries.jsonl and qrels/")
            if not (folder / "corpus.jsonl").is_file():
                raise DrbenchError(f"{target}: not a BEIR folder (no corpus.jsonl); TREC files are checked through "
                                   "the recipe that declares them: drbench data check NAME --recipe FILE")
            name = folder.resolve().name or "folder"
            declare((*declared().values(), FileCollection.beir(name, folder)))
        with StageProgress(err) as progress:
            found = lookup(name)
            files = found[0].files() if found and isinstance(found[0], FileCollection) else []
            total = sum(p.stat().st_size for p in files if p.is_file())
            with progress.task(f"checking {name}", total, "bytes") as advance:
                result = summary(name.partition("/")[0], advance)
    except DrbenchError as exc:
        raise fail(exc) from None
    _print_summary(result)


def _print_summary(result: object) -> None:
    from harness.cli.common import out

    r = result
    lines = [f"{r.name}: ok",  # type: ignore[attr-defined]
             f"  documents  {r.documents:,} ({r.titled:,} with a title; {r.duplicate_texts:,} duplicate texts)",
             f"  queries    {r.queries:,}"]
    for split, counts in r.splits.items():  # type: ignore[attr-defined]
        grades = ", ".join(f"{grade}: {n:,}" for grade, n in counts.grades.items())
        lines.append(f"  {split:<10} {counts.judged:,} judged queries; qrels per relevance {grades}")
        if counts.missing_docs:
            lines.append(f"  warning: {counts.missing_docs:,} qrels rows of {split} name documents the corpus lacks; "
                         "they are kept (as ir_datasets and trec_eval keep them): relevant documents no system can "
                         "retrieve")
    for digest in r.files.values():  # type: ignore[attr-defined]
        lines.append(f"  {digest.role:<10} {digest.path} ({digest.size:,} bytes, sha256 {digest.sha256[:16]}…)")
    out.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)


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
