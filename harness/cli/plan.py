"""`drbench plan`: every run a recipe will make, and where each stands, before anything runs.
It takes `run`'s store, cache, mirror, device, precision and backend options (model keys depend on them).

Writes nothing: the store is read (read-only) if it exists, the cache is looked into, collections
are neither copied from the mirror nor downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from harness.cli.common import (BackendOpt, CacheDirOpt, DeviceOpt, Format, MirrorOpt, PrecisionOpt, RecipeStoreOpt,
                                SeedsOpt, ShardOpt, counted, fail, out, warn)
from harness.errors import DrbenchError

if TYPE_CHECKING:
    from harness.pipeline.plan_status import PlannedRun

# Bumped when a field of the JSON form changes meaning or goes, or a value appears that an executor must
# handle (executors read it). 2: phase "folds", a combination of stored fold runs, not a run to execute.
PLAN_JSON_VERSION = 2


def plan(recipe: Path = typer.Argument(..., help="Recipe file."),
         store: str | None = RecipeStoreOpt, cache_dir: str | None = CacheDirOpt, mirror: str | None = MirrorOpt,
         device: str | None = DeviceOpt, precision: str | None = PrecisionOpt, backend: str | None = BackendOpt,
         shard: str | None = ShardOpt, seeds: str | None = SeedsOpt,
         format: str = typer.Option("table", "--format", help="table (for people) or json (for executors).")
         ) -> None:
    """Print every run RECIPE makes: stored (skipped), model cached (evaluate only), to evaluate or
    to train, with a hardware-independent cost (JSON: also its run key). Writes nothing. The
    recipe gets `validate`'s checks, the options `run`'s."""
    formats = [f.value for f in Format]
    if format not in formats:  # checked here rather than by typer: one line, as every bad input gets
        raise fail(f"--format {format!r}: use one of {', '.join(formats)}")
    from harness.data.availability import resolve_mirror
    from harness.recipe import build_plan, load_recipe, recipe_warnings
    from harness.recipe.checks import check_resources

    try:
        parsed = load_recipe(recipe)
        if seeds is not None:  # what `run --seeds` runs
            from harness.recipe.seed_subset import only_seeds, parse_seeds

            parsed = only_seeds(parsed, parse_seeds(seeds))
        check_resources(parsed)  # what validate checks: ids, models, factory strings
        the_plan = build_plan(parsed)
        from harness.pipeline import RunOptions, store_path
        from harness.pipeline.plan_status import plan_status
        from harness.recipe.shards import parse_shard, shard_of

        chosen = None if shard is None else parse_shard(shard)
        if chosen is not None:  # what `run --shard I/N` runs, against the shard's own store
            the_plan = shard_of(the_plan, *chosen)
        store = str(store_path(parsed, RunOptions(store=store, shard=chosen)))
        runs = plan_status(the_plan, Path(store),
                           Path(cache_dir or parsed.experiment.cache_dir), resolve_mirror(mirror, parsed.data.mirror),
                           device, precision, backend)
    except DrbenchError as exc:
        raise fail(exc) from None
    for message in recipe_warnings(parsed):
        warn(message)
    if format == Format.json.value:
        print(json.dumps({"version": PLAN_JSON_VERSION, "recipe": str(recipe), "experiment": parsed.experiment.name,
                          "store": store or parsed.experiment.store,
                          "cache_dir": cache_dir or parsed.experiment.cache_dir,
                          "summary": summary(runs), "runs": [run.as_json() for run in runs]}, indent=2))
        return
    _table(runs, str(recipe))


def summary(runs: list[PlannedRun]) -> dict[str, Any]:
    """Runs per status, and the cost of the runs that are not stored (None: part of it unknown):
    encodings are counted whether or not the embedding cache holds them, training only where no
    cached model serves."""
    from harness.pipeline.plan_status import STATUSES

    todo = [run.cost for run in runs if run.status != "stored"]
    training = [run.cost for run in runs if run.status == "to train"]  # a cached model trains nothing

    def total(values: list[int | None]) -> int | None:
        return None if any(v is None for v in values) else sum(v for v in values if v is not None)

    return {"runs": len(runs), "status": {s: sum(run.status == s for run in runs) for s in STATUSES},
            "to_do": {"docs": total([c.docs for c in todo]), "queries": total([c.queries for c in todo]),
                      "train_examples": total([None if c.train_steps is None else c.train_steps * c.train_batch
                                               for c in training])}}


def _table(runs: list[PlannedRun], recipe: str) -> None:
    """One row per run; a column empty in every row is left out, so the table fits a terminal."""
    from rich.table import Table
    from rich.text import Text

    rows = [_row(run) for run in runs]
    table = Table(title=Text(f"{recipe}: {counted(len(runs), 'run')}"), title_justify="left")
    shown = [name for name in rows[0] if any(row[name] for row in rows)] if rows else []
    for name in shown:
        table.add_column(name, justify="right" if name in ("seed", "docs", "queries", "train") else "left")
    for row in rows:
        # Text, not markup: names hold brackets (`star[lr=2e-05]`, `train[holdout:0.1]`) rich would eat
        table.add_row(*(Text(row[name]) for name in shown))
    out.print(table)
    totals = summary(runs)
    counts = ", ".join(f"{n} {status}" for status, n in totals["status"].items() if n)
    todo = totals["to_do"]
    unknown = " ? = unknown until the run." if None in todo.values() else ""
    out.print(f"{counts}; to do: {_n(todo['docs'])} documents and {_n(todo['queries'])} queries to encode, "
              f"{_n(todo['train_examples'])} training examples (steps x batch).{unknown}",
              markup=False, highlight=False, soft_wrap=True)


def _row(run: PlannedRun) -> dict[str, str]:
    from harness.pipeline.plan_status import NOT_TRAINED

    spec, cost = run.spec, run.cost
    if run.chosen is not None:
        note = f"chosen on dev: {run.chosen}"
    elif spec.later and run.key is None:
        note = "decided later: " + "; ".join(f"point of {name} chosen on dev" for name in spec.later)
    else:  # why the status could not be checked; a model the plan trains is no news
        note = run.why if run.why and not run.why.endswith(NOT_TRAINED) else ""
    return {"phase": spec.phase, "variant": spec.variant, "seed": str(spec.seed), "collection": spec.collection,
            "index": spec.index, "status": run.status, "docs": _n(cost.docs) if cost.docs != 0 else "",
            "queries": _n(cost.queries) if cost.queries != 0 else "",
            "train": f"{_n(cost.train_steps)} x {cost.train_batch}" if spec.trains else "", "note": note}


def _n(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"
