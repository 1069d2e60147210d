"""`drbench cache ls | verify | prune`: what the cache folder holds, whether it is intact, clearing it.

Torch-free: the cache is folders, files and manifests, read by :mod:`harness.cache.inventory`.
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from harness.cli.common import STORE_ENV, Format, counted, err, fail, open_results, out
from harness.errors import DrbenchError

if TYPE_CHECKING:
    from rich.table import Table

    from harness.cache.inventory import Advance, Item

app = typer.Typer(help="Inspect, verify and prune the cache of trained models, mined negatives and corpus "
                       "embeddings.", no_args_is_help=True)

# No square brackets in help: typer renders it as rich markup.
CacheDirOpt = typer.Option(None, "--cache-dir", help="Cache folder (default: the --recipe's cache_dir, "
                                                     "else .drbench_cache).")
RecipeOpt = typer.Option(None, "--recipe", help="Take the cache folder from this recipe (its experiment "
                                                "table's cache_dir).")
_HEAL = "`drbench run` rebuilds damaged entries, `drbench cache prune --damaged` removes them"


def _cache_dir(cache_dir: str | None, recipe: Path | None) -> Path:
    if cache_dir is None and recipe is not None:
        from harness.recipe import load_recipe

        cache_dir = load_recipe(recipe).experiment.cache_dir
    if cache_dir is None:
        from dataclasses import fields

        from harness.recipe.model import ExperimentConfig

        cache_dir = next(f.default for f in fields(ExperimentConfig) if f.name == "cache_dir")
    return Path(cache_dir)


def _say(text: str) -> None:
    out.print(text, markup=False, highlight=False, soft_wrap=True)


@app.command("ls")
def ls(cache_dir: str | None = CacheDirOpt, recipe: Path | None = RecipeOpt,
       format: Format = typer.Option(Format.table, "--format", help="table or json.")) -> None:
    """List cached entries (kind, key, size, what produced it, created, last used) and leftovers."""
    from harness.cache.inventory import ENTRY, cache_root, inventory

    try:
        path = _cache_dir(cache_dir, recipe)
        root = cache_root(path)
        items = inventory(root) if root else []
    except DrbenchError as exc:
        raise fail(exc) from None
    if format is Format.json:
        print(json.dumps([_as_json(item) for item in items], indent=2))
        return
    if not items:
        _say(f"{path}: nothing cached" if root else f"{path}: no cache folder (nothing cached yet)")
        return
    entries = [item for item in items if item.state == ENTRY]
    out.print(_table(path, entries))
    for line in _leftover_lines(items):
        _say(line)


def _table(path: Path, entries: list[Item]) -> Table:
    from rich.table import Table
    from rich.text import Text

    now = time.time()
    # Text, not markup: a swept model is produced by `star[lr=2e-05]`, which rich would cut to `star`
    table = Table(title=Text(f"{path}: {counted(len(entries), 'entry', 'entries')}, "
                             f"{human_size(sum(e.size for e in entries))}"))
    for column in ("kind", "key", "size", "produced by", "created (UTC)", "last used"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for e in entries:
        created = (e.created_at or "-").replace("T", " ")[:16]
        table.add_row(*map(Text, (e.kind, e.key[:12], human_size(e.size), e.what, created, _age(now, e.last_used))))
    return table


def _leftover_lines(items: list[Item]) -> list[str]:
    from harness.cache.inventory import ASIDE, LIVE, RESUMABLE, STALE

    lines = []
    resumable = sum(1 for item in items if item.state == STALE and item.what.startswith(RESUMABLE))
    partials = (f"; {counted(resumable, 'partial encode')} the next run of the same key resumes"
                if resumable else "")
    for state, what, fate in ((STALE, f"left by dead processes (work folders, interrupted writes{partials})",
                               "`drbench cache prune` removes them"),
                              (ASIDE, "damaged entries moved aside", "`drbench cache prune` removes them"),
                              (LIVE, "writes in progress (live processes, or another host's)", "left alone")):
        found = [item for item in items if item.state == state]
        if found:
            lines.append(f"{what}: {len(found)}, {human_size(sum(i.size for i in found))}; {fate}")
    return lines


def _as_json(item: Item) -> dict[str, Any]:
    used = None if item.last_used is None else datetime.fromtimestamp(item.last_used, timezone.utc)
    return {"kind": item.kind, "key": item.key, "state": item.state, "paths": [str(p) for p in item.paths],
            "size": item.size, "what": item.what or None, "produced_by": item.produced_by or None,
            "created_at": item.created_at, "last_used": used.isoformat(timespec="seconds") if used else None}


@app.command("verify")
def verify(cache_dir: str | None = CacheDirOpt, recipe: Path | None = RecipeOpt) -> None:
    """Hash every entry against its manifest; exit 1 if any is damaged. Changes nothing."""
    from harness.cache import inventory as inv

    try:
        path = _cache_dir(cache_dir, recipe)
        root = inv.cache_root(path)
        if root is None:
            _say(f"{path}: no cache folder (nothing to verify)")
            return
        items = inv.inventory(root)
        start = time.perf_counter()
        with ExitStack() as stack:
            verdict = inv.verify(items, _progress(stack, "verifying cache", items))
    except DrbenchError as exc:
        raise fail(exc) from None
    for item, reason in verdict.damaged:
        _say(f"cache: {item.label} is damaged ({reason})")
    summary = (f"{path}: {counted(verdict.checked, 'entry', 'entries')} checked in {time.perf_counter() - start:.1f}s, "
               f"{human_size(verdict.bytes_hashed)} hashed, {len(verdict.damaged)} damaged")
    _say(summary + (f"; {_HEAL}" if verdict.damaged else ""))
    if verdict.damaged:
        raise typer.Exit(1)


def _progress(stack: ExitStack, label: str, items: list[Item]) -> Advance:
    """A byte-count bar on a terminal; nothing in logs and pipes."""
    from harness.cache.inventory import ENTRY

    if not err.is_terminal:
        return lambda _: None
    from harness.progress import StageProgress

    progress = stack.enter_context(StageProgress(err))
    return stack.enter_context(progress.task(label, sum(i.size for i in items if i.state == ENTRY), "B"))


@app.command("prune")
def prune(cache_dir: str | None = CacheDirOpt, recipe: Path | None = RecipeOpt,
          older_than: float | None = typer.Option(
              None, "--older-than", metavar="DAYS", min=0,
              help="Also entries not used for DAYS days (last use: the mtime of the manifest, or for "
                   "embeddings the json, touched on every use)."),
          unreferenced: bool = typer.Option(
              False, "--unreferenced",
              help="Also trained models no run in --store uses. Embeddings and mined negatives belong to no "
                   "run, so this leaves them. With --older-than, an entry must match both."),
          stores: list[str] = typer.Option(
              [], "--store", envvar=STORE_ENV,
              help="Results store whose runs keep their models (repeat for several); needed by --unreferenced."),
          damaged: bool = typer.Option(False, "--damaged", help="Also entries `verify` finds damaged (hashes all)."),
          dry_run: bool = typer.Option(False, "--dry-run", help="List what would go and the bytes freed; "
                                                                "remove nothing.")) -> None:
    """Remove what dead processes left and damaged entries moved aside; with options, more.

    What dead processes left includes a killed encode's partial corpus embeddings, which the next
    run of the same recipe would have resumed: pruning frees the space, and that run starts the
    encode again from row 0. --older-than, --unreferenced and --damaged also remove old,
    unreferenced or damaged entries. A write in progress is never removed.
    """
    from harness.cache import inventory as inv
    from harness.cache.prune import plan_prune

    if unreferenced and not stores:
        raise fail("--unreferenced needs the results store whose runs keep their models: pass --store FILE "
                   "(or set $DRBENCH_STORE)")
    try:
        referenced = _referenced(stores) if unreferenced else None
        path = _cache_dir(cache_dir, recipe)
        root = inv.cache_root(path)
        if root is None:
            _say(f"{path}: no cache folder (nothing to prune)")
            return
        now = time.time()
        items = inv.inventory(root, now)
        with ExitStack() as stack:
            broken = inv.verify(items, _progress(stack, "verifying cache", items)).damaged if damaged else []
        plan = plan_prune(items, now=now, older_than_days=older_than, referenced=referenced, damaged=broken)
        gone = [item for item, why in plan if _remove(item, why, root, dry_run)]
    except DrbenchError as exc:
        raise fail(exc) from None
    live = sum(1 for item in items if item.state == inv.LIVE)
    _say(f"{path}: {'would free' if dry_run else 'freed'} {human_size(sum(i.size for i in gone))} "
         f"in {counted(len(gone), 'item')}" + (f"; left {counted(live, 'write')} in progress alone" if live else ""))


def _remove(item: Item, why: str, root: Path, dry_run: bool) -> bool:
    """Remove `item` (unless `dry_run`) and say so; False when another process took it first."""
    from harness.cache.prune import remove

    if not dry_run and not remove(item):
        return False
    _say(f"{'would remove' if dry_run else 'removed'} {item.paths[0].relative_to(root)} "
         f"({human_size(item.size)}): {why}")
    return True


def _referenced(stores: list[str]) -> set[str]:
    from harness.cache.prune import referenced_models
    from harness.store import list_runs

    keys: set[str] = set()
    for store in stores:
        db = open_results(store)
        try:
            keys |= referenced_models(list_runs(db))
        finally:
            db.close()
    return keys


def human_size(size: float) -> str:
    """Bytes for people: `512 B`, `1.5 KiB`, `3.2 GiB`."""
    if size < 1024:
        return f"{size:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} TiB"


def _age(now: float, then: float | None) -> str:
    if then is None:
        return "-"
    seconds = max(now - then, 0.0)
    for unit, length in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds / length:.0f} {unit} ago"
    return "just now"
