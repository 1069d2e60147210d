"""What the `drbench` commands share: consoles, the output `Format`, the read-side `--store`
option, mapping errors to one line and an exit code (`fail`), opening the store, printing the
leaderboard.

It imports no command module, so every command module can import it and the package `__init__`
can import them all without a circle. Light on purpose: `drbench --help` imports it.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape

from harness.errors import DrbenchError
from harness.progress import log_console

if TYPE_CHECKING:
    from sqlite_utils import Database

    from harness.pipeline import RunOptions


def _declared_default(name: str) -> str:
    from dataclasses import fields

    from harness.recipe.model import ExperimentConfig  # torch-free declarations

    return next(f.default for f in fields(ExperimentConfig) if f.name == name)


# The store a command reads when neither --store nor $DRBENCH_STORE names one: the recipe
# key's own default, so `[experiment] store` and the read-side commands cannot disagree.
DEFAULT_STORE: str = _declared_default("store")
STORE_ENV = "DRBENCH_STORE"
INTERRUPTED = "interrupted; completed runs are stored, the rest re-run next time"

err = log_console()  # errors, and `run`'s progress: unwrapped lines in a log file
# Piped or captured output (CI logs, files) gets room for wide leaderboards instead of 80 columns.
out = Console() if Console().is_terminal else Console(width=200)

# One declaration for the read-side commands, so `--store` and $DRBENCH_STORE mean the same everywhere.
StoreOpt = typer.Option(None, "--store", envvar=STORE_ENV, help=f"Results store (default: {DEFAULT_STORE}).")

# `run`'s options, declared once: `check --run` runs a recipe with the same ones (as sqlite-utils
# declares `output_options` once for every command that prints rows). `run_options` reads them.
ShardOpt = typer.Option(None, "--shard", metavar="I/N",
                        help="Run only shard I of N of the plan (an array job's task), into its own store "
                             "(default: the recipe's, named .shard-I-of-N); join them with drbench merge.")
SeedsOpt = typer.Option(None, "--seeds", metavar="S,S",
                        help="Run only these of the recipe's seeds, e.g. 14,15 (to add or redo a seed); the "
                             "stored runs of its other seeds stay. Left out, a run replaces stored seeds the recipe "
                             "no longer lists.")
RecipeStoreOpt = typer.Option(None, "--store", envvar=STORE_ENV, help="Results store (default: the recipe's).")
MirrorOpt = typer.Option(None, "--mirror", help="Offline ir_datasets mirror folder (also $DRBENCH_MIRROR).")
ForceOpt = typer.Option(False, "--force", help="Re-run runs already in the store.")
CacheDirOpt = typer.Option(None, "--cache-dir", help="Cache folder for trained models, mined negatives and "
                           "embeddings (default: the recipe's).")
DeviceOpt = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N or mps (default: the recipe's compute "
                         "device, else auto).")
PrecisionOpt = typer.Option(None, "--precision", help="fp32, bf16, fp16, int8 (backends openvino and onnx) or "
                            "auto (default: the recipe's compute precision, else fp32).")
BackendOpt = typer.Option(None, "--backend", help="torch, openvino or onnx: what runs the encodes of models not "
                          "being trained (default: the recipe's compute backend, else torch).")


def run_options(mirror: str | None, force: bool, store: str | None, cache_dir: str | None, device: str | None,
                precision: str | None, shard: str | None = None, backend: str | None = None,
                seeds: str | None = None, **parallel: Any) -> RunOptions:
    """The `RunOptions` the run option group's values ask for (imports the pipeline, so torch);
    `parallel`: `drbench run`'s executor, address, workers and threads."""
    from harness.pipeline import RunOptions
    from harness.recipe.seed_subset import parse_seeds
    from harness.recipe.shards import parse_shard

    return RunOptions(mirror=mirror, force=force, store=store, cache_dir=cache_dir, device=device,
                      precision=precision, shard=None if shard is None else parse_shard(shard), backend=backend,
                      seeds=None if seeds is None else parse_seeds(seeds), **parallel)


class Format(str, Enum):
    """Output of the leaderboard: a rich table for people, JSON for scripts."""

    table = "table"
    json = "json"


def counted(n: int, one: str, many: str | None = None) -> str:
    """`n` with its noun, singular or plural: `1 variant`, `3 variants`, `2 indexes`.

    >>> counted(1, "index", "indexes"), counted(2, "index", "indexes"), counted(0, "run")
    ('1 index', '2 indexes', '0 runs')
    """
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def fail(exc: DrbenchError | str, code: int = 2) -> typer.Exit:
    """Print `exc` as the one-line `error: ...` and return the exit to raise.

    Returned, not raised, so callers write `raise fail(exc) from None` and the traceback of the
    library error never reaches the user.
    """
    # escape: messages name recipe tables like "[model]", which rich would take for markup
    err.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def warn(message: str) -> None:
    """Print `message` as one `warning: ...` line on stderr; the command goes on."""
    err.print(f"[bold yellow]warning:[/bold yellow] {escape(message)}", highlight=False, soft_wrap=True)


def open_results(store: str | None) -> Database:
    """Open an existing results store for the read commands, read-only.

    A missing store is a `StoreError`, never a new empty file; a read-only file or folder (a
    published share, CI artifacts) is read as it is (see `harness.store.open_store_readonly`).
    """
    from harness.store import open_store_readonly

    return open_store_readonly(store or DEFAULT_STORE)


def print_leaderboard(store: str | None, experiment: str | None, collection: str | None,
                      format: Format, per_seed: bool = False) -> None:
    """Print the stored results; shared by `leaderboard` and by `run`, which ends with it."""
    from leaderboard import leaderboard_rows, render, rows_as_json

    db = open_results(store)
    rows = leaderboard_rows(db, experiment=experiment, collection=collection, per_seed=per_seed)
    if not rows and (experiment or collection) and format is Format.table:
        from harness.store import list_runs

        # An empty table is an answer, not an error; but say what the filter missed.
        out.print(_no_match(experiment, collection, list_runs(db)), markup=False, highlight=False)
        return
    if format is Format.json:
        print(json.dumps(rows_as_json(rows), indent=2))
    else:
        render(rows, out, per_seed=per_seed)


def _no_match(experiment: str | None, collection: str | None, runs: list[dict[str, Any]]) -> str:
    """Name the filter that matched nothing, and what is stored instead."""
    asked = ", ".join(f"{flag} {value}" for flag, value in (("--experiment", experiment),
                                                            ("--collection", collection)) if value)
    if not runs:
        return f"no runs match {asked}: the store holds none yet; run drbench run RECIPE first"
    experiments = sorted({r["experiment"] for r in runs})
    collections = sorted({r["collection"] for r in runs})
    return (f"no runs match {asked}; stored experiments: {', '.join(experiments)}; "
            f"collections: {', '.join(collections)}")
