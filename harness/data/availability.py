"""Is a collection on disk, and if not, where can it come from?

Every collection is an ir_datasets id. Its source archives live under IR_DATASETS_HOME. Each is
taken from there ("cached"), copied from an offline mirror laid out the same way and checked
against ``manifest.toml`` ("mirror"), or left for ir_datasets to download ("download"), but only
after a quick network probe, so an offline machine fails in seconds with a useful message
instead of retrying for minutes. The mirror is only read, never written (it may be read-only).

ir_datasets is imported inside functions only, so importing this module stays cheap.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
import types
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from harness.errors import DataError

MIRROR_ENV = "DRBENCH_MIRROR"
MANIFEST_PATH = Path(__file__).with_name("manifest.toml")
_MIRROR_HINT = ("pass --mirror DIR or set DRBENCH_MIRROR to a folder laid out like IR_DATASETS_HOME "
                "(e.g. ../shared/data/ir_datasets)")
_CHUNK = 1 << 20
_MAX_DEPTH = 12  # ir_datasets nests Download objects about 4 levels deep; this leaves headroom
_ATOMS = (str, bytes, int, float, bool, type(None), Path, type, types.ModuleType,
          types.FunctionType, types.BuiltinFunctionType, types.MethodType)

log = logging.getLogger(__name__)

Source = Literal["cached", "mirror", "download"]


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


def resolve_mirror(cli: str | None, recipe: str | None) -> Path | None:
    """Pick the mirror folder: ``--mirror`` beats $DRBENCH_MIRROR beats the recipe.

    Relative paths are taken from the current directory, so the recipe loader passes its
    value already resolved against the recipe file. Raises DataError for a non-directory.
    """
    for origin, value in (("--mirror", cli), (MIRROR_ENV, os.environ.get(MIRROR_ENV)),
                          ("recipe mirror", recipe)):
        if value:
            path = Path(value).expanduser()
            if not path.is_dir():
                raise DataError(f"{origin} {value!r} is not a directory; point it at a folder "
                                "laid out like IR_DATASETS_HOME (e.g. ../shared/data/ir_datasets)")
            return path
    return None


def load_manifest() -> dict[str, dict[str, Any]]:
    """``{relpath: {"sha256": str, "size": int}}`` from manifest.toml."""
    return tomllib.loads(MANIFEST_PATH.read_text())


def ensure_available(dataset_id: str, mirror: Path | None = None,
                     probe_timeout: float = 3.0) -> list[ArchiveRecord]:
    """Make sure every archive of ``dataset_id`` is cached, copyable or downloadable.

    Cached archives are hashed (the digest is kept in a ``<archive>.sha256`` sidecar keyed by
    size and mtime, so it is computed once). Mirror copies are verified against manifest.toml and
    moved into place atomically. For the rest the download host is probed; if no host answers
    within ``probe_timeout`` seconds, DataError says how to supply a mirror.
    """
    import ir_datasets

    manifest = load_manifest()
    decided: dict[str, ArchiveRecord] = {}
    missing: list[Archive] = []
    archives = archives_for(dataset_id)
    for archive in archives:
        source = mirror / archive.relpath if mirror is not None else None
        if archive.path.is_file():
            decided[archive.relpath] = ArchiveRecord(archive.relpath, cached_sha256(archive.path),
                                                     "cached")
        elif source is not None and source.is_file():
            digest = _copy_verified(source, archive, manifest.get(archive.relpath))
            decided[archive.relpath] = ArchiveRecord(archive.relpath, digest, "mirror")
        else:
            missing.append(archive)
    if missing:
        problem = _network_problem(missing, probe_timeout)
        if problem is not None:
            needs = ", ".join(a.relpath for a in missing)
            where = f", not in mirror {mirror}" if mirror is not None else ""
            raise DataError(f"collection {dataset_id!r} is not cached in "
                            f"{ir_datasets.util.home_path()} (needs {needs}{where}) and cannot be "
                            f"downloaded ({problem}); {_MIRROR_HINT}")
        for archive in missing:
            decided[archive.relpath] = ArchiveRecord(archive.relpath, None, "download")
    return [decided[archive.relpath] for archive in archives]


def cached_sha256(path: Path) -> str:
    """sha256 of ``path``, reusing the ``<path>.sha256`` sidecar while size and mtime match."""
    stat = path.stat()
    key = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    sidecar = path.with_name(path.name + ".sha256")
    try:
        saved = json.loads(sidecar.read_text())
        if {k: saved.get(k) for k in key} == key and isinstance(saved.get("sha256"), str):
            return saved["sha256"]
    except (OSError, ValueError):
        pass  # no sidecar yet, or a damaged one: recompute
    digest = _sha256_file(path)
    _write_sidecar(path, digest)
    return digest


def _write_sidecar(path: Path, digest: str) -> None:
    stat = path.stat()
    try:
        path.with_name(path.name + ".sha256").write_text(json.dumps(
            {"sha256": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}) + "\n")
    except OSError as exc:  # a read-only home still works, it just rehashes next time
        log.debug("cannot write sha256 sidecar for %s: %s", path, exc)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_verified(source: Path, archive: Archive, expected: dict[str, Any] | None) -> str:
    """Copy ``source`` to ``archive.path`` via a temp file in the same folder; return its sha256.

    The digest is taken from the bytes as written, so what is verified is what lands in the
    home. On any failure the temp file is removed: a half-copied archive would otherwise be
    taken by ir_datasets as complete, since it checks only that the path exists.
    """
    archive.path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=archive.path.parent, prefix=f".{archive.path.name}.",
                                    suffix=".part")
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it 0600; the archive should read like a download
        digest = hashlib.sha256()
        with source.open("rb") as src, os.fdopen(fd, "wb") as dst:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                dst.write(chunk)
        actual = digest.hexdigest()
        if expected is not None and actual != expected["sha256"]:
            raise DataError(
                f"mirror archive {source} ({source.stat().st_size} bytes) has sha256 {actual} but "
                f"harness/data/manifest.toml expects {expected['sha256']} ({expected['size']} bytes) "
                f"for {archive.relpath}; replace it with a good copy or drop it from the mirror")
        os.replace(tmp, archive.path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if expected is None:
        log.warning("%s is not in harness/data/manifest.toml: copied it from mirror %s unverified "
                    "(sha256 %s)", archive.relpath, source, actual)
    _write_sidecar(archive.path, actual)
    return actual


def _network_problem(archives: list[Archive], timeout: float) -> str | None:
    """None if every archive has a reachable download host, else why not (one line)."""
    targets: dict[Archive, list[tuple[str, int]]] = {}
    for archive in archives:
        urls = [u for u in (archive.url, *archive.fallback_urls) if u]
        targets[archive] = [t for t in map(_host_port, urls) if t is not None]
    failures = _probe_all({t for ts in targets.values() for t in ts}, timeout)
    for archive, hosts in targets.items():
        if not hosts:
            return f"ir_datasets knows no download URL for {archive.relpath}"
        if all(failures[h] is not None for h in hosts):
            host, port = hosts[0]
            return f"no network: cannot reach {host}:{port}: {failures[hosts[0]]}"
    return None


def _host_port(url: str) -> tuple[str, int] | None:
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    default = {"http": 80, "https": 443, "ftp": 21}.get(parts.scheme, 443)
    try:
        return parts.hostname, parts.port or default
    except ValueError:  # a malformed port in the URL
        return None


def _probe_all(targets: set[tuple[str, int]], timeout: float) -> dict[tuple[str, int], str | None]:
    """Try a TCP connection to each (host, port) at once; None means it connected.

    Each probe runs in a daemon thread because the DNS lookup inside create_connection does
    not honour ``timeout`` and can hang for tens of seconds on a machine without network.
    """
    results: dict[tuple[str, int], str | None] = {t: f"no answer within {timeout:g} s"
                                                  for t in targets}

    def probe(target: tuple[str, int]) -> None:
        try:
            socket.create_connection(target, timeout=timeout).close()
            results[target] = None
        except OSError as exc:
            results[target] = str(exc) or type(exc).__name__

    threads = [threading.Thread(target=probe, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout + 0.5
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return dict(results)
