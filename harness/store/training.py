"""Training logs in the store: one row per optimizer step of a trained variant."""

from __future__ import annotations

import json
from typing import Any

from sqlite_utils import Database

from harness.store.db import _transaction

_COLUMNS = ("step", "loss", "lr")
_WHERE = "WHERE experiment = ? AND variant = ? AND seed = ?"


def write_training_log(db: Database, experiment: str, variant: str, rows: list[dict[str, Any]],
                       seed: int) -> None:
    """Replace the (experiment, variant, seed) log with `rows` in one transaction.

    The pipeline rewrites a variant's log whenever it resolves the model, also when every run of
    it is already stored and skipped. An unchanged log keeps its link to the run that evaluated
    the model (`training_log.run_id`, see `harness.store.db.write_run`). A changed log describes a
    retrained model that no stored run has evaluated yet, so it starts unlinked, and the first
    run written for it links it.
    """
    records = [(experiment, variant, seed, int(r["step"]), r.get("loss"), r.get("lr"),
                json.dumps({k: v for k, v in r.items() if k not in _COLUMNS}, sort_keys=True))
               for r in rows]
    with _transaction(db):
        key = [experiment, variant, seed]
        before = _stored_steps(db, key)
        link = db.execute(f"SELECT min(run_id) FROM training_log {_WHERE}", key).fetchone()[0]
        db.execute(f"DELETE FROM training_log {_WHERE}", key)
        db.conn.executemany("INSERT INTO training_log (experiment, variant, seed, step, loss, lr, extra) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)", records)
        # Compared as SQLite stored them, not as given: a NaN loss is stored as NULL, an int lr as REAL.
        if link is not None and _stored_steps(db, key) == before:
            db.execute(f"UPDATE training_log SET run_id = ? {_WHERE}", [link, *key])


def _stored_steps(db: Database, key: list[Any]) -> list[tuple[Any, ...]]:
    return db.execute(f"SELECT step, loss, lr, extra FROM training_log {_WHERE} ORDER BY step, id", key).fetchall()


def training_seeds(db: Database, experiment: str, variant: str) -> list[int | None]:
    """The seeds a variant has a stored log for, ascending ([None] for a log stored before v5,
    which is its experiment's one seed)."""
    if "seed" not in _columns(db):
        found = db.execute("SELECT 1 FROM training_log WHERE experiment = ? AND variant = ? LIMIT 1",
                           [experiment, variant]).fetchone()
        return [None] if found else []
    return [s for (s,) in db.execute("SELECT DISTINCT seed FROM training_log WHERE experiment = ? AND variant = ? "
                                     "ORDER BY seed", [experiment, variant])]


def training_log(db: Database, experiment: str, variant: str, seed: int | None = None) -> list[dict[str, Any]]:
    """The stored log of a variant's model trained with `seed` (None: its lowest seed), in step
    order, with `extra` merged into each row."""
    if seed is None:
        seeds = training_seeds(db, experiment, variant)
        if not seeds:
            return []
        seed = seeds[0]  # None for a log stored before v5: its experiment's one seed
    where = "WHERE experiment = ? AND variant = ?" + ("" if seed is None else " AND seed = ?")
    rows = db.execute(f"SELECT step, loss, lr, extra FROM training_log {where} ORDER BY step",
                      [experiment, variant, *([] if seed is None else [seed])]).fetchall()
    return [{"step": s, "loss": loss, "lr": lr, **json.loads(extra or "{}")} for s, loss, lr, extra in rows]


def _columns(db: Database) -> set[str]:
    return {row[1] for row in db.execute("PRAGMA table_info(training_log)")}
