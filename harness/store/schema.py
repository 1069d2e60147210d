"""The results store's tables, their migrations, and the records that fill them.

The schema version lives in ``PRAGMA user_version``; ``MIGRATIONS[i]`` takes a store from
version ``i`` to ``i + 1``. Never edit a released migration: append a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from harness.errors import StoreError

_V1_TABLES = """
CREATE TABLE experiments (
    name        TEXT PRIMARY KEY,
    recipe_path TEXT,
    recipe_text TEXT,
    recipe_hash TEXT,
    git_commit  TEXT,
    git_dirty   INTEGER,
    packages    TEXT,           -- JSON {distribution: version | null}
    python      TEXT,
    platform    TEXT,
    seed        INTEGER,
    started_at  TEXT,           -- ISO-8601 UTC
    finished_at TEXT
);
CREATE TABLE runs (
    -- AUTOINCREMENT: a replaced run's id is never reused, so an id read earlier
    -- (a leaderboard link, a TREC file name) can never point at a different run.
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment    TEXT NOT NULL REFERENCES experiments(name) ON DELETE CASCADE,
    variant       TEXT NOT NULL,
    kind          TEXT,
    collection    TEXT NOT NULL,  -- ir_datasets id
    index_factory TEXT NOT NULL,  -- NOT NULL: NULLs are distinct in a UNIQUE index
    run_key       TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'complete',
    recipe_hash   TEXT,
    git_commit    TEXT,
    seed          INTEGER,
    model         TEXT,           -- JSON {name, path, fingerprint}
    params        TEXT,           -- JSON
    data          TEXT,           -- JSON {archive: sha256}
    timings       TEXT,           -- JSON {stage: seconds}
    n_queries     INTEGER,
    n_docs        INTEGER,
    depth         INTEGER,
    started_at    TEXT,
    finished_at   TEXT
);
CREATE UNIQUE INDEX runs_identity ON runs (experiment, variant, collection, index_factory);
CREATE INDEX runs_collection ON runs (collection);
-- The three child tables are WITHOUT ROWID: their primary key is the only index they need
-- and leads with run_id, so deleting or reading one run is a range scan.
CREATE TABLE metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    metric TEXT NOT NULL,         -- ranx name, e.g. ndcg@10
    value  REAL,
    PRIMARY KEY (run_id, metric)
) WITHOUT ROWID;
CREATE TABLE query_metrics (
    run_id   INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    query_id TEXT NOT NULL,
    metric   TEXT NOT NULL,
    value    REAL,
    PRIMARY KEY (run_id, metric, query_id)
) WITHOUT ROWID;
CREATE TABLE results (
    run_id   INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    query_id TEXT NOT NULL,
    doc_id   TEXT NOT NULL,
    rank     INTEGER NOT NULL,    -- 1-based
    score    REAL NOT NULL,
    PRIMARY KEY (run_id, query_id, rank)
) WITHOUT ROWID;
CREATE TABLE training_log (
    id         INTEGER PRIMARY KEY,
    -- Logged while training, before the run exists; kept (unlinked) when a run is replaced.
    run_id     INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    experiment TEXT NOT NULL,
    variant    TEXT NOT NULL,
    step       INTEGER NOT NULL,
    loss       REAL,
    lr         REAL,
    extra      TEXT               -- JSON
);
CREATE INDEX training_log_variant ON training_log (experiment, variant, step);
CREATE INDEX training_log_run ON training_log (run_id);
"""


def _v1_initial_tables(db: Database) -> None:
    db.executescript(_V1_TABLES)


def _v2_index_stats(db: Database) -> None:
    # What an index costs before relevance enters: bytes per document, build time, search
    # time per query, and how much of the exact (Flat) top-k the index still finds.
    db.execute("ALTER TABLE runs ADD COLUMN index_stats TEXT")  # JSON


def _v3_link_training_logs(db: Database) -> None:
    # Before v3 nothing set training_log.run_id; link the rows that can be linked, to the run
    # write_run links new logs to: the earliest stored run of the model the log describes. A
    # variant's log is rewritten every time its model is resolved, just before that model's runs
    # are written, so it describes the model of the variant's latest run. Rows of a variant
    # without runs stay unlinked. (SQL spelled out here: a released migration never changes.)
    db.execute("""
        UPDATE training_log SET run_id = (
            SELECT min(id) FROM runs
            WHERE runs.experiment = training_log.experiment AND runs.variant = training_log.variant
              AND runs.model IS (SELECT latest.model FROM runs AS latest
                                 WHERE latest.experiment = training_log.experiment
                                   AND latest.variant = training_log.variant
                                 ORDER BY latest.id DESC LIMIT 1))
        WHERE run_id IS NULL""")


def _v4_run_compute(db: Database) -> None:
    # Where a run's encoders ran and in what precision ({"device", "precision"}, JSON); NULL for
    # sparse runs and for runs stored before v4, all of which ran in fp32 on the CPU.
    db.execute("ALTER TABLE runs ADD COLUMN compute TEXT")


def _v5_seeds(db: Database) -> None:
    # A recipe may list several seeds: a run is one (experiment, variant, collection, index, seed),
    # and a training log belongs to one seed's model. Every run stored so far has its experiment's
    # single seed; a log row gets it too, the seed the model it describes was trained with.
    db.execute("UPDATE runs SET seed = (SELECT seed FROM experiments WHERE name = runs.experiment) "
               "WHERE seed IS NULL")
    db.execute("UPDATE runs SET seed = 0 WHERE seed IS NULL")  # NULLs would be distinct in the index
    db.execute("DROP INDEX runs_identity")
    db.execute("CREATE UNIQUE INDEX runs_identity ON runs (experiment, variant, collection, index_factory, seed)")
    db.execute("ALTER TABLE training_log ADD COLUMN seed INTEGER")
    db.execute("UPDATE training_log SET seed = (SELECT seed FROM experiments WHERE name = training_log.experiment)")
    db.execute("DROP INDEX training_log_variant")
    db.execute("CREATE INDEX training_log_variant ON training_log (experiment, variant, seed, step)")
    # A swept variant reported on the evaluation splits by its point with the best dev score:
    # which point, its dev score and the other points' (JSON); NULL for every other run.
    db.execute("ALTER TABLE runs ADD COLUMN selection TEXT")


MIGRATIONS: list[Callable[[Database], None]] = [_v1_initial_tables, _v2_index_stats, _v3_link_training_logs,
                                                _v4_run_compute, _v5_seeds]
SCHEMA_VERSION = len(MIGRATIONS)
SPARSE_INDEX = "bm25"  # the index column of runs that use no faiss index (BM25)
# The oldest version the read functions (list_runs, the leaderboard, compare, plot, check) work on
# unchanged, so a read-only store at this version or later is read without migrating it. v2 added
# runs.index_stats, which they read; v3 only fills training_log.run_id, which they do not; v4's
# runs.compute is read with a default where the column is missing; v5's training_log.seed likewise
# (a log without it is its experiment's one seed), and so is v5's runs.selection. A migration that adds
# something they read must raise this to its own version.
READABLE_FROM = 2


def schema_version(db: Database) -> int:
    """The store's schema version (``PRAGMA user_version``; 0 for a new file)."""
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: Database, where: str = "results store") -> int:
    """Apply the migrations `db` lacks, each in its own transaction; return the new version.

    Raises StoreError when `db` is newer than this code (a downgrade would lose data).
    `where` names the store in that message.
    """
    check_not_newer(db, where)
    while schema_version(db) < SCHEMA_VERSION:
        # IMMEDIATE takes the write lock before re-reading the version, so two processes
        # opening a fresh store at once cannot both run the same migration.
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            version = schema_version(db)
            if version < SCHEMA_VERSION:
                MIGRATIONS[version](db)
                db.execute(f"PRAGMA user_version = {version + 1}")
            db.conn.execute("COMMIT")
        except BaseException:
            db.rollback()
            raise
    return SCHEMA_VERSION


