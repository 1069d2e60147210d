"""Is a collection on disk, and if not, where can it come from?

Every collection is an ir_datasets id. Its source archives live under IR_DATASETS_HOME. Each is
taken from there ("cached"), copied from an offline mirror laid out the same way and checked
against ``manifest.toml`` ("mirror"), or left for ir_datasets to download ("download"), but only
after a quick network probe, so an offline machine fails in seconds with a useful message
instead of retrying for minutes. The mirror is only read, never written (it may be read-only).

ir_datasets is imported inside functions only, so importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tomllib

# Re-exported: callers and tests import the id checks from here too.
from harness.data.archives import (Archive, ArchiveRecord, archives_for, check_dataset_id,  # noqa: F401
                                   known_dataset_ids)
from harness.errors import DataError
from harness.files import chunks, replacing, sha256_file

MIRROR_ENV = "DRBENCH_MIRROR"
MANIFEST_PATH = Path(__file__).with_name("manifest.toml")
_MIRROR_HINT = ("pass --mirror DIR or set DRBENCH_MIRROR to a folder laid out like IR_DATASETS_HOME "
                "(e.g. ../shared/data/ir_datasets)")

log = logging.getLogger(__name__)

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
        where, path = locate(archive, mirror)
        if where == "cached":
            decided[archive.relpath] = ArchiveRecord(archive.relpath, cached_sha256(path), "cached")
        elif where == "mirror":
            digest = _copy_verified(path, archive, manifest.get(archive.relpath))
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


def locate(archive: Archive, mirror: Path | None) -> tuple[str, Path | None]:
    """Where an archive is to be had, in the order drbench takes it: already in IR_DATASETS_HOME
    ("cached"), in the `mirror` ("mirror"), or neither ("missing", a download)."""
    if archive.path.is_file():
        return "cached", archive.path
    source = mirror / archive.relpath if mirror is not None else None
    if source is not None and source.is_file():
        return "mirror", source
    return "missing", None


def cached_sha256(path: Path, *, remember: bool = True) -> str:
    """sha256 of ``path``, reusing the ``<path>.sha256`` sidecar while size and mtime match
    (and writing one when it hashed, unless ``remember`` is False: ``drbench plan`` writes nothing)."""
    stat = path.stat()
    key = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    sidecar = path.with_name(path.name + ".sha256")
    try:
        saved = json.loads(sidecar.read_text())
        if {k: saved.get(k) for k in key} == key and isinstance(saved.get("sha256"), str):
            return saved["sha256"]
    except (OSError, ValueError):
        pass  # no sidecar yet, or a damaged one: recompute
    digest = sha256_file(path)
    if remember:
        _write_sidecar(path, digest)
    return digest


def _write_sidecar(path: Path, digest: str) -> None:
    stat = path.stat()
    try:
        path.with_name(path.name + ".sha256").write_text(json.dumps(
            {"sha256": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}) + "\n")
    except OSError as exc:  # a read-only home still works, it just rehashes next time
        log.debug("cannot write sha256 sidecar for %s: %s", path, exc)


def _copy_verified(source: Path, archive: Archive, expected: dict[str, Any] | None) -> str:
    """Copy ``source`` to ``archive.path`` via a temp file in the same folder; return its sha256.

    The digest is taken from the bytes as written, so what is verified is what lands in the
    home. On any failure the temp file is removed: a half-copied archive would otherwise be
    taken by ir_datasets as complete, since it checks only that the path exists.
    """
    archive.path.parent.mkdir(parents=True, exist_ok=True)
    # 0o644: the archive should read like a download
    with replacing(archive.path, suffix=".part", permissions=0o644) as tmp:
        digest = hashlib.sha256()
        with source.open("rb") as src, open(tmp, "wb") as dst:
            for chunk in chunks(src):
                digest.update(chunk)
                dst.write(chunk)
        actual = digest.hexdigest()
        if expected is not None and actual != expected["sha256"]:
            raise DataError(
                f"mirror archive {source} ({source.stat().st_size} bytes) has sha256 {actual} but "
                f"harness/data/manifest.toml expects {expected['sha256']} ({expected['size']} bytes) "
                f"for {archive.relpath}; replace it with a good copy or drop it from the mirror")
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
