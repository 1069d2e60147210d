"""On-disk cache of encoded collections, keyed by everything that changes the vectors.

Layout: ``root/<key[:2]>/<key>.npy`` plus ``<key>.json``, its manifest (key, size, sha256 of
the .npy bytes, shape, dtype, created_at, and the caller's meta: what produced it). A cache
entry is used only when its json exists and matches the .npy exactly (size first, then the
hash, computed once per process); anything else is logged, deleted and recomputed, never
trusted.

Matrices are memory-mapped both ways: an encoder writes rows straight into the file being
made (:meth:`EmbeddingCache.writer`), and :meth:`EmbeddingCache.load` maps it read-only, so a
corpus's vectors are in the page cache once, never copied into the process as well (8.8M
MS MARCO passages at 384 dims are 13.6 GB). The file being made lives in the encoding process's
work folder, `root/<key>.tmp-<host>-<pid>-<hex>/`, with the rows done recorded beside it, so an
encode killed at 90% resumes there, not at row 0 (:mod:`harness.cache.partial`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import signal
import tempfile  # the class docstring's example (a doctest) uses it
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from harness.cache.arrays import entry_damage
from harness.cache.entries import Entries
from harness.cache.manifest import sha256_file
from harness.cache.partial import Partial, Schedule
from harness.errors import CacheError
from harness.files import write_bytes_atomic

_KEY = re.compile(r"^[0-9a-f]{64}$")


def _canonical(value: Any) -> Any:
    if isinstance(value, PurePath):  # paths are common in key parts; keep them readable
        return str(value)
    raise TypeError(f"cache key part of type {type(value).__name__} is not JSON-serialisable")


class EmbeddingCache:
    """Content-addressed store of embedding matrices under `root`.

    >>> cache = EmbeddingCache(Path(tempfile.mkdtemp()))
    >>> key = cache.key(model="ab12...", docs="beir/scifact", max_length=256)
    >>> cache.load(key) is None
    True
    >>> _ = cache.save(key, np.eye(2, dtype=np.float32), {"docs": "beir/scifact"})
    >>> cache.load(key).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """

    def __init__(self, root: Path, log: Callable[[str], None] | None = None) -> None:
        self.root = Path(root)
        self.log = log or (lambda _: None)

    @staticmethod
    def key(**parts: Any) -> str:
        """sha256 of the canonical JSON of `parts` (sorted keys, no whitespace).

        Pass everything that changes the vectors: model fingerprint, docs id, max length,
        pooling, normalise, prefix, text format version.
        """
        text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          default=_canonical)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def paths(self, key: str) -> tuple[Path, Path]:
        """The ``(.npy, .json)`` paths of `key`."""
        if not _KEY.match(key):
            raise ValueError(f"cache key {key!r} is not a sha256 hex digest; "
                             "build it with EmbeddingCache.key")
        folder = self.root / key[:2]
        return folder / f"{key}.npy", folder / f"{key}.json"

    def load(self, key: str) -> np.ndarray | None:
        """The cached array, memory-mapped read-only, or None when absent or damaged (damaged
        files are deleted)."""
        npy, meta_path = self.paths(key)
        if not meta_path.is_file():
            # Absent, or a writer between its .npy and its json (save writes the json last): a
            # miss either way, and the writer's files are left alone.
            return None
        reason = entry_damage(npy, meta_path)
        if reason is None:
            try:
                array = np.load(npy, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError):
                reason = f"{npy.name} unreadable"
            else:
                _touch(meta_path)  # its mtime is the entry's last use (`drbench cache prune --older-than`)
                return array
        # A half-written or edited entry: recomputing is cheaper than a wrong benchmark.
        self.log(f"cache: {self.root.name}/{key} is damaged ({reason}); rebuilding")
        self._discard(key)
        return None

    def save(self, key: str, array: np.ndarray, meta: dict[str, Any]) -> Path:
        """Store `array` under `key` atomically; returns the .npy path.

        The .npy is written to a temp file and renamed first, the json last, so a crash at any
        point leaves either no entry or one that :meth:`load` rejects.
        """
        npy, meta_path = self.paths(key)
        try:
            return self._save(key, array, meta, npy, meta_path)
        except OSError as exc:  # a read-only or full cache folder: one line, not a traceback
            raise CacheError(f"cannot cache embeddings in {npy.parent}: {exc.strerror or exc}; check the cache "
                             "folder or pass another --cache-dir") from None

    @contextlib.contextmanager
    def writer(self, key: str, shape: tuple[int, int], meta: dict[str, Any],
               schedule: Schedule | None = None) -> Iterator[Partial]:
        """A :class:`~harness.cache.partial.Partial` whose float32 ``shape`` matrix (`.vectors`,
        memory-mapped onto a file in this process's work folder) is to be filled; when the block
        ends without an error it becomes the entry `key` (hashed, renamed, then its json written,
        as :meth:`save` does).

        With a `schedule`, the encode resumes a dead process's partial of the same key
        (`.done` rows are filled already) and records its rows after each group (`.commit`). An
        error, Ctrl-C or SIGTERM (raised as `SystemExit` while the block runs) keeps the partial
        for the next run when it recorded a group and removes it when not, saying which in one
        line; nothing is left that looks like a write in progress once this process is gone.

        A cache folder that cannot be written yields an in-memory matrix instead, and says so.
        """
        entries = Entries(self.root, self.log)
        try:
            partial = Partial.start(entries, key, shape, schedule, self.log)
        except (OSError, CacheError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            self.log(f"cache: cannot write in {self.root} ({reason}); these vectors are not cached")
            yield Partial.in_memory(shape)
            return
        try:
            with _sigterm_raises():
                yield partial
            self._publish(key, partial.finish(), shape, meta)
        except BaseException:
            partial.leave(entries.label(key), self.log)
            raise
        partial.remove()

    def _publish(self, key: str, tmp: Path, shape: tuple[int, int], meta: dict[str, Any]) -> None:
        """Make the filled temp file `tmp` the entry `key`: hash it, rename it, write its json last."""
        npy, meta_path = self.paths(key)
        try:
            npy.parent.mkdir(parents=True, exist_ok=True)
            with open(npy.parent / f".{key}.lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                meta_path.unlink(missing_ok=True)  # an old json must never vouch for new bytes
                with open(tmp, "rb+") as handle:
                    os.fsync(handle.fileno())
                size, digest = tmp.stat().st_size, sha256_file(tmp)
                os.replace(tmp, npy)
                self._write_manifest(key, meta_path, shape, np.dtype(np.float32), size, digest, meta)
        except OSError as exc:
            raise CacheError(f"cannot cache embeddings in {npy.parent}: {exc.strerror or exc}; check the cache "
                             "folder or pass another --cache-dir") from None

    def _save(self, key: str, array: np.ndarray, meta: dict[str, Any], npy: Path, meta_path: Path) -> Path:
        npy.parent.mkdir(parents=True, exist_ok=True)
        # One writer per key at a time (two runs encoding the same corpus): otherwise one's json
        # could end up beside the other's bytes.
        with open(npy.parent / f".{key}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            meta_path.unlink(missing_ok=True)  # an old json must never vouch for new bytes
            size, digest = write_bytes_atomic(npy, lambda handle: np.save(handle, array, allow_pickle=False))
            self._write_manifest(key, meta_path, array.shape, array.dtype, size, digest, meta)
        return npy

    @staticmethod
    def _write_manifest(key: str, meta_path: Path, shape: tuple[int, ...], dtype: np.dtype, size: int, digest: str,
                        meta: dict[str, Any]) -> None:
        record = {"key": key, "shape": list(shape), "dtype": dtype.str, "size": size, "sha256": digest,
                  "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "meta": meta}
        text = json.dumps(record, indent=2, sort_keys=True, default=_canonical)
        write_bytes_atomic(meta_path, lambda handle: handle.write(text.encode("utf-8")))

    def _discard(self, key: str) -> None:
        for path in self.paths(key):
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raised as `SystemExit(143)` inside the block, as Ctrl-C raises KeyboardInterrupt:
    without it the process dies on the spot and says nothing of the partial it leaves. Only the
    main thread can set a handler; elsewhere SIGTERM keeps its meaning (and a dead process's
    partial is still found, resumed or pruned by its pid)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass  # a read-only cache is still a cache
