"""Files written whole or not at all, and files hashed in chunks: the two file rules every cache,
store and data module shares.

A file another process may read (a cache manifest, an embedding matrix, a checkpoint, a copied
archive, a report) is written to a temp file in its own folder, so the rename is atomic and never
a copy, and renamed onto its name only once complete; on any failure the temp file is removed,
never left to be taken for the real one. A folder of such files (an exported collection) is filled
the same way: in a temp folder beside it, renamed into place whole. A file is hashed in 1 MiB
chunks, so a multi-gigabyte archive or model never sits in memory.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO

CHUNK = 1 << 20


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def replacing(path: Path, *, suffix: str = ".tmp", permissions: int | None = None) -> Iterator[Path]:
    """A temp path beside `path` (`.NAME.XXXX.tmp`) to write; renamed onto `path` when the block
    ends, removed when it raises. The file gets `permissions`, by default those a plain `open()`
    would give it (mkstemp's 0600 would hide a shared cache entry or report).

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "out.txt"
    >>> with replacing(target) as tmp:
    ...     _ = tmp.write_text("whole")
    >>> target.read_text(), [p.name for p in target.parent.iterdir()]
    ('whole', ['out.txt'])
    """
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    tmp = Path(name)
    try:
        os.fchmod(fd, 0o666 & ~_umask() if permissions is None else permissions)
        os.close(fd)
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def replacing_open(path: Path, mode: str = "wb", *, encoding: str | None = None, suffix: str = ".tmp",
                   permissions: int | None = None) -> Iterator[IO[Any]]:
    """`replacing`, opened: the handle's bytes reach the disk (fsync) before the rename."""
    with replacing(path, suffix=suffix, permissions=permissions) as tmp:
        with open(tmp, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())


@contextmanager
def replacing_folder(path: Path, *, replace: bool = False) -> Iterator[Path]:
    """A temp folder beside `path` (`.NAME.XXXX.tmp`) to fill; renamed onto `path` when the block
    ends, removed with all it holds when it raises. `path` may be missing or an empty folder; one
    that holds files is replaced only with `replace` (moved aside, then removed once the new one is
    in place), else the rename raises OSError and `path` is left as it was.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "out"
    >>> with replacing_folder(target) as tmp:
    ...     _ = (tmp / "a.txt").write_text("whole")
    >>> sorted(p.name for p in target.iterdir()), [p.name for p in target.parent.iterdir()]
    (['a.txt'], ['out'])
    """
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would hide the folder from its readers
        yield tmp
        if replace and path.is_dir() and any(path.iterdir()):
            _swap_in(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_in(new: Path, path: Path) -> None:
    """Rename `new` onto the non-empty folder `path`: the old one is moved aside first (a rename
    cannot replace a folder that holds files), put back if the second rename fails, removed after."""
    old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
    try:
        os.replace(path, old)  # onto the empty folder mkdtemp reserved
    except BaseException:
        os.rmdir(old)
        raise
    try:
        os.replace(new, path)
    except BaseException:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_text_atomic(path: Path, chunks: Iterable[str]) -> Path:
    """Write the text `chunks` to `path` (UTF-8) whole or not at all."""
    with replacing_open(path, "w", encoding="utf-8") as out:
        out.writelines(chunks)
    return path


def write_bytes_atomic(path: Path, write: Callable[[BinaryIO], object]) -> tuple[int, str]:
    """Let `write` fill a temp file, then rename it onto `path`; returns (size, sha256) of what
    was written (the renamed file is never read back: another process may replace it)."""
    with replacing(path) as tmp:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        size, digest = tmp.stat().st_size, sha256_file(tmp)
    return size, digest


def chunks(handle: BinaryIO) -> Iterator[bytes]:
    """The handle's remaining bytes, CHUNK at a time."""
    while chunk := handle.read(CHUNK):
        yield chunk


def hash_file(digest: Any, path: Path, advance: Callable[[int], object] | None = None) -> Any:
    """Feed the bytes of `path` into the hashlib object `digest` (returned), in chunks;
    `advance(n)` is told of every n bytes read."""
    with open(path, "rb") as handle:
        for chunk in chunks(handle):
            digest.update(chunk)
            if advance is not None:
                advance(len(chunk))
    return digest


def sha256_file(path: Path, advance: Callable[[int], object] | None = None) -> str:
    """The hex sha256 of the file at `path`, read in chunks.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "abc"
    >>> _ = path.write_bytes(b"abc")
    >>> sha256_file(path)[:16]
    'ba7816bf8f01cfea'
    """
    return hash_file(hashlib.sha256(), path, advance).hexdigest()
