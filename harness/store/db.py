"""Write a finished run in one transaction, read runs back (opening the store: connect.py).

Light on purpose: the leaderboard imports this, so nothing heavy is imported here.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from harness.errors import StoreError
from harness.files import write_text_atomic
from harness.store.schema import ExperimentRecord, RunRecord

_RUN_JSON = ("model", "params", "data", "timings", "index_stats", "compute", "selection")
_CHILD_TABLES = ("metrics", "query_metrics", "results")


@contextmanager
def _transaction(db: Database) -> Iterator[None]:
    """A write transaction; inside a caller's transaction it nests as a savepoint."""
    if db.conn.in_transaction:
        with db.atomic():
            yield
        return
    # IMMEDIATE takes the write lock up front: a deferred transaction that reads first can
    # fail with SQLITE_BUSY when it later upgrades to write in WAL mode.
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.conn.execute("COMMIT")
    except BaseException:
        db.rollback()
        raise


def write_run(db: Database, experiment: ExperimentRecord, run: RunRecord) -> int:
    """Store a finished run and its experiment's provenance atomically; return the run id.

    Replaces a stored run with the same (experiment, variant, collection, index_factory, seed).
    Links the variant's unlinked training-log rows to a run of this model (see
    `_link_training_log`). Either every row lands or none does. Called inside an open
    transaction, it joins it.
    """
    if run.experiment != experiment.name:
        raise StoreError(f"run {run.variant!r} belongs to experiment {run.experiment!r}, "
                         f"not {experiment.name!r}; pass the run's own ExperimentRecord")
    if run.seed is None:
        run = replace(run, seed=experiment.seed if experiment.seed is not None else 0)
    try:
        with _transaction(db):
            _upsert_experiment(db, experiment, run.finished_at)
            _delete_run(db, run)
            run_id = _insert_run(db, experiment, run)
            _insert_children(db, run_id, run)
            _link_training_log(db, run)
    except sqlite3.Error as exc:
        raise StoreError(f"could not store run {run.experiment}/{run.variant} on "
                         f"{run.collection}: {exc}; nothing was written") from exc
    return run_id


def _upsert_experiment(db: Database, exp: ExperimentRecord, finished_at: str) -> None:
    # started_at is left out of the update: the experiment began with its first run.
    db.conn.execute(
        """INSERT INTO experiments (name, recipe_path, recipe_text, recipe_hash, git_commit,
               git_dirty, packages, python, platform, seed, started_at, finished_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET recipe_path = excluded.recipe_path,
               recipe_text = excluded.recipe_text, recipe_hash = excluded.recipe_hash,
               git_commit = excluded.git_commit, git_dirty = excluded.git_dirty,
               packages = excluded.packages, python = excluded.python,
               platform = excluded.platform, seed = excluded.seed,
               finished_at = excluded.finished_at""",
        (exp.name, exp.recipe_path, exp.recipe_text, exp.recipe_hash, exp.git_commit,
         int(exp.git_dirty), _dumps(exp.packages), exp.python, exp.platform, exp.seed,
         exp.started_at, finished_at))


def _delete_run(db: Database, run: RunRecord) -> None:
    old = db.conn.execute(
        "SELECT id FROM runs WHERE experiment = ? AND variant = ? AND collection = ? "
        "AND index_factory = ? AND seed = ?",
        (run.experiment, run.variant, run.collection, run.index_factory, run.seed)).fetchone()
    if old is not None:
        _delete_run_id(db, old[0])


def _delete_run_id(db: Database, run_id: int) -> None:
    # Explicit deletes, not only ON DELETE CASCADE: a connection opened without
    # open_store() has foreign keys off and would leave orphans.
    for table in _CHILD_TABLES:
        db.conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
    # ON DELETE SET NULL by hand, for the same reason; write_run then links a successor.
    db.conn.execute("UPDATE training_log SET run_id = NULL WHERE run_id = ?", (run_id,))
    db.conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))


