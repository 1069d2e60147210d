"""What a cache folder holds and whether it is intact: the library of `drbench cache ls` and
`verify` (`prune` is :mod:`harness.cache.prune`).

Under a cache folder (a recipe's `[experiment] cache_dir`):

* `models/<key>/`, `negatives/<key>/`, `exports/<key>/`: folder entries (:mod:`harness.cache.entries`); the
  mtime of their `manifest.json` is their last use (`Entries.get` touches it). Beside them,
  work folders `<key>.tmp-<host>-<pid>-<hex>/` (legacy `<key>.partial/`) and `.damaged/`.
* `embeddings/<key[:2]>/<key>.npy` + `<key>.json` (:mod:`harness.model.embedding_cache`); the
  json's mtime is the last use (`EmbeddingCache.load` touches it). Beside the shards, partial
  encodes in work folders `<key>.tmp-<host>-<pid>-<hex>/` (:mod:`harness.cache.partial`), told
  live or dead by their pid as the other kinds' are, and `.damaged/`.

Listing hashes nothing. Checking applies the rules loading applies (:func:`~harness.cache.manifest.damage`,
:func:`~harness.cache.arrays.entry_damage`), but hashes every listed byte afresh, not through the
per-process memo: a check that trusts a memo checks nothing.
Nothing here imports torch.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from harness.cache.arrays import entry_damage
from harness.cache.entries import ASIDE as ASIDE_DIR  # the folder damaged entries are moved to
from harness.cache.entries import Entries
from harness.cache.manifest import MANIFEST, damage, read_manifest
from harness.cache.partial import partial_progress
from harness.errors import CacheError

FOLDER_KINDS = ("models", "negatives", "exports")
KINDS = (*FOLDER_KINDS, "embeddings")
META = "drbench.json"  # a trained model's own record (harness.train.artifacts.META)
# An embedding .npy without its .json, or a temp file, younger than this may be a write in
# progress (EmbeddingCache.save renames the .npy first, hashes it, then writes the json). Such
# files name no process; encodes, which take long, work in folders that do (see above).
WRITE_GRACE_SECONDS = 24 * 3600

ENTRY, STALE, ASIDE, LIVE = "entry", "stale", "aside", "in progress"
RESUMABLE = "resumable encode"  # how a partial encode that records its rows done is described
KEY = re.compile(r"[0-9a-f]{64}")  # a cache key: sha256 hex

Advance = Callable[[int], None]


@dataclass(frozen=True)
class Item:
    """One thing in the cache: a published entry (`state` ENTRY) or a leftover beside the
    entries: a work folder of a dead process or an interrupted write (STALE), a damaged entry
    moved aside (ASIDE), or a write in progress (LIVE). `paths`: what removing it deletes."""

    kind: str
    key: str
    paths: tuple[Path, ...]
    size: int
    state: str = ENTRY
    what: str = ""
    created_at: str | None = None
    last_used: float | None = None
    produced_by: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """`models/<key>`, as the pipeline's log lines name an entry."""
        return f"{self.kind}/{self.key}"


@dataclass(frozen=True)
class Verdict:
    """What :func:`verify` found: how many entries it checked, the damaged ones and why."""

    checked: int
    damaged: list[tuple[Item, str]]
    bytes_hashed: int


def cache_root(path: Path) -> Path | None:
    """`path` when it is a cache folder, None when nothing was cached there yet.

    A file at `path` is a `CacheError`: pointing at the wrong thing must not read as "empty".
    """
    if path.exists() and not path.is_dir():
        raise CacheError(f"{path} is a file, not a cache folder; pass the folder drbench run caches "
                         "into (a recipe's [experiment] cache_dir, default .drbench_cache)")
    return path if path.is_dir() else None


def inventory(cache: Path, now: float | None = None) -> list[Item]:
    """Every entry and leftover under `cache`, by kind then name; hashes nothing.

    >>> inventory(Path("/nonexistent"))
    []
    """
    now = time.time() if now is None else now
    items: list[Item] = []
    for kind in FOLDER_KINDS:
        items += _folder_items(cache / kind)
    return items + _embedding_items(cache / "embeddings", now)


def _folder_items(root: Path) -> list[Item]:
    if not root.is_dir():
        return []
    stale = set(Entries(root, log=lambda _: None).stale())
    items = []
    for path in sorted(root.iterdir()):
        if KEY.fullmatch(path.name) and path.is_dir():
            items.append(_folder_entry(root.name, path))
        else:
            items += _work_leftovers(path, stale)
    return items


def _work_leftovers(path: Path, stale: set[Path], what: Callable[[Path], str] = lambda _: "") -> list[Item]:
    """What `path`, beside a kind's entries, leaves: the entries moved aside in `.damaged/`, or a
    work folder (`<key>.tmp-<host>-<pid>-<hex>`, legacy `<key>.partial`), a dead process's when in
    `stale`; `what` describes a work folder."""
    kind = path.parent.name
    if path.name == ASIDE_DIR and path.is_dir():
        return [_leftover(kind, p, ASIDE) for p in sorted(path.iterdir())]
    if KEY.match(path.name) and not KEY.fullmatch(path.name) and path.is_dir():
        return [_leftover(kind, path, STALE if path in stale else LIVE, what(path))]
    return []


