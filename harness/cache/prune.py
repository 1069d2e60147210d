"""What `drbench cache prune` removes, and removing it without racing a run.

Always the leftovers :func:`harness.cache.inventory.inventory` finds (work folders of dead
processes, a dead encode's resumable partial included, interrupted writes, damaged entries moved
aside): pruning is asked for to free space, and a partial is only worth its bytes to a rerun that
may never come; with filters, old or unreferenced
entries; on request, damaged ones. A write in progress never. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path, PurePath
from typing import Any

from harness.cache.entries import Entries
from harness.cache.inventory import ASIDE, ASIDE_DIR, ENTRY, KEY, STALE, Item
from harness.errors import CacheError


def referenced_models(runs: Iterable[dict[str, Any]]) -> set[str]:
    """Keys of the trained models that stored runs (rows of `harness.store.list_runs`) use.

    A run's `model.trained.key` names its model; its encoder folders (`path`, `query_path`)
    count too when they are cache entries, because ADORE's documents are encoded by the model
    it trained against, which has a key of its own.

    >>> sorted(referenced_models([{"model": {"trained": {"key": "k1"}, "path": "/c/models/" + "a" * 64}}]))
    ['aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'k1']
    """
    keys: set[str] = set()
    for run in runs:
        model = run.get("model")
        if not isinstance(model, dict):
            continue
        trained = model.get("trained")
        if isinstance(trained, dict) and isinstance(trained.get("key"), str):
            keys.add(trained["key"])
        for name in ("path", "query_path"):
            folder = PurePath(str(model.get(name) or ""))
            if folder.parent.name == "models" and KEY.fullmatch(folder.name):
                keys.add(folder.name)
    return keys


def plan_prune(items: Iterable[Item], *, now: float, older_than_days: float | None = None,
               referenced: set[str] | None = None,
               damaged: Iterable[tuple[Item, str]] = ()) -> list[tuple[Item, str]]:
    """What `drbench cache prune` removes, each with why.

    Always: work folders of dead processes, interrupted writes and entries moved aside. Entries
    that match every filter given (`older_than_days`: not used for that long; `referenced`:
    models whose key is not in it; embeddings and negatives belong to no run, so this filter
    keeps them), and the `damaged` ones. Never a write in progress.
    """
    broken = {item.paths: reason for item, reason in damaged}
    plan = []
    for item in items:
        if item.state == STALE:
            plan.append((item, "left by a dead process"))
        elif item.state == ASIDE:
            plan.append((item, "damaged, moved aside"))
        elif item.state == ENTRY and item.paths in broken:
            plan.append((item, f"damaged ({broken[item.paths]})"))
        elif item.state == ENTRY and (why := _filtered(item, now, older_than_days, referenced)):
            plan.append((item, why))
    return plan


def _filtered(item: Item, now: float, older_than_days: float | None, referenced: set[str] | None) -> str | None:
    if older_than_days is None and referenced is None:
        return None
    reasons = []
    if older_than_days is not None:
        idle_days = (now - (item.last_used or 0.0)) / 86400
        if idle_days < older_than_days:
            return None
        reasons.append(f"not used for {idle_days:.0f} days")
    if referenced is not None:
        if item.kind != "models" or item.key in referenced:
            return None
        reasons.append("no stored run uses it")
    return "; ".join(reasons)


def remove(item: Item) -> bool:
    """Delete `item`; False when it was already gone (another prune or run took it first).

    A folder is first renamed into `.damaged/` and then deleted, so nobody sees it half
    deleted, and a run adopting a stale work folder at the same moment gets all of it or none.
    """
    first = item.paths[0]
    if item.kind == "embeddings" and not first.is_dir():  # an entry's files; a partial encode is a folder
        # The json first: without it nothing vouches for the .npy any more.
        gone = [_unlink(path) for path in reversed(item.paths)]
        return any(gone)
    root = first.parent.parent if first.parent.name == ASIDE_DIR else first.parent
    return Entries(root, lambda _: None).discard(first)


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise CacheError(f"cannot remove {path}: {exc.strerror or exc}") from exc
    return True
