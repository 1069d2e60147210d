"""The results store: migrations, atomic run writes, training-log links, reads, TREC export, provenance.

Opening a store read-only is tested in test_store_connect.py.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlite_utils import Database

from harness.errors import StoreError
from harness.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    ExperimentRecord,
    RunRecord,
    completed_run_key,
    find_run,
    git_commit,
    list_experiments,
    list_runs,
    open_memory_store,
    open_store,
    package_versions,
    query_metrics,
    run_metrics,
    run_results,
    schema_version,
    sha256_text,
    write_run,
    write_training_log,
    write_trec_run,
)
from harness.store import db as store_db

REPO = Path(__file__).resolve().parent.parent
TABLES = ("experiments", "runs", "metrics", "query_metrics", "results")


def make_experiment(name: str = "exp", **changes) -> ExperimentRecord:
    fields = dict(name=name, recipe_path="recipes/x.toml", recipe_text="[x]\n",
                  recipe_hash=sha256_text("[x]\n"), git_commit="abc123", git_dirty=False,
                  packages={"numpy": "2.0"}, python="3.11", platform="linux", seed=0,
                  started_at="2024-01-01T00:00:00+00:00")
    fields.update(changes)
    return ExperimentRecord(**fields)


def make_run(experiment: str = "exp", variant: str = "star", *, n_queries: int = 3,
             depth: int = 5, run_key: str = "k1", index_factory: str = "Flat",
             collection: str = "beir/scifact/test", **changes) -> RunRecord:
    results = {f"q{q}": [(f"d{q}-{r}", float(depth - r)) for r in range(depth)]
               for q in range(n_queries)}
    per_query = {f"q{q}": q / max(n_queries, 1) for q in range(n_queries)}
    fields = dict(experiment=experiment, variant=variant, kind="dense", collection=collection,
                  index_factory=index_factory, run_key=run_key,
                  model={"name": "tiny", "path": "/m", "fingerprint": "f"},
                  params={"lr": 1e-5}, data={"corpus.jsonl": "sha"},
                  timings={"encode": 1.5, "search": 0.25}, n_docs=100, depth=depth,
                  started_at="2024-01-01T00:00:00+00:00",
                  finished_at="2024-01-01T01:00:00+00:00",
                  metrics={"ndcg@10": 0.5, "recall@100": 0.9},
                  query_metrics={"ndcg@10": per_query}, results=results)
    fields.update(changes)
    return RunRecord(**fields)


def counts(db) -> dict[str, int]:
    return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def store_at_version(path: Path, version: int) -> Database:
    """A store file built by the first `version` migrations only, as an older drbench left it."""
    db = Database(path)
    db.enable_wal()
    for migration in MIGRATIONS[:version]:
        migration(db)
    db.execute(f"PRAGMA user_version = {version}")
    return db


@pytest.fixture
def db():
    store = open_memory_store()
    yield store
    store.close()


# -- opening and migrations -------------------------------------------------------------

def test_open_creates_parents_wal_and_schema(tmp_path):
    path = tmp_path / "a" / "b" / "drbench.db"
    store = open_store(path)
    assert path.exists()
    assert store.journal_mode == "wal"
    assert schema_version(store) == SCHEMA_VERSION
    assert store.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert set(TABLES) | {"training_log"} <= set(store.table_names())
    store.close()


def test_reopen_is_idempotent_and_keeps_data(tmp_path):
    path = tmp_path / "s.db"
    store = open_store(path)
    write_run(store, make_experiment(), make_run())
    store.close()
    store = open_store(path, create=False)
    assert schema_version(store) == SCHEMA_VERSION
    assert counts(store)["runs"] == 1
    store.close()


def test_missing_store_without_create(tmp_path):
    with pytest.raises(StoreError, match="no results store at .*run drbench run RECIPE"):
        open_store(tmp_path / "nope.db", create=False)
    assert not (tmp_path / "nope.db").exists()


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer|knows only up to"):
        open_store(path)


def test_not_a_database(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open results store"):
        open_store(path)


# -- write_run round trip and replacement -------------------------------------------

def test_write_run_round_trip(db):
    run = make_run(results={"q1": [("b", 2.0), ("a", 1.0), ("c", 0.5)], "q0": [("z", 3.0)]},
                   query_metrics={"ndcg@10": {"q0": 1.0, "q1": 0.25}})
    run_id = write_run(db, make_experiment(), run)
    assert run_metrics(db, [run_id, 999]) == {run_id: {"ndcg@10": 0.5, "recall@100": 0.9},
                                              999: {}}
    assert query_metrics(db, run_id, "ndcg@10") == {"q0": 1.0, "q1": 0.25}
    assert run_results(db, run_id) == {"q0": [("z", 3.0)],
                                       "q1": [("b", 2.0), ("a", 1.0), ("c", 0.5)]}
    [row] = list_runs(db)
    assert row["id"] == run_id and row["status"] == "complete"
    assert row["model"]["fingerprint"] == "f" and row["timings"] == {"encode": 1.5,
                                                                     "search": 0.25}
    assert row["n_queries"] == 2 and row["recipe_hash"] == make_experiment().recipe_hash
    [exp] = list_experiments(db)
    assert exp["packages"] == {"numpy": "2.0"} and exp["git_dirty"] is False
    assert exp["finished_at"] == run.finished_at
    assert completed_run_key(db, "exp", "star", "beir/scifact/test", "Flat", 0) == "k1"
    assert completed_run_key(db, "exp", "star", "beir/scifact/test", "PQ48", 0) is None


def test_query_metrics_unknown_metric(db):
    run_id = write_run(db, make_experiment(), make_run())
    with pytest.raises(StoreError, match="no per-query 'mrr@10'; stored: ndcg@10"):
        query_metrics(db, run_id, "mrr@10")


def test_rewrite_replaces_and_leaves_no_orphans(db):
    first = write_run(db, make_experiment(), make_run(n_queries=4, depth=6))
    later = make_experiment(recipe_text="[y]\n", git_commit="def456",
                            started_at="2030-01-01T00:00:00+00:00")
    second = write_run(db, later, make_run(n_queries=2, depth=3, run_key="k2",
                                           finished_at="2024-02-02T00:00:00+00:00"))
    assert second != first
    assert counts(db) == {"experiments": 1, "runs": 1, "metrics": 2, "query_metrics": 2,
                          "results": 6}
    [exp] = list_experiments(db)
    assert exp["started_at"] == "2024-01-01T00:00:00+00:00"  # the original start is kept
    assert exp["finished_at"] == "2024-02-02T00:00:00+00:00"
    assert exp["recipe_text"] == "[y]\n" and exp["git_commit"] == "def456"
    assert completed_run_key(db, "exp", "star", "beir/scifact/test", "Flat", 0) == "k2"
    for table in ("metrics", "query_metrics", "results"):
        assert db.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?",
                          [first]).fetchone()[0] == 0


def test_other_index_is_a_separate_run(db):
    write_run(db, make_experiment(), make_run(index_factory="Flat"))
    write_run(db, make_experiment(), make_run(index_factory="PQ48"))
    assert counts(db)["runs"] == 2


def test_mismatched_experiment_is_refused(db):
    with pytest.raises(StoreError, match="belongs to experiment 'other'"):
        write_run(db, make_experiment("exp"), make_run(experiment="other"))


# -- atomicity ----------------------------------------------------------------------

def test_failure_in_results_writes_nothing(db):
    bad = make_run("new", n_queries=50, depth=100)
    bad.results["q49"][-1] = ("last", None)  # violates results.score NOT NULL, at the end
    with pytest.raises(StoreError, match="nothing was written"):
        write_run(db, make_experiment("new"), bad)
    assert counts(db) == dict.fromkeys(TABLES, 0)
    assert not db.conn.in_transaction


def test_failure_after_run_insert_keeps_previous_run(db, monkeypatch):
    old_id = write_run(db, make_experiment(), make_run())
    before = counts(db)

    def explode(*args):
        raise sqlite3.OperationalError("disk I/O error (simulated)")

    monkeypatch.setattr(store_db, "_insert_children", explode)
    with pytest.raises(StoreError, match="simulated"):
        write_run(db, make_experiment(git_commit="zzz"), make_run(run_key="k2"))
    assert counts(db) == before
    assert [r["id"] for r in list_runs(db)] == [old_id]
    assert list_experiments(db)[0]["git_commit"] == "abc123"
    assert completed_run_key(db, "exp", "star", "beir/scifact/test", "Flat", 0) == "k1"


def test_write_inside_caller_transaction_joins_it(db):
    with pytest.raises(RuntimeError):
        with db.atomic():
            write_run(db, make_experiment(), make_run())
            raise RuntimeError("caller aborts")
    assert counts(db) == dict.fromkeys(TABLES, 0)


_KILLED_CHILD = """
import sys, time
sys.path.insert(0, {tests!r})
from test_store import make_experiment, make_run
from harness.store import open_store, write_run
db = open_store({path!r})
write_run(db, make_experiment(), make_run(n_queries=3, run_key="committed"))
db.execute("PRAGMA cache_size = 5")  # spill uncommitted pages into the WAL file
with db.atomic():
    write_run(db, make_experiment(git_commit="killed"),
              make_run(n_queries=200, depth=100, run_key="killed"))
    print("started", flush=True)
    time.sleep(60)
