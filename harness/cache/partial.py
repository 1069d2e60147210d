"""A corpus encode in progress, kept so that a later process can resume it: the rows done so far,
recorded beside the partial matrix after every complete group of batches.

An encode is one process's work folder (:class:`~harness.cache.entries.Entries`, so liveness,
adoption and pruning follow the rules of every cache kind), `<root>/<key>.tmp-<host>-<pid>-<hex>/`:

* `vectors.npy`: the ``(n, dim)`` float32 matrix, memory-mapped, that becomes the entry;
* `order.npy`: ``(n,)`` int64, the row each encode position filled: an encode goes through its
  texts in length order (:class:`Schedule`), not in row order, so "the first k rows" would be wrong;
* `progress.json`: the key, the shape, the schedule, `done` (positions filled, always the end of
  a group) and `sha256`, a chain over each group's rows and vectors; replaced atomically after
  each group, so it never vouches for a group that is not wholly in the matrix.

The vectors are not flushed to the disk at each group (a killed process's pages reach the file
anyway; only a machine crash loses them). A resume therefore re-hashes the groups it keeps and
discards the partial, with a log line, when the chain disagrees, as it does when the key, the
shape or the schedule differ: a partial is used only for the encode that made it. Nothing here
imports torch.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from harness.cache.entries import Entries
from harness.files import replacing

VECTORS, ORDER, PROGRESS = "vectors.npy", "order.npy", "progress.json"
VERSION = 1
# Rows per group, about: what a killed encode loses at most. Each group costs a hash of its
# vectors and one small atomic write, nothing beside encoding 1,024 documents.
RESUME_ROWS = 1024


@dataclass(frozen=True)
class Schedule:
    """The order an encode fills rows in, which a resumed encode must repeat exactly: texts are
    read `chunk` at a time and sorted by length within each, cut into batches of `batch_size`, and
    every `every` batches (a group) the rows done are recorded. The vectors of a batch depend on
    which texts share it (padding), so a partial made with another batch size is not resumed.

    >>> list(Schedule(batch_size=2, every=2, chunk=5).group_sizes(12))
    [4, 1, 4, 1, 2]
    """

    batch_size: int
    every: int
    chunk: int

    @classmethod
    def of(cls, batch_size: int, chunk: int, rows: int | None = None) -> Schedule:
        """Groups of about `rows` rows (default :data:`RESUME_ROWS`), in whole batches, at least one."""
        return cls(batch_size, max(1, (rows or RESUME_ROWS) // batch_size), chunk)

    def group_sizes(self, count: int) -> Iterator[int]:
        """The rows of each group of an encode of `count` texts, in encode order."""
        step = self.batch_size * self.every
        for lo in range(0, count, self.chunk):
            size = min(self.chunk, count - lo)
            for start in range(0, size, step):
                yield min(step, size - start)


class Partial:
    """One process's encode of `key`: :attr:`vectors` to fill, :attr:`done` positions already
    filled (by an adopted dead process), :meth:`commit` after each group. `folder` is None for an
    encode held in memory (a cache that cannot be written), which records nothing."""

    def __init__(self, vectors: np.ndarray, *, folder: Path | None = None, key: str = "",
                 schedule: Schedule | None = None, order: np.ndarray | None = None, done: int = 0,
                 chain: str = "") -> None:
        self.vectors, self.folder, self.key, self.schedule = vectors, folder, key, schedule
        self.order, self.done, self.chain = order, done, chain
        self.rows = len(vectors)  # kept: the maps are dropped before publishing

    @classmethod
    def in_memory(cls, shape: tuple[int, int]) -> Partial:
        return cls(np.empty(shape, dtype=np.float32))

    @classmethod
    def start(cls, entries: Entries, key: str, shape: tuple[int, int], schedule: Schedule | None,
              log: Callable[[str], None]) -> Partial:
        """A work folder for encoding `key`: a dead process's partial of the same encode, adopted
        (and said so, with the rows it resumes from), or a new one. A partial that does not fit is
        removed with a log line. No `schedule`: nothing is resumed or recorded."""

        def fits(folder: Path) -> bool:
            if schedule is None:
                return False
            problem = partial_problem(folder, key, shape, schedule)
            if problem is not None:
                log(f"cache: {entries.label(key)}: discarding the partial encode {folder.name} ({problem})")
            return problem is None

        folder = entries.workdir(key, resume=fits)
        record = _read(folder / PROGRESS) if schedule is not None else None
        if record is not None:  # adopted: it passed `partial_problem` just now
            vectors = np.load(folder / VECTORS, mmap_mode="r+", allow_pickle=False)
            order = np.load(folder / ORDER, mmap_mode="r+", allow_pickle=False)
            log(f"cache: {entries.label(key)}: resuming a partial encode from {record['done']:,} of "
                f"{shape[0]:,} rows")
            return cls(vectors, folder=folder, key=key, schedule=schedule, order=order, done=record["done"],
                       chain=record["sha256"])
        for name in (VECTORS, ORDER, PROGRESS):  # an adoption that lost a race, or no schedule
            (folder / name).unlink(missing_ok=True)
        try:
            vectors = np.lib.format.open_memmap(folder / VECTORS, mode="w+", dtype=np.float32, shape=shape)
            order = np.lib.format.open_memmap(folder / ORDER, mode="w+", dtype=np.int64, shape=(shape[0],))
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return cls(vectors, folder=folder, key=key, schedule=schedule, order=order)

    def commit(self, position: int, rows: np.ndarray) -> None:
        """Record the group just filled: `rows` (in encode order) end at encode `position`."""
        if position - len(rows) != self.done:
            raise ValueError(f"group ending at {position} does not follow the {self.done} rows done")
        self.done = position
        if self.folder is None or self.schedule is None:
            return
        rows = np.asarray(rows, dtype=np.int64)
        assert self.order is not None
        self.order[position - len(rows):position] = rows
        self.chain = _chain(self.chain, rows, self.vectors)
        record = {"version": VERSION, "key": self.key, "shape": list(self.vectors.shape),
                  "schedule": asdict(self.schedule), "done": position, "sha256": self.chain}
        # Renamed into place whole, but not fsync'd (that was half of a group's cost, bench_resume.py): after
        # a machine crash the record may be empty or ahead of the vectors, and the resume's re-hash
        # discards it, as it would any partial that disagrees with its record.
        with replacing(self.folder / PROGRESS) as tmp:
            tmp.write_text(json.dumps(record, indent=1, sort_keys=True), encoding="utf-8")

    def finish(self) -> Path:
        """The filled matrix's file, flushed and unmapped, ready to be renamed into the cache."""
        assert self.folder is not None
        if isinstance(self.vectors, np.memmap):
            self.vectors.flush()
        self.vectors = self.order = None  # type: ignore[assignment]  # unmapped
        return self.folder / VECTORS

    def remove(self) -> None:
        """Delete the work folder (what is left of it after publishing)."""
        if self.folder is not None:
            self.vectors = self.order = None  # type: ignore[assignment]
            shutil.rmtree(self.folder, ignore_errors=True)

    def leave(self, label: str, log: Callable[[str], None]) -> None:
        """An encode that stops early (an error, Ctrl-C, SIGTERM): its work folder is kept for
        the next run to resume when whole groups are recorded, and removed when none is; either
        way one log line says which."""
        if self.folder is None:
            return
        if self.done > 0 and self.schedule is not None:
            self.vectors = self.order = None  # type: ignore[assignment]
            log(f"cache: {label}: encode stopped after {self.done:,} of {self.rows:,} rows; kept {self.folder} "
                "for the next run to resume (`drbench cache prune` removes it)")
        else:
            self.remove()


