"""Training logs in the store: one row per optimizer step of a trained variant."""

from __future__ import annotations

import json
from typing import Any

from sqlite_utils import Database

from harness.store.db import _transaction

_COLUMNS = ("step", "loss", "lr")
_WHERE = "WHERE experiment = ? AND variant = ?"


def write_training_log(db: Database, experiment: str, variant: str, rows: list[dict[str, Any]]) -> None:
    """Replace the (experiment, variant) log with `rows` in one transaction.

    The pipeline rewrites a variant's log whenever it resolves the model, also when every run of
    it is already stored and skipped. An unchanged log keeps its link to the run that evaluated
    the model (`training_log.run_id`, see `harness.store.db.write_run`). A changed log describes a
    retrained model that no stored run has evaluated yet, so it starts unlinked, and the first
    run written for it links it.
    """
    records = [(experiment, variant, int(r["step"]), r.get("loss"), r.get("lr"),
                json.dumps({k: v for k, v in r.items() if k not in _COLUMNS}, sort_keys=True))
               for r in rows]
    with _transaction(db):
        before = _stored_steps(db, experiment, variant)
        link = db.execute(f"SELECT min(run_id) FROM training_log {_WHERE}", [experiment, variant]).fetchone()[0]
        db.execute(f"DELETE FROM training_log {_WHERE}", [experiment, variant])
        db.conn.executemany("INSERT INTO training_log (experiment, variant, step, loss, lr, extra) "
                            "VALUES (?, ?, ?, ?, ?, ?)", records)
        # Compared as SQLite stored them, not as given: a NaN loss is stored as NULL, an int lr as REAL.
        if link is not None and _stored_steps(db, experiment, variant) == before:
            db.execute(f"UPDATE training_log SET run_id = ? {_WHERE}", [link, experiment, variant])


def _stored_steps(db: Database, experiment: str, variant: str) -> list[tuple[Any, ...]]:
    return db.execute(f"SELECT step, loss, lr, extra FROM training_log {_WHERE} ORDER BY step, id",
                      [experiment, variant]).fetchall()


def training_log(db: Database, experiment: str, variant: str) -> list[dict[str, Any]]:
    """The stored log of a variant, in step order, with `extra` merged into each row."""
    rows = db.execute("SELECT step, loss, lr, extra FROM training_log WHERE experiment = ? AND variant = ? "
                      "ORDER BY step", [experiment, variant]).fetchall()
    return [{"step": s, "loss": loss, "lr": lr, **json.loads(extra or "{}")} for s, loss, lr, extra in rows]
