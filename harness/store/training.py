"""Training logs in the store: one row per optimizer step of a trained variant."""

from __future__ import annotations

import json
from typing import Any

from sqlite_utils import Database

from harness.store.db import _transaction

_COLUMNS = ("step", "loss", "lr")


def write_training_log(db: Database, experiment: str, variant: str, rows: list[dict[str, Any]]) -> None:
    """Replace the (experiment, variant) log with `rows` in one transaction."""
    records = [(experiment, variant, int(r["step"]), r.get("loss"), r.get("lr"),
                json.dumps({k: v for k, v in r.items() if k not in _COLUMNS}, sort_keys=True))
               for r in rows]
    with _transaction(db):
        db.execute("DELETE FROM training_log WHERE experiment = ? AND variant = ?", [experiment, variant])
        db.conn.executemany("INSERT INTO training_log (experiment, variant, step, loss, lr, extra) "
                            "VALUES (?, ?, ?, ?, ?, ?)", records)


def training_log(db: Database, experiment: str, variant: str) -> list[dict[str, Any]]:
    """The stored log of a variant, in step order, with `extra` merged into each row."""
    rows = db.execute("SELECT step, loss, lr, extra FROM training_log WHERE experiment = ? AND variant = ? "
                      "ORDER BY step", [experiment, variant]).fetchall()
    return [{"step": s, "loss": loss, "lr": lr, **json.loads(extra or "{}")} for s, loss, lr, extra in rows]
