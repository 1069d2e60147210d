"""Manifests: what a cache entry holds (each file's size and sha256), its key, and what
produced it. A read checks sizes first (free), then hashes; a file's hash is computed at most
once per process for the same (path, size, mtime, inode).

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "a.txt").write_text("hello")
>>> write_manifest(folder, key="k1", produced_by={"what": "doctest"})["files"]["a.txt"]["size"]
5
>>> damage(folder) is None
True
>>> _ = (folder / "a.txt").write_text("HELLO")
>>> damage(folder)
'a.txt sha256 mismatch'
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from harness import files
from harness.files import replacing_open

Advance = Callable[[int], None]
MANIFEST = "manifest.json"
VERSION = 1
_HASHED: dict[tuple[str, int, int, int], str] = {}  # (path, size, mtime_ns, inode) -> sha256


def sha256_file(path: Path, *, fresh: bool = False, advance: Advance | None = None) -> str:
    """The file's sha256, computed once per process while its size, mtime and inode stay.

    `fresh` reads every byte again (`drbench cache verify`: a check that trusts a memo checks
    nothing); `advance(n)` is told of every n bytes read.
    """
    st = path.stat()
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if fresh or memo not in _HASHED:
        _HASHED[memo] = files.sha256_file(path, advance)
    return _HASHED[memo]


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def write_manifest(folder: Path, *, key: str, produced_by: dict[str, Any]) -> dict[str, Any]:
    """Hash every file under `folder` and write `folder/manifest.json` atomically, last."""
    record = {"version": VERSION, "key": key,
              "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "produced_by": produced_by,
              "files": {str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": sha256_file(p)}
                        for p in _files(folder)}}
    write_json_atomic(folder / MANIFEST, record)
    return record


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of `folder`, or None when it is missing or unreadable."""
    try:
        record = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("files"), dict) else None


def damage(folder: Path, key: str | None = None, *, fresh: bool = False,
           advance: Advance | None = None) -> str | None:
    """Why `folder` cannot be trusted (one short phrase), or None when its manifest holds.

    Extra files are allowed (a reader may add caches of its own); missing, resized or changed
    ones are not.
    """
    record = read_manifest(folder)
    if record is None:
        return "no readable manifest"
    if key is not None and record.get("key") != key:
        return f"manifest is for key {str(record.get('key'))[:12]}"
    listed = record["files"]
    for name, meta in listed.items():  # every size before any hash: free, and catches truncation
        if problem := size_problem(folder / name, meta.get("size"), name):
            return problem
    for name, meta in listed.items():
        if problem := file_problem(folder / name, meta.get("size"), meta.get("sha256"), name,
                                   fresh=fresh, advance=advance):
            return problem
    return None


def size_problem(path: Path, size: Any, name: str) -> str | None:
    """`name missing` or `name size X != Y`, or None when `path` has the recorded size."""
    if not path.is_file():
        return f"{name} missing"
    if path.stat().st_size != size:
        return f"{name} size {path.stat().st_size} != {size}"
    return None


def file_problem(path: Path, size: Any, digest: Any, name: str, *, fresh: bool = False,
                 advance: Advance | None = None) -> str | None:
    """The one rule every cached file is checked by: its size (free), then its sha256."""
    if problem := size_problem(path, size, name):
        return problem
    if sha256_file(path, fresh=fresh, advance=advance) != digest:
        return f"{name} sha256 mismatch"
    return None


def file_record(path: Path) -> Path:
    """Where the manifest of a single file (a checkpoint) lives: beside it."""
    return path.with_name(f"{path.name}.manifest.json")


def write_file_manifest(path: Path, **produced_by: Any) -> None:
    """Record one file's size and sha256 beside it (after the file itself is in place)."""
    write_json_atomic(file_record(path), {"version": VERSION, "file": path.name, "size": path.stat().st_size,
                                          "sha256": sha256_file(path), "produced_by": produced_by})


def file_damage(path: Path) -> str | None:
    """Why the single file `path` cannot be trusted, or None when its manifest holds."""
    try:
        record = json.loads(file_record(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "no readable manifest"
    return file_problem(path, record.get("size"), record.get("sha256"), path.name)


def write_json_atomic(path: Path, record: Any) -> None:
    """Readers see the old file or the whole new one, never a half-written one."""
    with replacing_open(path, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2, sort_keys=True, default=str)
