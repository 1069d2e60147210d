"""Which ir_datasets ids exist, and which source archives a collection needs.

ir_datasets keeps download locations in `Download` objects nested inside a dataset's docs,
queries and qrels handlers; walking those (and only those) finds every archive a collection
reads, without hard-coding ir_datasets' layout. ir_datasets is imported inside functions only.
"""

from __future__ import annotations

import difflib
import types
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from harness.errors import DataError

_MAX_DEPTH = 12  # ir_datasets nests Download objects about 4 levels deep; this leaves headroom
_ATOMS = (str, bytes, int, float, bool, type(None), Path, type, types.ModuleType,
          types.FunctionType, types.BuiltinFunctionType, types.MethodType)

Source = Literal["cached", "mirror", "download", "local"]  # local: a file a recipe declares


@dataclass(frozen=True)
class Archive:
    """One file a dataset needs under IR_DATASETS_HOME.

    ``relpath`` is relative to IR_DATASETS_HOME (posix separators), ``url`` is the first
    download URL ir_datasets knows, ``fallback_urls`` the others (ir_datasets tries them in order).
    """

    relpath: str
    path: Path
    url: str | None
    fallback_urls: tuple[str, ...] = ()


class ArchiveRecord(NamedTuple):
    """Provenance of one archive: where it came from and its sha256.

    ``sha256`` is None only for source "download" until the archive has been fetched
    (``load_collection`` fills it in).
    """

    relpath: str
    sha256: str | None
    source: Source


def known_dataset_ids() -> list[str]:
    """All dataset ids registered with ir_datasets, sorted."""
    import ir_datasets

    return sorted(ir_datasets.registry)


def check_dataset_id(dataset_id: str) -> None:
    """Raise DataError unless ``dataset_id`` is an ir_datasets id, with a "did you mean"."""
    import ir_datasets

    known = known_dataset_ids()
    if dataset_id in known:
        return
    # clirmatrix ids are registered as regex patterns; registry[id] would build the dataset,
    # which downloads metadata, so match the patterns themselves.
    if any(p.match(dataset_id) for p, _ in getattr(ir_datasets.registry, "_patterns", [])):
        return
    close = difflib.get_close_matches(dataset_id, known, n=3, cutoff=0.6)
    hint = (f"did you mean {' or '.join(repr(c) for c in close)}?" if close
            else f"see https://ir-datasets.com for the {len(known)} known ids")
    raise DataError(f"unknown collection {dataset_id!r}: not an ir_datasets id; {hint}")


def require_parts(dataset: Any, dataset_id: str, with_docs: bool = True) -> None:
    """Raise DataError unless the ir_datasets `dataset` has queries, qrels and (`with_docs`) docs."""
    kinds = (["docs"] if with_docs else []) + ["queries", "qrels"]
    absent = [kind for kind in kinds if not getattr(dataset, f"has_{kind}")()]
    if absent:
        raise DataError(f"collection {dataset_id!r} has no {' or '.join(absent)} in ir_datasets; "
                        "pick a split that has all three (e.g. beir/scifact/test, not beir/scifact)")


def check_dataset_parts(dataset_id: str) -> None:
    """`require_parts` from ir_datasets' registry alone (no archive is read), for `validate`.

    >>> check_dataset_parts("beir/scifact")
    Traceback (most recent call last):
    harness.errors.DataError: collection 'beir/scifact' has no qrels in ir_datasets; pick a split that has all three (e.g. beir/scifact/test, not beir/scifact)
    """
    import ir_datasets

    if dataset_id in known_dataset_ids():  # a pattern id (clirmatrix) would fetch metadata to build
        require_parts(ir_datasets.registry[dataset_id], dataset_id)


def archives_for(dataset_id: str) -> list[Archive]:
    """The archives the docs, queries and qrels of ``dataset_id`` are read from.

    Found by walking the ir_datasets handler objects for Download instances. Only the docs,
    queries and qrels handlers are walked: drbench never reads scoreddocs or docpairs, whose
    archives can be many GB. Downloads without a cache path are skipped: ir_datasets streams
    them from the network on every use, so there is nothing to cache or mirror.

    >>> [a.relpath for a in archives_for("beir/scifact/test")]
    ['beir/scifact/source.zip']
    """
    import ir_datasets
    from ir_datasets.util.download import Download

    check_dataset_id(dataset_id)
    try:
        dataset = ir_datasets.load(dataset_id)
    except Exception as exc:  # pattern ids (clirmatrix) fetch metadata while being built
        raise DataError(f"ir_datasets cannot set up {dataset_id!r} ({type(exc).__name__}); "
                        "check the network or pick another collection") from exc
    roots = [getattr(dataset, f"{kind}_handler")() for kind in ("docs", "queries", "qrels")
             if getattr(dataset, f"has_{kind}")()]
    home = Path(ir_datasets.util.home_path())
    archives: dict[str, Archive] = {}
    for download in _find_instances(roots, Download):
        if download._cache_path is None:
            continue
        path = Path(download._cache_path)
        try:
            relpath = path.relative_to(home).as_posix()
        except ValueError:  # not under the home: keep it absolute; a mirror cannot supply it
            relpath = path.as_posix()
        urls = [m.url for m in download.mirrors if isinstance(getattr(m, "url", None), str)]
        archives.setdefault(relpath, Archive(relpath, path, urls[0] if urls else None,
                                             tuple(urls[1:])))
    return list(archives.values())


def _find_instances(roots: list[Any], cls: type) -> list[Any]:
    """Breadth-first search of attributes, lists, tuples and dicts for instances of ``cls``."""
    found: list[Any] = []
    seen: set[int] = set()
    queue = deque((root, 0) for root in roots)
    while queue:
        obj, depth = queue.popleft()
        if id(obj) in seen or depth > _MAX_DEPTH or isinstance(obj, _ATOMS):
            continue
        seen.add(id(obj))
        if isinstance(obj, cls):
            found.append(obj)
            continue
        if isinstance(obj, dict):
            children = list(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            children = list(obj)
        else:
            try:
                children = list(vars(obj).values())
            except TypeError:  # no __dict__ (slots, C objects): nothing to walk
                continue
        queue.extend((child, depth + 1) for child in children)
    return found