def _folder_entry(kind: str, path: Path) -> Item:
    record = read_manifest(path) or {}
    produced = record.get("produced_by") if isinstance(record.get("produced_by"), dict) else {}
    if kind == "models":
        produced = _json(path / META) or produced
    manifest = path / MANIFEST
    used = _mtime(manifest) or _mtime(path)
    return Item(kind, path.name, (path,), _tree_size(path), ENTRY, describe(kind, produced),
                record.get("created_at"), used, produced)


def _leftover(kind: str, path: Path, state: str, what: str = "") -> Item:
    key = path.name[:64] if KEY.match(path.name) else ""
    return Item(kind, key, (path,), _tree_size(path), state, what, last_used=_mtime(path))


def _embedding_items(root: Path, now: float) -> list[Item]:
    if not root.is_dir():
        return []
    items = _encode_leftovers(root)
    for shard in sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"[0-9a-f]{2}", p.name)):
        names = sorted(p.name for p in shard.iterdir())
        for key in sorted({n[:64] for n in names if KEY.match(n) and n[64:] in (".npy", ".json")}):
            items.append(_embedding_entry(key, shard / f"{key}.npy", shard / f"{key}.json", now))
        for name in names:  # `.<key>.npy.<random>.tmp`: EmbeddingCache's atomic writes
            if name.startswith(".") and name.endswith(".tmp") and KEY.match(name[1:]):
                temp = shard / name
                young = now - (_mtime(temp) or 0.0) < WRITE_GRACE_SECONDS
                items.append(Item("embeddings", name[1:65], (temp,), _size(temp), LIVE if young else STALE,
                                  last_used=_mtime(temp)))
    return items


def _encode_leftovers(root: Path) -> list[Item]:
    """Partial encodes (:mod:`harness.cache.partial`), `<key>.tmp-<host>-<pid>-<hex>/` beside the
    shards: a dead process's is STALE, resumable or not (the next run of its key resumes it; prune
    removes it), a live one's LIVE; and what `.damaged/` holds."""
    stale = set(Entries(root, log=lambda _: None).stale())
    return [item for path in sorted(root.iterdir()) for item in _work_leftovers(path, stale, _partial_encode)]


def _partial_encode(folder: Path) -> str:
    progress = partial_progress(folder)
    return f"{RESUMABLE}, {progress[0]:,} of {progress[1]:,} rows" if progress else "partial encode"


def _embedding_entry(key: str, npy: Path, meta_path: Path, now: float) -> Item:
    size = _size(npy) + _size(meta_path)
    if not meta_path.exists() and now - (_mtime(npy) or 0.0) < WRITE_GRACE_SECONDS:
        return Item("embeddings", key, (npy, meta_path), size, LIVE, last_used=_mtime(npy))
    record = _json(meta_path) or {}
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    return Item("embeddings", key, (npy, meta_path), size, ENTRY, describe("embeddings", meta),
                record.get("created_at"), _mtime(meta_path) or _mtime(npy), meta)


def describe(kind: str, produced_by: dict[str, Any]) -> str:
    """What produced an entry, in a few words.

    >>> describe("models", {"variant": "star", "kind": "star", "steps": 40})
    'star (star), 40 steps'
    >>> describe("negatives", {"source": "bm25", "depth": 200})
    'bm25, depth 200'
    >>> describe("exports", {"model": "minilm", "backend": "openvino", "precision": "int8"})
    'minilm for openvino int8'
    >>> describe("embeddings", {"model": "minilm", "docs": "beir/scifact"})
    'minilm on beir/scifact'
    """
    get = lambda name: produced_by.get(name, "?")  # noqa: E731
    if kind == "models":
        steps = f", {produced_by['steps']} steps" if "steps" in produced_by else ""
        return f"{get('variant')} ({get('kind')}){steps}"
    if kind == "negatives":
        return f"{get('source')}, depth {get('depth')}"
    if kind == "exports":
        return f"{get('model')} for {get('backend')} {get('precision')}"
    return f"{get('model')} on {get('docs')}"


def check(item: Item, advance: Advance = lambda _: None) -> tuple[str | None, int]:
    """(why `item` cannot be trusted or None, bytes hashed). Sizes first (free), then every
    listed byte is hashed; the phrases are the ones the pipeline logs when it rebuilds."""
    hashed = [0]

    def counted(n: int) -> None:
        hashed[0] += n
        advance(n)

    if item.kind == "embeddings":
        reason = entry_damage(*item.paths, fresh=True, advance=counted)
    else:
        reason = damage(item.paths[0], item.key, fresh=True, advance=counted)
    return reason, hashed[0]


def verify(items: Iterable[Item], advance: Advance = lambda _: None) -> Verdict:
    """Check every published entry in `items`; modifies nothing. `advance(n)` per n bytes hashed."""
    entries = [item for item in items if item.state == ENTRY]
    damaged, hashed = [], 0
    for item in entries:
        reason, count = check(item, advance)
        hashed += count
        if reason is not None:
            damaged.append((item, reason))
    return Verdict(len(entries), damaged, hashed)


def _tree_size(path: Path) -> int:
    if not path.is_dir():
        return _size(path)
    return sum(_size(p) for p in path.rglob("*") if not p.is_dir())


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:  # gone meanwhile (a concurrent run or prune)
        return 0


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
