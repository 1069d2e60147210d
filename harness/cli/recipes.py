"""`drbench validate` and `drbench run`: the commands that take a recipe file.

`validate` stays light (no torch) so it can gate a recipe in CI before anything heavy loads;
only `run` reaches the pipeline, and only inside the command.
"""

from __future__ import annotations

from pathlib import Path

import typer

from harness.cli.common import INTERRUPTED, Format, err, fail, out, print_leaderboard
from harness.errors import DrbenchError


def validate(recipe: Path | None = typer.Argument(None, help="Recipe file to check."),
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
        raise fail("give a recipe file, or --explain for the reference")
    try:
        parsed = load_recipe(recipe)
        if not offline:
            from harness.recipe.checks import check_resources

            check_resources(parsed)
    except DrbenchError as exc:
        raise fail(exc) from None
    kinds = ", ".join(f"{v.name} ({v.kind})" for v in parsed.variants)
    out.print(f"{recipe}: ok — {len(parsed.variants)} variants [{kinds}] x "
              f"{len(parsed.data.eval)} collections x {len(parsed.eval.indexes)} indexes", highlight=False,
              markup=False, soft_wrap=True)


def run(recipe: Path = typer.Argument(..., help="Recipe file."),
        mirror: str | None = typer.Option(None, "--mirror", help="Offline ir_datasets mirror folder "
                                          "(also $DRBENCH_MIRROR)."),
        force: bool = typer.Option(False, "--force", help="Re-run runs already in the store."),
        store: str | None = typer.Option(None, "--store", envvar="DRBENCH_STORE",
                                         help="Results store (default: the recipe's)."),
        cache_dir: str | None = typer.Option(None, "--cache-dir", help="Cache folder for trained models, mined "
                                             "negatives and embeddings (default: the recipe's)."),
        device: str | None = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N or mps "
                                          "(default: the recipe's compute device, else auto)."),
        precision: str | None = typer.Option(None, "--precision", help="fp32, bf16, fp16 or auto "
                                             "(default: the recipe's compute precision, else fp32).")) -> None:
    """Train and evaluate every variant of RECIPE, store the results, print the leaderboard."""
    from harness.pipeline import RunOptions, run_recipe, store_path  # imports torch: only here
    from harness.recipe import load_recipe

    try:
        parsed = load_recipe(recipe)
        options = RunOptions(mirror=mirror, force=force, store=store, cache_dir=cache_dir, device=device,
                             precision=precision)
        run_recipe(parsed, options, err)
        print_leaderboard(str(store_path(parsed, options)), parsed.experiment.name, None, Format.table)
    except DrbenchError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        raise fail(INTERRUPTED, 130) from None