def check_not_newer(db: Database, where: str) -> None:
    """Raise StoreError when `db` is newer than this code (`where` names the store)."""
    version = schema_version(db)
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{where} has schema version {version} but this drbench knows only up to "
            f"{SCHEMA_VERSION}; upgrade drbench or pass another --store")


@dataclass(frozen=True, kw_only=True)
class ExperimentRecord:
    """Provenance of one experiment (one recipe run): a row of ``experiments``."""

    name: str
    recipe_path: str | None
    recipe_text: str
    recipe_hash: str
    git_commit: str | None
    git_dirty: bool
    packages: dict[str, str | None]
    python: str
    platform: str
    seed: int | None  # the first of the recipe's seeds
    started_at: str


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """Everything a finished run produces: a ``runs`` row and its child rows.

    `query_metrics` maps metric -> query_id -> value; `results` maps query_id -> ranked
    [(doc_id, score)], best first (rank = position + 1).
    """

    experiment: str
    variant: str
    kind: str
    collection: str
    index_factory: str
    run_key: str
    model: dict[str, Any] | None
    depth: int
    n_docs: int | None
    started_at: str
    finished_at: str
    seed: int | None = None  # what its training and index codebooks were seeded with (None: the experiment's)
    params: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    index_stats: dict[str, float] = field(default_factory=dict)
    compute: dict[str, str] | None = None  # {"device", "precision"} of dense runs
    selection: dict[str, Any] | None = None  # a swept variant's chosen point and the dev scores behind it
    metrics: dict[str, float] = field(default_factory=dict)
    query_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    results: dict[str, list[tuple[str, float]]] = field(default_factory=dict)

    @property
    def n_queries(self) -> int:
        """Queries evaluated: those with a per-query score (every qrels query), else ranked."""
        evaluated = {q for per_query in self.query_metrics.values() for q in per_query}
        return len(evaluated) if evaluated else len(self.results)
