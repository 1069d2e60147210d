"""The store a task of a parallel run writes (`drbench run --executor ray`), and how its runs land
in the real one.

The driver alone writes the recipe's store. A task gets a store of its own, seeded with what its
runs read from a store: every run of the experiment stored so far (its `runs` row and metrics:
what tells a run is already stored, and what a sweep's point is chosen from) and the runs of the
tasks it comes after. Rankings and per-query values are left out: nothing a task does reads them,
and they are most of a store's size. The task writes its runs and training logs there as
`drbench run` writes them; the driver then reads back what the task added (runs with an id above
the seeded ones; AUTOINCREMENT never reuses an id) and writes each with :func:`write_run`, one
transaction per run, and each training log with :func:`write_training_log`: exactly what the
local executor would have written.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from harness.store.connect import open_store
from harness.store.db import _RUN_JSON, _loads, _transaction, run_metrics, run_results, write_run
from harness.store.schema import ExperimentRecord, RunRecord
from harness.store.training import training_log, write_training_log

_RUN_COLUMNS = ("experiment", "variant", "kind", "collection", "index_factory", "run_key", "status", "recipe_hash",
                "git_commit", "seed", "model", "params", "data", "timings", "index_stats", "compute", "selection",
                "n_queries", "n_docs", "depth", "started_at", "finished_at")


def seed_task_store(path: Path, main: Path, experiment: str, before: list[tuple[Path, int]] = ()) -> int:
    """Create the task store `path` (replacing a failed attempt's) from the store `main` and the
    runs the tasks it comes after added to theirs, `before` ((store, its seeded id) each; their
    versions win: a task may have re-run a stored run); return the highest run id it was seeded
    with (the task's own runs get higher ones)."""
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    db = open_store(path)
    try:
        conn = db.conn
        conn.execute("PRAGMA journal_mode = DELETE")  # one file, read by the driver after this process ends
        for source, since in ((main, None), *before):
            conn.execute("ATTACH DATABASE ? AS src", (str(source),))  # read only: nothing here writes src
            try:
                with _transaction(db):
                    _copy_runs(conn, experiment, since)
            finally:
                conn.execute("DETACH DATABASE src")
        return int(conn.execute("SELECT coalesce(max(id), 0) FROM runs").fetchone()[0])
    finally:
        db.close()


def _copy_runs(conn: sqlite3.Connection, experiment: str, since: int | None) -> None:
    """`src`'s experiment row and its runs with their metrics: all of them, ids kept (`since`
    None: the main store, into an empty one), or those above `since`, each replacing the run of
    its identity."""
    conn.execute("INSERT OR IGNORE INTO experiments SELECT * FROM src.experiments WHERE name = ?", (experiment,))
    columns = ("id",) * (since is None) + _RUN_COLUMNS
    names = ", ".join(columns)
    rows = conn.execute(f"SELECT id, {names} FROM src.runs WHERE experiment = ? AND id > ? ORDER BY id",
                        (experiment, since or 0)).fetchall()
    for src_id, *values in rows:
        row = dict(zip(columns, values))
        identity = [row[c] for c in ("experiment", "variant", "collection", "index_factory", "seed")]
        conn.execute("DELETE FROM metrics WHERE run_id IN (SELECT id FROM runs WHERE experiment = ? AND variant = ? "
                     "AND collection = ? AND index_factory = ? AND seed IS ?)", identity)
        conn.execute("DELETE FROM runs WHERE experiment = ? AND variant = ? AND collection = ? AND index_factory = ? "
                     "AND seed IS ?", identity)
        cursor = conn.execute(f"INSERT INTO runs ({names}) VALUES ({', '.join('?' * len(columns))})", values)
        conn.execute("INSERT INTO metrics (run_id, metric, value) SELECT ?, metric, value FROM src.metrics "
                     "WHERE run_id = ?", (cursor.lastrowid, src_id))


def task_runs(path: Path, seeded: int) -> list[RunRecord]:
    """The runs the task added to its store `path` (ids above `seeded`), in the order it stored them."""
    db = Database(sqlite3.connect(f"file:{path}?mode=ro", uri=True))
    try:
        names = ", ".join(_RUN_COLUMNS)
        out = []
        for run_id, *values in db.execute(f"SELECT id, {names} FROM runs WHERE id > ? ORDER BY id", [seeded]):
            row = dict(zip(_RUN_COLUMNS, values))
            per_query: dict[str, dict[str, float]] = {}  # every metric at once (query_metrics reads one)
            for query_id, metric, value in db.execute(
                    "SELECT query_id, metric, value FROM query_metrics WHERE run_id = ? ORDER BY metric, query_id",
                    [run_id]):
                per_query.setdefault(metric, {})[query_id] = value
            out.append(RunRecord(
                experiment=row["experiment"], variant=row["variant"], kind=row["kind"], collection=row["collection"],
                index_factory=row["index_factory"], run_key=row["run_key"], depth=row["depth"],
                n_docs=row["n_docs"], started_at=row["started_at"], finished_at=row["finished_at"], seed=row["seed"],
                **{c: _loads(row[c]) for c in _RUN_JSON}, metrics=run_metrics(db, [run_id])[run_id],
                query_metrics=per_query, results=run_results(db, run_id)))
        return out
    finally:
        db.close()


def task_logs(path: Path, experiment: str) -> list[tuple[str, int, list[dict[str, Any]]]]:
    """The training logs the task wrote: (variant, seed, rows) each (a seeded store has none)."""
    db = Database(sqlite3.connect(f"file:{path}?mode=ro", uri=True))
    try:
        keys = db.execute("SELECT DISTINCT variant, seed FROM training_log WHERE experiment = ? ORDER BY variant, "
                          "seed", [experiment]).fetchall()
        return [(variant, seed, training_log(db, experiment, variant, seed)) for variant, seed in keys]
    finally:
        db.close()


def land(db: Database, experiment: ExperimentRecord, path: Path, seeded: int) -> list[tuple[RunRecord, int]]:
    """Write what the task with store `path` added into the store `db`: its training logs, then
    each run in its own transaction; (run, its id in `db`) each."""
    for variant, seed, rows in task_logs(path, experiment.name):
        write_training_log(db, experiment.name, variant, rows, seed=seed)
    return [(run, write_run(db, experiment, run)) for run in task_runs(path, seeded)]