"""


def test_sigkill_mid_transaction_leaves_previous_state(tmp_path):
    path = tmp_path / "killed.db"
    code = _KILLED_CHILD.format(tests=str(REPO / "tests"), path=str(path))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = child.stdout.readline()
        assert line.strip() == "started", child.stderr.read()
        assert Path(f"{path}-wal").stat().st_size > 200_000  # uncommitted pages reached disk
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    store = open_store(path, create=False)
    assert counts(store) == {"experiments": 1, "runs": 1, "metrics": 2, "query_metrics": 3,
                             "results": 15}
    assert list_experiments(store)[0]["git_commit"] == "abc123"
    assert completed_run_key(store, "exp", "star", "beir/scifact/test", "Flat", 0) == "committed"
    assert store.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.close()


# -- training logs linked to their runs ------------------------------------------------

LOG = [{"step": 1, "loss": 2.0, "lr": 1e-5}, {"step": 2, "loss": float("nan"), "lr": 2e-5, "grad": 3},
       {"step": 3, "loss": 1.0, "lr": 1}]
M1 = {"name": "star", "path": "/cache/m1", "fingerprint": "f1"}
M2 = {"name": "star", "path": "/cache/m2", "fingerprint": "f2"}


def links(db, variant: str = "star", experiment: str = "exp") -> list[int | None]:
    """The run_id of each of the variant's training-log rows, in step order."""
    return [r[0] for r in db.execute("SELECT run_id FROM training_log WHERE experiment = ? AND variant = ? "
                                     "ORDER BY step", [experiment, variant])]


