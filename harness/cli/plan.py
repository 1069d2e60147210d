"""`drbench plan`: every run a recipe will make, and where each stands, before anything runs.
It takes `run`'s store, cache, mirror, device and precision options (model keys depend on them).

Writes nothing: the store is read (read-only) if it exists, the cache is looked into, collections
are neither copied from the mirror nor downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from harness.cli.common import (CacheDirOpt, DeviceOpt, Format, MirrorOpt, PrecisionOpt, RecipeStoreOpt, counted,
                                fail, out)
from harness.errors import DrbenchError

if TYPE_CHECKING:
    from harness.pipeline.plan_status import PlannedRun

PLAN_JSON_VERSION = 1  # bump when a field of the JSON form changes meaning or goes (executors read it)


def plan(recipe: Path = typer.Argument(..., help="Recipe file."),
         store: str | None = RecipeStoreOpt, cache_dir: str | None = CacheDirOpt, mirror: str | None = MirrorOpt,
         device: str | None = DeviceOpt, precision: str | None = PrecisionOpt,
         format: str = typer.Option("table", "--format", help="table (for people) or json (for executors).")
         ) -> None:
    """Print every run RECIPE makes: stored (skipped), model cached (evaluate only), to evaluate or
    to train, with its run key and a hardware-independent cost. Writes nothing."""
    formats = [f.value for f in Format]
    if format not in formats:  # checked here rather than by typer: one line, as every bad input gets
        raise fail(f"--format {format!r}: use one of {', '.join(formats)}")
    from harness.data.availability import resolve_mirror
    from harness.recipe import build_plan, load_recipe

    try:
        parsed = load_recipe(recipe)
        the_plan = build_plan(parsed)
        from harness.pipeline.plan_status import plan_status

        runs = plan_status(the_plan, Path(store or parsed.experiment.store),
                           Path(cache_dir or parsed.experiment.cache_dir), resolve_mirror(mirror, parsed.data.mirror),
                           device, precision)
    except DrbenchError as exc:
        raise fail(exc) from None
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
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(f"{recipe}: {counted(len(runs), 'run')}"), title_justify="left")
    for name in ("phase", "variant", "seed", "collection", "index", "status", "docs", "queries", "train", "note"):
        table.add_column(name, justify="right" if name in ("seed", "docs", "queries", "train") else "left")
    for run in runs:
        spec, cost = run.spec, run.cost
        train = "" if not spec.trains else f"{_n(cost.train_steps)} x {cost.train_batch}"
        later = "; ".join(f"point of {name} chosen on dev" for name in spec.later)
        note = f"decided later: {later}" if later and run.key is None else ""
        # Text, not markup: names hold brackets (`star[lr=2e-05]`, `train[holdout:0.1]`) rich would eat
        cells = (spec.phase, spec.variant, str(spec.seed), spec.collection, spec.index, run.status,
                 _n(cost.docs) if cost.docs != 0 else "", _n(cost.queries) if cost.queries != 0 else "", train, note)
        table.add_row(*(Text(cell) for cell in cells))
    out.print(table)
    totals = summary(runs)
    counts = ", ".join(f"{n} {status}" for status, n in totals["status"].items() if n)
    todo = totals["to_do"]
    out.print(f"{counts}; to do: {_n(todo['docs'])} documents and {_n(todo['queries'])} queries to encode, "
              f"{_n(todo['train_examples'])} training examples (steps x batch). ? = unknown until the run",
              markup=False, highlight=False, soft_wrap=True)


def _n(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"
