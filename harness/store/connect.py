"""Open the results store: writable (created and migrated), read-only, or in memory.

The store is one SQLite file in WAL mode, so the leaderboard can read while a run writes.
Light on purpose: the leaderboard imports this, so nothing heavy is imported here.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlite_utils import Database

from harness.errors import StoreError
from harness.store.schema import READABLE_FROM, check_not_newer, migrate, schema_version

# Runs from parallel jobs share one store; a 300k-row write holds the lock for seconds.
_BUSY_TIMEOUT_MS = 60_000
# SQLite's primary result codes for "this process may not create or write a file here": the
# ones a read-only file or folder raises, and the only ones that send a reader on to immutable=1.
_SQLITE_READONLY, _SQLITE_CANTOPEN = 8, 14


def open_store(path: str | Path, *, create: bool = True) -> Database:
    """Open (and migrate) the results store at `path` for writing, creating it unless `create` is False.

    Example: ``db = open_store("results/drbench.db")``
    """
    path = Path(path)
    if not path.exists():
        if not create:
            raise StoreError(
                f"no results store at {path}; run drbench run RECIPE first or pass --store")
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        db = Database(path)
        try:
            _configure(db)
            db.enable_wal()
            migrate(db, where=f"results store {path}")
        except BaseException:
            db.close()
            raise
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open results store {path}: {exc}; "
                         "check the path or pass another --store") from exc
    return db


def open_store_readonly(path: str | Path) -> Database:
    """Open an existing results store for reading: never creates it, never writes through it.

    Works on a store whose file is read-only and on one inside a read-only folder (a published
    share, CI artifacts); the connection refuses writes (``PRAGMA query_only``). A store at an
    older schema version that the read functions still understand (``READABLE_FROM`` or later) is
    read as it is, not migrated. One too old for them is upgraded first where this process may
    write it, the one write this function can make, so that upgrading drbench keeps old local
    stores readable as before; where it may not, that is a one-line StoreError saying to open it
    once with write access.

    Example: ``db = open_store_readonly("published/drbench.db")``
    """
    path = Path(path)
    if path.is_dir():
        raise StoreError(f"results store {path} is a folder; pass the store file, e.g. {path / 'drbench.db'}")
    if not path.exists():
        raise StoreError(f"no results store at {path}; run drbench run RECIPE first or pass --store")
    db = _read_only_database(path)
    version = schema_version(db)
    if version >= READABLE_FROM:
        try:
            check_not_newer(db, f"results store {path}")
        except StoreError:
            db.close()
            raise
        return db
    db.close()
    if version == 0:
        raise StoreError(f"{path} is not a drbench results store (its schema version is 0); "
                         "pass --store the file that drbench run wrote")
    try:
        open_store(path, create=False).close()
    except StoreError as exc:
        raise StoreError(
            f"results store {path} has schema version {version}, older than the {READABLE_FROM} this "
            f"drbench reads, and cannot be upgraded here ({exc.__cause__ or exc}); run any drbench "
            "command on it once with write access to it and its folder") from exc
    return _read_only_database(path)


def _read_only_database(path: Path) -> Database:
    try:
        db = Database(_connect_read_only(path))
        _configure(db)
        # Belt and braces: the read path must not write even where SQLite opened the file
        # read-write, so a stray write fails loudly instead of changing a published store.
        db.execute("PRAGMA query_only = ON")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open results store {path}: {exc}; "
                         "check the path or pass another --store") from exc
    return db


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that reads `path` and writes nothing, by the gentlest mode that opens it.

    1. A file we may write: ``mode=rw`` (the caller sets query_only). Not ``mode=ro`` first:
       a WAL reader creates the -wal/-shm files when they are missing, and only a connection
       that can write the database removes them on close, so ``mode=ro`` would leave two files
       beside the store after every read. Like any such connection, the last one to close
       checkpoints commits a crashed writer left in the WAL: the file changes, its data not.
    2. Otherwise, or if that is refused: ``mode=ro``. It sees every commit, the WAL's included,
       and takes the usual locks, so a concurrent writer is safe. It needs the -wal and -shm
       files to exist or be creatable; in a writable folder it creates them and leaves them
       (SQLite's, not ours to delete: a writer may open them at any moment).
    3. Only when that is refused for want of them (a read-only folder): ``immutable=1``. SQLite
       then takes no locks and ignores any WAL: right for a published share or an artifact
       nobody writes, but it would silently miss commits still sitting in a -wal file, so a
       non-empty -wal there is an error rather than a stale leaderboard.
    """
    uri = path.resolve().as_uri()  # percent-encodes '?', '#' and '%' in the path
    for mode in ("rw", "ro") if os.access(path, os.W_OK) else ("ro",):
        try:
            return _probe(f"{uri}?mode={mode}")
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF not in (_SQLITE_READONLY, _SQLITE_CANTOPEN):
                raise
            refused = exc
    wal = Path(f"{path}-wal")
    if wal.is_file() and wal.stat().st_size > 0:
        raise StoreError(
            f"results store {path} has commits in {wal.name} that were never checkpointed into it, "
            f"and SQLite cannot read them here ({refused}); copy {path.name} with {wal.name} to a "
            "writable folder and read it there, or open it once where it was written")
    return _probe(f"{uri}?mode=ro&immutable=1")


def _probe(uri: str) -> sqlite3.Connection:
    # connect() is lazy about the WAL: the first read is where a read-only folder fails.
    conn = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


def open_memory_store() -> Database:
    """A migrated in-memory store (tests, dry runs)."""
    db = Database(memory=True)
    _configure(db)
    migrate(db, where="in-memory store")
    return db


def _configure(db: Database) -> None:
    # Both are per-connection settings, so every open must set them (outside a transaction).
    # Neither writes the file, so read-only connections set them too.
    db.execute("PRAGMA foreign_keys = ON")
    db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
