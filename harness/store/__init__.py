"""The results store: one SQLite file holding experiments, runs, metrics and rankings.

Never imports torch, faiss, transformers or ir_datasets: the leaderboard reads it.

Example::

    db = open_store_readonly("results/drbench.db")
    run = find_run(db, "star", "beir/scifact/test", index_factory="Flat")
    ndcg = run_metrics(db, [run["id"]])[run["id"]]["ndcg@10"]
"""

from harness.store.connect import open_memory_store, open_store, open_store_readonly
from harness.store.db import (
    completed_run_key,
    drop_other_seeds,
    find_run,
    list_experiments,
    list_runs,
    query_metrics,
    ranks_of,
    run_metrics,
    run_results,
    write_run,
    write_trec_run,
)
from harness.store.seed_mean import SeedMean, seed_mean
from harness.store.training import training_log, training_seeds, write_training_log
from harness.store.provenance import (
    environment,
    git_commit,
    package_versions,
    sha256_text,
    utc_now,
)
from harness.store.schema import (
    MIGRATIONS,
    READABLE_FROM,
    SCHEMA_VERSION,
    SPARSE_INDEX,
    ExperimentRecord,
    RunRecord,
    migrate,
    schema_version,
)

__all__ = [
    "MIGRATIONS", "READABLE_FROM", "SCHEMA_VERSION", "SPARSE_INDEX", "ExperimentRecord", "RunRecord", "SeedMean",
    "completed_run_key", "drop_other_seeds",
    "environment", "find_run", "git_commit", "list_experiments", "list_runs", "migrate",
    "open_memory_store", "open_store", "open_store_readonly", "package_versions", "query_metrics", "run_metrics",
    "run_results", "schema_version", "seed_mean", "sha256_text", "training_log", "training_seeds", "utc_now", "write_run",
    "write_training_log", "write_trec_run",
]
