"""Many results stores merged into one (`drbench merge`): the shards of an array job, or a
laptop's runs and a cluster's, in one leaderboard.

Every input is read from a migrated copy (the input itself is never written), and the merge is
built in a temp file beside the output and renamed onto it only when complete: a conflict leaves
nothing written. A run is one (experiment, variant, collection, index, seed):

* met once, it is copied with its metrics, per-query values and rankings;
* met again with the same run key and the same numbers (metrics, per-query values, rankings), it
  is kept once: merging the same stores again changes nothing;
* met again with the same run key and other numbers, or with another run key (another recipe or
  code), the merge is refused in one line naming the run.

An experiment met twice keeps the earliest start and the latest finish; if its recipe texts differ
(a laptop's and a cluster's copies name other stores and caches), the first store's provenance is
kept and a warning says so: its runs, keyed by what determines their numbers, decide the rest. A training log (experiment, variant, seed) is copied from the first
store that has it, linked to the merged run of its model.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import StoreError
from harness.files import replacing
from harness.store.connect import open_store

_IDENTITY = ("experiment", "variant", "collection", "index_factory", "seed")
_CHILDREN = {"metrics": "metric, value", "query_metrics": "query_id, metric, value",
             "results": "query_id, doc_id, rank, score"}
_LOG = "experiment, variant, seed, step, loss, lr, extra"


@dataclass(frozen=True)
class Merged:
    """What a merge did: runs copied, runs met again and kept once, training-log rows copied."""

    copied: int
    kept_once: int
    log_rows: int
    experiments: int
    warnings: tuple[str, ...] = ()


def merge_stores(inputs: list[Path], output: Path, advance: Callable[[int], None] = lambda n: None) -> Merged:
    """Merge `inputs` into `output` (whose own runs, if it exists, are kept); StoreError on a
    conflict or an input that is not a drbench store, with nothing written."""
    _check_paths(inputs, output)
    with tempfile.TemporaryDirectory(prefix="drbench-merge-") as scratch, replacing(output, suffix=".db") as tmp:
        tmp.unlink()
        if output.exists():
            _copy(output, tmp)
        db = open_store(tmp)
        try:
            conn = db.conn
            conn.execute("PRAGMA journal_mode = DELETE")  # one file to rename, no -wal beside it
            copied = kept = logs = 0
            warnings: list[str] = []
            origin: dict[tuple, Path] = {}  # run identity -> the store it came from
            for number, path in enumerate(inputs):
                copy = Path(scratch) / f"input{number}.db"
                _copy(path, copy)
                open_store(copy).close()  # migrated to this drbench's schema (a copy: the input stays as it is)
                conn.execute("ATTACH DATABASE ? AS src", (str(copy),))
                try:
                    with conn:
                        warnings += _experiments(conn, path)
                        ids, c, k = _runs(conn, path, origin, output)
                        logs += _training_logs(conn, ids)
                    copied, kept = copied + c, kept + k
                finally:
                    conn.execute("DETACH DATABASE src")
                advance(1)
            experiments = conn.execute("SELECT count(*) FROM experiments").fetchone()[0]
        finally:
            db.close()
        for suffix in ("-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
    return Merged(copied, kept, logs, experiments, tuple(warnings))


def _copy(path: Path, to: Path) -> None:
    """`path`'s database as SQLite reads it (its write-ahead log included: a byte copy of the file
    alone could miss the latest runs), into the new file `to`."""
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    target = sqlite3.connect(to)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def _check_paths(inputs: list[Path], output: Path) -> None:
    if not inputs:
        raise StoreError("give the stores to merge: drbench merge A.db B.db -o ALL.db")
    for path in inputs:
        if not path.is_file():
            raise StoreError(f"{path}: no such store file; pass the results stores to merge")
        if output.exists() and path.resolve() == output.resolve():
            raise StoreError(f"-o {output} is also an input; merge into a new file (inputs are never written)")
        _check_store(path)
    if output.is_dir():
        raise StoreError(f"-o {output} is a folder; pass the merged store's file name, e.g. {output / 'all.db'}")
    if output.exists():
        _check_store(output)


def _check_store(path: Path) -> None:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a drbench results store ({exc}); pass stores `drbench run` wrote") from None
    if not {"experiments", "runs", "metrics"} <= tables:
        raise StoreError(f"{path} is not a drbench results store (no runs table); pass stores `drbench run` wrote")


def _experiments(conn: sqlite3.Connection, path: Path) -> list[str]:
    warnings = []
    for name, recipe_hash, started, finished in conn.execute(
            "SELECT name, recipe_hash, started_at, finished_at FROM src.experiments").fetchall():
        row = conn.execute("SELECT recipe_hash FROM experiments WHERE name = ?", (name,)).fetchone()
        if row is None:
            conn.execute("INSERT INTO experiments SELECT * FROM src.experiments WHERE name = ?", (name,))
            continue
        if row[0] != recipe_hash:
            warnings.append(f"experiment {name!r} in {path} ran another recipe text than the store merged before "
                            "it; the first one's provenance (recipe text, commit, packages) is kept, and each run "
                            "keeps its own run key")
        conn.execute("UPDATE experiments SET started_at = min(started_at, ?), finished_at = max(finished_at, ?) "
                     "WHERE name = ?", (started, finished, name))
    return warnings


def _runs(conn: sqlite3.Connection, path: Path, origin: dict[tuple, Path],
          output: Path) -> tuple[dict[int, int], int, int]:
    """Copy or match every run of `src`; {src run id: merged run id}, copied, kept once."""
    columns = [c[1] for c in conn.execute("PRAGMA main.table_info(runs)") if c[1] != "id"]
    names = ", ".join(columns)
    ids: dict[int, int] = {}
    copied = kept = 0
    where = " AND ".join(f"{c} IS ?" for c in _IDENTITY)
    for src_id, key, *identity in conn.execute(
            f"SELECT id, run_key, {', '.join(_IDENTITY)} FROM src.runs ORDER BY id").fetchall():
        found = conn.execute(f"SELECT id, run_key FROM runs WHERE {where}", identity).fetchone()
        label = "{}/{} on {} [{}] seed {}".format(*identity)
        if found is None:
            cursor = conn.execute(f"INSERT INTO runs ({names}) SELECT {names} FROM src.runs WHERE id = ?", (src_id,))
            ids[src_id] = int(cursor.lastrowid)  # type: ignore[arg-type]
            origin[tuple(identity)] = path
            for table, fields in _CHILDREN.items():
                conn.execute(f"INSERT INTO {table} (run_id, {fields}) SELECT ?, {fields} FROM src.{table} "
                             "WHERE run_id = ?", (ids[src_id], src_id))
            copied += 1
            continue
        before = origin.get(tuple(identity), output)
        if found[1] != key:
            raise StoreError(f"run {label} is stored with another run key in {path} than in {before} (another "
                             "recipe, code or data); nothing was written: merge without one of the two")
        if differs := _differs(conn, found[0], src_id):
            raise StoreError(f"run {label} has the same run key but other {differs} in {path} than in {before}; "
                             "nothing was written: find which is right before merging")
        ids[src_id] = found[0]
        kept += 1
    return ids, copied, kept


def _differs(conn: sqlite3.Connection, mine: int, theirs: int) -> str | None:
    """Which of a run's numbers differ between the merged run `mine` and src's `theirs`, or None."""
    what = {"metrics": "metrics", "query_metrics": "per-query values", "results": "rankings"}
    for table, fields in _CHILDREN.items():
        a = f"SELECT {fields} FROM main.{table} WHERE run_id = ?"
        b = f"SELECT {fields} FROM src.{table} WHERE run_id = ?"
        if conn.execute(f"SELECT 1 FROM ({a} EXCEPT {b}) UNION ALL SELECT 1 FROM ({b} EXCEPT {a}) LIMIT 1",
                        (mine, theirs, theirs, mine)).fetchone():
            return what[table]
    return None


def _training_logs(conn: sqlite3.Connection, ids: dict[int, int]) -> int:
    """Copy src's training logs of the (experiment, variant, seed)s the merge has none of yet."""
    copied = 0
    for experiment, variant, seed in conn.execute(
            "SELECT DISTINCT experiment, variant, seed FROM src.training_log").fetchall():
        if conn.execute("SELECT 1 FROM training_log WHERE experiment = ? AND variant = ? AND seed IS ? LIMIT 1",
                        (experiment, variant, seed)).fetchone():
            continue
        rows = conn.execute(f"SELECT run_id, {_LOG} FROM src.training_log WHERE experiment = ? AND variant = ? "
                            "AND seed IS ? ORDER BY id", (experiment, variant, seed)).fetchall()
        conn.executemany(f"INSERT INTO training_log (run_id, {_LOG}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         [(ids.get(run_id) if run_id is not None else None, *rest) for run_id, *rest in rows])
        copied += len(rows)
    return copied