def partial_problem(folder: Path, key: str, shape: tuple[int, int], schedule: Schedule) -> str | None:
    """Why the partial encode in `folder` cannot be resumed as the encode of `key` with `shape`
    and `schedule`, or None when it can: every group it records is re-hashed."""
    record = _read(folder / PROGRESS)
    if record is None:
        return "no readable progress record"
    if record.get("version") != VERSION or record.get("key") != key:
        return "made for another cache key"
    if record.get("shape") != list(shape) or record.get("schedule") != asdict(schedule):
        return "made with another shape or batch size"
    try:
        vectors = np.load(folder / VECTORS, mmap_mode="r", allow_pickle=False)
        order = np.load(folder / ORDER, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return "matrix unreadable or truncated"
    if vectors.shape != shape or vectors.dtype != np.float32 or order.shape != (shape[0],) or order.dtype != np.int64:
        return "matrix of another shape or type"
    done, chain, position = record.get("done"), "", 0
    if not isinstance(done, int) or done <= 0:
        return "no complete group"
    for size in schedule.group_sizes(shape[0]):
        if position >= done:
            break
        rows = np.asarray(order[position:position + size])
        if rows.min() < 0 or rows.max() >= shape[0]:
            return "row order damaged"
        chain, position = _chain(chain, rows, vectors), position + size
    if position != done:
        return "rows done end inside a group"
    return None if chain == record.get("sha256") else "sha256 of the rows done mismatch"


def partial_progress(folder: Path) -> tuple[int, int] | None:
    """(rows done, rows in all) of the partial encode in `folder` as its record says (nothing is
    hashed), or None when it records none: what `drbench cache ls` shows of a leftover."""
    record = _read(folder / PROGRESS)
    try:
        return int(record["done"]), int(record["shape"][0])  # type: ignore[index]
    except (TypeError, KeyError, IndexError, ValueError):
        return None


def _chain(previous: str, rows: np.ndarray, vectors: np.ndarray) -> str:
    digest = hashlib.sha256(previous.encode("ascii"))
    digest.update(np.ascontiguousarray(rows, dtype="<i8").tobytes())
    digest.update(np.ascontiguousarray(vectors[rows], dtype="<f4").tobytes())
    return digest.hexdigest()


def _read(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None

