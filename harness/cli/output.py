"""The one check every command that writes a file runs on its output path, before any work.

`export-run -o`, `compare -o`, `check --junit`, `report -o` write one file; `plot --out` writes a
folder of PNGs. A folder where a file belongs, a missing folder, a path that cannot be written,
or the results store itself is one line (exit 2), and the store is never overwritten.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from harness.errors import DrbenchError


class OutputError(DrbenchError):
    """An output path a command must not, or cannot, write."""


def check_output(path: Path, flag: str, store: str | Path | None, *, example: str = "out.txt",
                 inputs: dict[str, Path] | None = None) -> Path:
    """`path` resolved, once it is known to be a file that can be written and is neither `store`
    nor one of the command's `inputs` ({what it is: path}, e.g. the expectations file).

    `flag` names the option in the message (`-o`, `--junit`); `example` is the file name the
    message suggests when `path` is a folder.

    >>> check_output(Path("/"), "-o", None)
    Traceback (most recent call last):
    ...
    harness.cli.output.OutputError: -o / is a folder; pass a file name such as /out.txt
    """
    target = Path(path).expanduser().resolve()
    _not_the_store(target, flag, store)
    for what, source in (inputs or {}).items():
        if _same(target, Path(source).expanduser().resolve()):
            raise OutputError(f"{flag} {target} is {what}, which this command reads; pass {flag} another file")
    if target.is_dir():
        raise OutputError(f"{flag} {path} is a folder; pass a file name such as {target / example}")
    if target.exists() and not stat.S_ISREG(target.stat().st_mode):
        raise OutputError(f"{flag} {path} is not a regular file (a device, a pipe); pass {flag} a file to write")
    if not target.parent.is_dir():
        kind = "is a file, not a folder" if target.parent.exists() else "does not exist"
        raise OutputError(f"{flag} {path}: {target.parent} {kind}; create the folder or pass another {flag}")
    if target.exists() and not os.access(target, os.W_OK):
        raise OutputError(f"cannot write {flag} {path}: the file is read-only; pass {flag} another file")
    _can_create_in(target.parent, flag, path)
    return target


def check_output_folder(path: Path, flag: str, store: str | Path | None) -> Path:
    """`path` resolved, once it is known to be a folder that exists or can be created, and writable."""
    target = Path(path).expanduser().resolve()
    _not_the_store(target, flag, store, "folder")
    if target.exists() and not target.is_dir():
        raise OutputError(f"{flag} {path} is a file, not a folder; pass {flag} a folder (it is created if missing)")
    existing = next(p for p in (target, *target.parents) if p.exists())  # what is created starts below it
    if not existing.is_dir():
        raise OutputError(f"{flag} {path}: {existing} is a file, not a folder; pass another {flag}")
    _can_create_in(existing, flag, path)
    return target


def _not_the_store(target: Path, flag: str, store: str | Path | None, expected: str = "file") -> None:
    if store is not None and _same(target, Path(store).expanduser().resolve()):
        raise OutputError(f"{flag} {target} is the results store itself; pass {flag} another {expected}")


def _same(target: Path, other: Path) -> bool:
    """The same path, or the same file by another name (a hard link, a symlinked folder)."""
    return target == other or (target.exists() and other.exists() and os.path.samefile(target, other))


def _can_create_in(folder: Path, flag: str, path: Path) -> None:
    """Create and remove a file in `folder`: unlike os.access, this also holds for root, read-only
    file systems and /proc."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".drbench-probe-")
    except OSError as exc:
        raise OutputError(f"cannot write {flag} {path}: {exc.strerror or exc} in {folder}; "
                          f"pass {flag} a path in a folder you can write") from None
    os.close(fd)
    os.unlink(probe)