def test_a_run_links_its_variants_training_log(db):
    write_training_log(db, "exp", "star", LOG, seed=0)
    write_training_log(db, "exp", "adore", LOG, seed=0)
    assert links(db) == [None] * 3
    first = write_run(db, make_experiment(), make_run(model=M1, index_factory="Flat"))
    assert links(db) == [first] * 3
    # The same model in more runs (indexes, collections): the link stays on the first.
    write_run(db, make_experiment(), make_run(model=M1, index_factory="PQ48"))
    write_run(db, make_experiment(), make_run(model=M1, collection="cranfield"))
    assert links(db) == [first] * 3
    assert links(db, "adore") == [None] * 3  # another variant's log waits for its own run


def test_replacing_the_linked_run_passes_the_link_on(db):
    write_training_log(db, "exp", "star", LOG, seed=0)
    flat = write_run(db, make_experiment(), make_run(model=M1, index_factory="Flat"))
    pq = write_run(db, make_experiment(), make_run(model=M1, index_factory="PQ48"))
    assert links(db) == [flat] * 3
    replaced = write_run(db, make_experiment(), make_run(model=M1, index_factory="Flat", run_key="k2"))
    assert replaced not in (flat, pq)
    assert links(db) == [pq] * 3  # the earliest run of the model still stored


def test_a_rewritten_log_keeps_its_link_unless_it_changed(db):
    write_training_log(db, "exp", "star", LOG, seed=0)
    run = write_run(db, make_experiment(), make_run(model=M1))
    # A re-run reuses the cached model, rewrites the same log and skips every stored run.
    write_training_log(db, "exp", "star", [dict(row) for row in LOG], seed=0)
    assert links(db) == [run] * 3
    # A retrained model: its log is new and no stored run has evaluated it yet.
    write_training_log(db, "exp", "star", LOG[:2], seed=0)
    assert links(db) == [None] * 2
    # Its first run links it, not the older run of the previous model still stored.
    retrained = write_run(db, make_experiment(), make_run(model=M2, collection="cranfield"))
    assert links(db) == [retrained] * 2


def test_failed_run_write_leaves_the_log_unlinked(db, monkeypatch):
    write_training_log(db, "exp", "star", LOG, seed=0)

    def explode(*args):
        raise sqlite3.OperationalError("disk I/O error (simulated)")

    monkeypatch.setattr(store_db, "_link_training_log", explode)
    with pytest.raises(StoreError, match="nothing was written"):
        write_run(db, make_experiment(), make_run(model=M1))
    assert counts(db)["runs"] == 0 and links(db) == [None] * 3