def drop_other_seeds(db: Database, experiment: str, keep: dict[str, set[int]]) -> int:
    """Delete the runs of `experiment` whose variant is in `keep` but whose seed is not in its set
    (a recipe that changed its seeds replaces the old seeds' runs); return how many went. One
    transaction; training-log rows of those seeds go with them."""
    gone = 0
    try:
        with _transaction(db):
            for variant, seeds in keep.items():
                marks = ", ".join("?" * len(seeds))
                ids = [row[0] for row in db.conn.execute(
                    f"SELECT id FROM runs WHERE experiment = ? AND variant = ? AND seed NOT IN ({marks})",
                    (experiment, variant, *sorted(seeds)))]
                for run_id in ids:
                    _delete_run_id(db, run_id)
                db.conn.execute(f"DELETE FROM training_log WHERE experiment = ? AND variant = ? "
                                f"AND seed NOT IN ({marks})", (experiment, variant, *sorted(seeds)))
                gone += len(ids)
    except sqlite3.Error as exc:  # one line from the CLI, as write_run's errors are
        raise StoreError(f"could not remove the runs of seeds {experiment} no longer lists: {exc}; nothing was "
                         "removed") from exc
    return gone


def _insert_run(db: Database, exp: ExperimentRecord, run: RunRecord) -> int:
    cursor = db.conn.execute(
        """INSERT INTO runs (experiment, variant, kind, collection, index_factory, run_key,
               status, recipe_hash, git_commit, seed, model, params, data, timings,
               index_stats, compute, selection, n_queries, n_docs, depth, started_at, finished_at)
           VALUES (?, ?, ?, ?, ?, ?, 'complete', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (run.experiment, run.variant, run.kind, run.collection, run.index_factory,
         run.run_key, exp.recipe_hash, exp.git_commit, run.seed, _dumps(run.model),
         _dumps(run.params), _dumps(run.data), _dumps(run.timings), _dumps(run.index_stats),
         _dumps(run.compute), _dumps(run.selection), run.n_queries, run.n_docs, run.depth, run.started_at,
         run.finished_at))
    return int(cursor.lastrowid)


def _insert_children(db: Database, run_id: int, run: RunRecord) -> None:
    conn = db.conn
    conn.executemany("INSERT INTO metrics (run_id, metric, value) VALUES (?, ?, ?)",
                     ((run_id, m, _real(v)) for m, v in run.metrics.items()))
    conn.executemany(
        "INSERT INTO query_metrics (run_id, query_id, metric, value) VALUES (?, ?, ?, ?)",
        ((run_id, q, m, _real(v))
         for m, per_query in run.query_metrics.items() for q, v in per_query.items()))
    conn.executemany(
        "INSERT INTO results (run_id, query_id, doc_id, rank, score) VALUES (?, ?, ?, ?, ?)",
        ((run_id, q, d, rank, _real(s))
         for q, ranked in run.results.items()
         for rank, (d, s) in enumerate(ranked, start=1)))


def _link_training_log(db: Database, run: RunRecord) -> None:
    """Link the variant's training-log rows that have no run to the first stored run of this model
    (the log of the run's seed).

    A trained model is usually evaluated in several runs (collections x indexes) that share one
    log, so `training_log.run_id` names the earliest stored run of the (experiment, variant) whose
    `model` record equals this run's: the first run written after the log, and later runs of the
    same model leave the link alone. Replacing the linked run unlinks the rows (`_delete_run`),
    and the replacement's write links them again to the earliest run of the model still stored.
    The pipeline writes a log before its model's runs; `write_training_log` keeps the link when it
    rewrites an unchanged log and drops it when the log changed (a retrained model).
    """
    # `IS`, not `=`: a run without a model (BM25) has model NULL.
    db.conn.execute(
        "UPDATE training_log SET run_id = (SELECT min(id) FROM runs WHERE experiment = ?1 "
        "AND variant = ?2 AND model IS ?3 AND seed = ?4) "
        "WHERE experiment = ?1 AND variant = ?2 AND seed = ?4 AND run_id IS NULL",
        (run.experiment, run.variant, _dumps(run.model), run.seed))


def _real(value: Any) -> float | None:
    # numpy scalars are not SQLite-bindable; float() also turns an int into a REAL.
    return None if value is None else float(value)


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def completed_run_key(db: Database, experiment: str, variant: str, collection: str,
                      index_factory: str, seed: int) -> str | None:
    """The run_key of the stored complete run with this identity, or None."""
    row = db.conn.execute(
        "SELECT run_key FROM runs WHERE experiment = ? AND variant = ? AND collection = ? "
        "AND index_factory = ? AND seed = ? AND status = 'complete'",
        (experiment, variant, collection, index_factory, seed)).fetchone()
    return None if row is None else row[0]


def list_experiments(db: Database) -> list[dict[str, Any]]:
    """Every experiment, oldest first, with `packages` decoded and `git_dirty` a bool."""
    rows = list(db.query("SELECT * FROM experiments ORDER BY started_at, name"))
    for row in rows:
        row["packages"] = _loads(row["packages"])
        row["git_dirty"] = None if row["git_dirty"] is None else bool(row["git_dirty"])
    return rows


def list_runs(db: Database, experiment: str | None = None,
              collection: str | None = None) -> list[dict[str, Any]]:
    """Stored runs, optionally filtered, with their JSON columns decoded."""
    return _select_runs(db, experiment=experiment, collection=collection)


def _select_runs(db: Database, **equal: str | int | None) -> list[dict[str, Any]]:
    """Runs whose columns equal the given values (None: any), JSON decoded."""
    given = {k: v for k, v in equal.items() if v is not None}
    where = " AND ".join(f"{k} = ?" for k in given)
    rows = list(db.query(
        f"SELECT * FROM runs {'WHERE ' + where if where else ''} "
        "ORDER BY experiment, variant, collection, index_factory, seed", list(given.values())))
    for row in rows:
        for key in _RUN_JSON:
            row[key] = _loads(row.get(key))  # get: a read-only store may predate a column
    return rows


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def run_metrics(db: Database, run_ids: Iterable[int]) -> dict[int, dict[str, float]]:
    """Aggregate metrics per run id; a run without metrics maps to {}."""
    ids = list(dict.fromkeys(int(i) for i in run_ids))
    out: dict[int, dict[str, float]] = {i: {} for i in ids}
    # Chunked: old SQLite builds cap a statement at 999 parameters.
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ", ".join("?" * len(chunk))
        for run_id, metric, value in db.conn.execute(
                f"SELECT run_id, metric, value FROM metrics WHERE run_id IN ({marks}) "
                "ORDER BY run_id, metric", chunk):
            out[run_id][metric] = value
    return out


def query_metrics(db: Database, run_id: int, metric: str) -> dict[str, float]:
    """Per-query values of `metric` for one run: {query_id: value}."""
    rows = db.conn.execute(
        "SELECT query_id, value FROM query_metrics WHERE run_id = ? AND metric = ? "
        "ORDER BY query_id", (run_id, metric)).fetchall()
    if not rows:
        stored = [r[0] for r in db.conn.execute(
            "SELECT DISTINCT metric FROM query_metrics WHERE run_id = ? ORDER BY metric",
            (run_id,))]
        raise StoreError(f"run {run_id} has no per-query {metric!r}; stored: "
                         f"{', '.join(stored) or 'none'}; pick one of those metrics")
    return dict(rows)


def run_results(db: Database, run_id: int, depth: int | None = None) -> dict[str, list[tuple[str, float]]]:
    """A run's rankings: {query_id: [(doc_id, score)]} in rank order (the top `depth` only if given)."""
    out: dict[str, list[tuple[str, float]]] = {}
    for query_id, doc_id, score in db.conn.execute(
            "SELECT query_id, doc_id, score FROM results WHERE run_id = ? AND rank <= ? "
            "ORDER BY query_id, rank", (run_id, depth if depth is not None else 2**62)):
        out.setdefault(query_id, []).append((doc_id, score))
    return out


def ranks_of(db: Database, run_id: int, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The rank a run gives each (query_id, doc_id) of `pairs` it ranked: {(query, doc): rank};
    pairs it did not rank (beyond its stored depth) are absent."""
    wanted = json.dumps([[query_id, doc_id] for query_id, doc_id in pairs])
    # CROSS JOIN keeps the pairs as the outer loop, so each is a primary-key lookup of its query's
    # ranking; left to itself SQLite scanned the run's whole ranking once per pair.
    return {(query_id, doc_id): rank for query_id, doc_id, rank in db.conn.execute(
        "SELECT r.query_id, r.doc_id, r.rank FROM json_each(?) AS w CROSS JOIN results AS r "
        "ON r.run_id = ? AND r.query_id = json_extract(w.value, '$[0]') "
        "AND r.doc_id = json_extract(w.value, '$[1]')", (wanted, run_id))}


def find_run(db: Database, variant: str, collection: str, index_factory: str | None = None,
             experiment: str | None = None, seed: int | None = None) -> dict[str, Any]:
    """The one stored run matching the arguments; StoreError when none or several match."""
    candidates = _select_runs(db, variant=variant, collection=collection,
                              index_factory=index_factory, experiment=experiment, seed=seed)
    what = f"variant {variant!r} on {collection!r}"
    if not candidates:
        raise StoreError(_no_run(db, what, variant, collection, index_factory, experiment, seed))
    if len(candidates) == 1:
        return candidates[0]
    experiments = sorted({r["experiment"] for r in candidates})
    if len(experiments) > 1:
        raise StoreError(f"{what} is ambiguous: experiments {', '.join(experiments)}; "
                         "pass --experiment")
    indexes = sorted({r["index_factory"] for r in candidates})
    if len(indexes) > 1:
        raise StoreError(f"{what} is ambiguous: indexes {', '.join(indexes)}; pass --index")
    seeds = sorted(r["seed"] for r in candidates)
    raise StoreError(f"{what} is ambiguous: seeds {', '.join(map(str, seeds))}; pass --seed")


def _no_run(db: Database, what: str, variant: str, collection: str, index_factory: str | None,
            experiment: str | None, seed: int | None) -> str:
    """Why no run matched: the filters given, and what is stored for the variant on the collection
    (its indexes, experiments, seeds), or, when it has no run there at all, the variants that do."""
    filters = {"index_factory": ("index", "indexes", index_factory), "experiment": ("experiment", "experiments",
               experiment), "seed": ("seed", "seeds", seed)}
    asked = "".join(f" {'in' if key == 'experiment' else 'with'} {one} {value!r}"
                    for key, (one, _, value) in filters.items() if value is not None)
    stored = _select_runs(db, variant=variant, collection=collection)
    if not stored:
        others = sorted({r["variant"] for r in list_runs(db, experiment, collection)})
        return f"no run of {what}{asked}; stored variants: {', '.join(others) or 'none'}"
    have = [f"{many} {', '.join(map(str, sorted({r[key] for r in stored if r[key] is not None}))) or 'none'}"
            for key, (_, many, value) in filters.items() if value is not None]
    return f"no run of {what}{asked}; stored for it: {'; '.join(have)}"


def write_trec_run(results: dict[str, list[tuple[str, float]]], path: str | Path,
                   tag: str) -> Path:
    """Write rankings as a TREC run file (`qid Q0 docid rank score tag`), atomically."""
    if not tag or any(c.isspace() for c in tag):
        raise StoreError(f"TREC run tag {tag!r} must be one word without spaces")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # repr keeps full precision: trec_eval re-sorts by score, so rounding could create ties
    # and reorder documents.
    return write_text_atomic(path, (f"{query_id} Q0 {doc_id} {rank} {float(score)!r} {tag}\n"
                                    for query_id, ranked in results.items()
                                    for rank, (doc_id, score) in enumerate(ranked, start=1)))
