"""The store with several seeds: a run is one (experiment, variant, collection, index, seed), a
re-run replaces only its own seed, a recipe that drops seeds drops exactly their runs and logs (in
one transaction; a failure is one StoreError line), and a store from before seeds (v4) migrates
with its experiment's seed."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlite_utils import Database

from harness.errors import StoreError
from harness.store import (MIGRATIONS, SCHEMA_VERSION, completed_run_key, drop_other_seeds, list_runs,
                           open_memory_store, open_store, training_log, training_seeds, write_training_log)
from store_helpers import add_run, experiment

LOG = [{"step": 1, "loss": 2.0, "lr": 1e-5}, {"step": 2, "loss": 1.5, "lr": 1e-5}]


def count(db, table: str) -> int:
    return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def seeds_of(db, variant: str, experiment_name: str = "exp") -> list[int]:
    return sorted(r["seed"] for r in list_runs(db, experiment_name) if r["variant"] == variant)


def flat_ids(db) -> dict[int, int]:
    """seed -> run id of STAR's Flat runs."""
    return {r["seed"]: r["id"] for r in list_runs(db, "exp") if r["variant"] == "star" and r["index_factory"] == "Flat"}


@pytest.fixture
def db():
    db = open_memory_store()
    for seed in (13, 14, 15):
        write_training_log(db, "exp", "star", LOG, seed=seed)
        add_run(db, "star", {"ndcg@10": [seed / 100, 0.0]}, seed=seed)
        add_run(db, "star", {"ndcg@10": [seed / 100, 0.0]}, seed=seed, index="PQ8")
    add_run(db, "bm25", {"ndcg@10": [0.2, 0.1]}, kind="bm25", index="bm25")
    add_run(db, "star", {"ndcg@10": [0.5, 0.5]}, seed=14, experiment_name="other")
    return db


def test_each_seed_is_its_own_run_and_a_rewrite_replaces_only_its_seed(db) -> None:
    assert seeds_of(db, "star") == [13, 13, 14, 14, 15, 15]
    before = flat_ids(db)
    rewritten = add_run(db, "star", {"ndcg@10": [0.9, 0.9]}, seed=14)
    after = flat_ids(db)
    assert after == {13: before[13], 14: rewritten, 15: before[15]} and rewritten > max(before.values())
    assert completed_run_key(db, "exp", "star", "toy", "Flat", 14) == "star-14-Flat"
    assert completed_run_key(db, "exp", "star", "toy", "Flat", 16) is None


def test_a_run_without_a_seed_gets_its_experiments(db) -> None:
    from harness.store import RunRecord, write_run

    run = RunRecord(experiment="exp", variant="zero", kind="zero-shot", collection="toy", index_factory="Flat",
                    run_key="z", model=None, depth=10, n_docs=2, started_at="t", finished_at="t")
    write_run(db, experiment(), run)  # the experiment's seed is 13
    assert seeds_of(db, "zero") == [13]


def test_dropping_seeds_removes_exactly_their_runs_children_and_logs(db) -> None:
    runs, metrics = count(db, "runs"), count(db, "query_metrics")
    assert drop_other_seeds(db, "exp", {"star": {13, 15}, "bm25": {13}}) == 2  # seed 14 on Flat and PQ8
    assert seeds_of(db, "star") == [13, 13, 15, 15] and seeds_of(db, "bm25") == [13]
    assert count(db, "runs") == runs - 2 and count(db, "query_metrics") == metrics - 2 * 2
    assert training_seeds(db, "exp", "star") == [13, 15] and training_log(db, "exp", "star", 14) == []
    assert seeds_of(db, "star", "other") == [14]  # another experiment's seed 14 stays
    assert drop_other_seeds(db, "exp", {"star": {13, 15}}) == 0  # nothing left to drop


def test_a_variant_not_named_keeps_every_seed(db) -> None:
    assert drop_other_seeds(db, "exp", {"bm25": {99}}) == 1
    assert seeds_of(db, "star") == [13, 13, 14, 14, 15, 15] and training_seeds(db, "exp", "star") == [13, 14, 15]


def test_dropping_seeds_is_one_transaction(db) -> None:
    # The second of seed 14's runs cannot be deleted: the first's deletion is rolled back with it.
    runs, logs = count(db, "runs"), count(db, "training_log")
    db.execute("CREATE TRIGGER refuse BEFORE DELETE ON runs WHEN OLD.seed = 14 AND OLD.index_factory = 'PQ8' "
               "BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    with pytest.raises(StoreError, match=r"^could not remove the runs of seeds exp no longer lists: disk full; "
                                         r"nothing was removed$"):
        drop_other_seeds(db, "exp", {"star": {13}})
    assert count(db, "runs") == runs and count(db, "training_log") == logs
    assert seeds_of(db, "star") == [13, 13, 14, 14, 15, 15]


def test_a_store_from_before_seeds_migrates_with_its_experiments_seed(tmp_path: Path) -> None:
    path = tmp_path / "v4.db"
    old = Database(path)
    for migration in MIGRATIONS[:4]:
        migration(old)
    old.execute("PRAGMA user_version = 4")
    old.conn.execute("INSERT INTO experiments (name, seed) VALUES ('exp', 7), ('noseed', NULL)")
    old.conn.executemany("INSERT INTO runs (experiment, variant, collection, index_factory, run_key) "
                         "VALUES (?, ?, 'toy', 'Flat', 'k')", [("exp", "star"), ("noseed", "star")])
    old.conn.execute("INSERT INTO training_log (experiment, variant, step, loss) VALUES ('exp', 'star', 1, 0.5)")
    old.conn.commit()
    old.close()

    db = open_store(path, create=False)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert {(r["experiment"], r["seed"]) for r in list_runs(db)} == {("exp", 7), ("noseed", 0)}
    assert training_seeds(db, "exp", "star") == [7]
    # a second seed of the same run now fits beside the first
    add_run(db, "star", {"ndcg@10": [0.1]}, seed=8, experiment_name="exp")
    assert seeds_of(db, "star") == [7, 8]
    db.close()


def test_each_seeds_training_log_links_to_that_seeds_run() -> None:
    db = open_memory_store()
    for seed in (13, 14):
        write_training_log(db, "exp", "star", LOG, seed=seed)
    runs = {seed: add_run(db, "star", {"ndcg@10": [0.1]}, seed=seed) for seed in (14, 13)}
    linked = dict(db.execute("SELECT DISTINCT seed, run_id FROM training_log").fetchall())
    assert linked == runs