def test_migration_links_training_logs_of_an_older_store(tmp_path):
    path = tmp_path / "v2.db"
    old = store_at_version(path, 2)
    old.execute("ALTER TABLE runs ADD COLUMN compute TEXT")  # today's writer needs v4's and v5's columns ...
    old.execute("ALTER TABLE training_log ADD COLUMN seed INTEGER")
    old.execute("ALTER TABLE runs ADD COLUMN selection TEXT")
    # An older drbench wrote runs and logs but never linked them; the latest run of star
    # evaluated M2 (the model its log, rewritten at every resolution, describes).
    stale = write_run(old, make_experiment(), make_run(model=M1, collection="vaswani"))
    first_m2 = write_run(old, make_experiment(), make_run(model=M2, index_factory="Flat"))
    write_run(old, make_experiment(), make_run(model=M2, index_factory="PQ48"))
    write_run(old, make_experiment(), make_run(variant="bm25", model=None, index_factory="bm25"))
    other = write_run(old, make_experiment("exp2"), make_run("exp2", model=M1))
    for experiment, variant in (("exp", "star"), ("exp", "adore"), ("exp2", "star")):
        old.conn.executemany("INSERT INTO training_log (experiment, variant, step, loss, lr) VALUES (?, ?, ?, ?, ?)",
                             [(experiment, variant, r["step"], r["loss"], r["lr"]) for r in LOG])
    old.conn.execute("UPDATE training_log SET run_id = NULL")  # ... and links logs; a v2 drbench did neither
    old.execute("ALTER TABLE runs DROP COLUMN compute")
    old.execute("ALTER TABLE training_log DROP COLUMN seed")
    old.execute("ALTER TABLE runs DROP COLUMN selection")
    old.conn.commit()
    assert links(old) == links(old, "adore") == links(old, "star", "exp2") == [None] * 3
    old.close()

    store = open_store(path, create=False)
    assert schema_version(store) == SCHEMA_VERSION
    assert stale < first_m2 and links(store) == [first_m2] * 3
    assert links(store, "star", "exp2") == [other] * 3
    assert links(store, "adore") == [None] * 3  # no run: nothing to link to
    store.close()


# -- find_run ------------------------------------------------------------------------

def test_find_run(db):
    write_run(db, make_experiment("a"), make_run("a", "star"))
    write_run(db, make_experiment("b"), make_run("b", "star"))
    write_run(db, make_experiment("a"), make_run("a", "bm25", index_factory="bm25"))
    assert find_run(db, "bm25", "beir/scifact/test")["experiment"] == "a"
    assert find_run(db, "star", "beir/scifact/test", experiment="b")["experiment"] == "b"
    with pytest.raises(StoreError, match=r"variant 'star' on 'beir/scifact/test' is "
                                         r"ambiguous: experiments a, b; pass --experiment"):
        find_run(db, "star", "beir/scifact/test")
    with pytest.raises(StoreError, match="no run of variant 'stra'.*stored variants: bm25, "
                                         "star"):
        find_run(db, "stra", "beir/scifact/test")
    with pytest.raises(StoreError, match="with index 'PQ48'"):
        find_run(db, "star", "beir/scifact/test", index_factory="PQ48", experiment="a")


def test_find_run_ambiguous_index(db):
    write_run(db, make_experiment(), make_run(index_factory="Flat"))
    write_run(db, make_experiment(), make_run(index_factory="PQ48"))
    with pytest.raises(StoreError, match="indexes Flat, PQ48; pass --index"):
        find_run(db, "star", "beir/scifact/test")
    assert find_run(db, "star", "beir/scifact/test", "PQ48")["index_factory"] == "PQ48"


# -- TREC export, provenance, light import --------------------------------------------

def test_write_trec_run(tmp_path):
    path = write_trec_run({"q1": [("d3", 0.1 + 0.2), ("d1", 1)], "q2": [("d9", -2.5)]},
                          tmp_path / "out" / "run.trec", "star")
    assert path.read_text().splitlines() == [
        "q1 Q0 d3 1 0.30000000000000004 star", "q1 Q0 d1 2 1.0 star", "q2 Q0 d9 1 -2.5 star"]
    assert [p.name for p in path.parent.iterdir()] == ["run.trec"]  # no temp file left
    with pytest.raises(StoreError, match="one word"):
        write_trec_run({}, tmp_path / "x.trec", "my tag")


def test_provenance_never_raises(tmp_path):
    assert git_commit(tmp_path / "missing") == (None, False)
    versions = package_versions(("numpy", "no-such-dist-xyz"))
    assert versions["numpy"] and versions["no-such-dist-xyz"] is None


def test_git_commit_reports_dirty(monkeypatch):
    from harness.store import provenance

    answers = {"rev-parse": "abc\n", "status": " M harness/x.py\n"}

    def fake_run(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 0, answers[cmd[3]], "")

    monkeypatch.setattr(provenance.subprocess, "run", fake_run)
    assert git_commit(".") == ("abc", True)
    answers["status"] = ""
    assert git_commit(".") == ("abc", False)


def test_import_with_heavy_libraries_blocked():
    code = textwrap.dedent("""
        import sys
        for name in ("torch", "transformers", "faiss", "ir_datasets"):
            sys.modules[name] = None  # any import of them now raises ImportError
        import harness.store as store
        db = store.open_memory_store()
        store.package_versions()
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
