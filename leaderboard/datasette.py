"""Datasette metadata for a results store: what each table and column holds, and canned queries.

`drbench serve` hands this to Datasette (read-only), so a store can be browsed, filtered and
queried in a browser, and every view fetched as JSON or CSV.
"""

from __future__ import annotations

from typing import Any

TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "experiments": ("One row per recipe run into this store, with its provenance.", {
        "name": "[experiment] name of the recipe.",
        "recipe_path": "Recipe file the experiment ran from.",
        "recipe_text": "The recipe's whole text (TOML).",
        "recipe_hash": "sha256 of recipe_text.",
        "git_commit": "drbench's git commit when the experiment ran.",
        "git_dirty": "1 when that working tree had uncommitted changes.",
        "packages": "Versions of the packages that determine numbers (JSON).",
        "seed": "The recipe's (first) seed.",
    }),
    "runs": ("One row per (experiment, variant, collection, index, seed): a ranking evaluated and stored.", {
        "variant": "Variant name in the recipe (a swept variant's chosen point is stored under its own name).",
        "kind": "Variant kind: bm25, zero-shot, inbatch, random, static, star, adore, star+adore.",
        "collection": "ir_datasets id evaluated on (a holdout dev split: TRAIN[holdout:F]).",
        "index_factory": "faiss factory string of the index searched, or bm25.",
        "seed": "Seed of the run's training and index codebooks.",
        "run_key": "sha256 of everything that determines the run's numbers; a matching run is reused.",
        "model": "The encoders' names, folders and fingerprints (JSON).",
        "params": "The variant's parameters (JSON).",
        "timings": "Seconds per stage (JSON).",
        "index_stats": "Bytes per document, build seconds, ms per query, overlap with exact search (JSON).",
        "compute": "Device, precision, processes and faiss build of a dense run (JSON).",
        "selection": ("A swept variant: the point chosen on the dev split, its dev score and every point's; "
                      "a variant chained on a swept one: the point it trained on, under \"on\" (JSON)."),
    }),
    "metrics": ("Each run's aggregate metrics (ranx names: ndcg@10, mrr@10, recall@100...).", {
        "value": "Mean over the collection's judged queries.",
    }),
    "query_metrics": ("Each run's metrics per query: what the paired significance tests compare.", {}),
    "results": ("Each run's ranking per query, up to its stored depth (1-based rank).", {}),
    "training_log": ("One row per optimizer step of a trained variant and seed.", {
        "loss": "Training loss of the step.",
        "lr": "Learning rate of the step.",
        "extra": "What the kind logs besides (JSON): hard/random losses, ADORE's train_mrr@10, dev scores.",
    }),
}

QUERIES: dict[str, dict[str, str]] = {
    "leaderboard": {
        # harness.store.seed_mean in SQL: avg() over the metrics rows the variant's stored runs have
        # is the mean over the seeds that have a value, and count(*) the number of those seeds.
        "title": "Leaderboard: each variant's metrics, mean over the seeds stored for it (seeds: how many)",
        "sql": """SELECT runs.experiment, runs.variant, runs.collection, runs.index_factory AS "index",
       metrics.metric, avg(metrics.value) AS value, count(*) AS seeds
FROM runs JOIN metrics ON metrics.run_id = runs.id
GROUP BY runs.experiment, runs.variant, runs.collection, runs.index_factory, metrics.metric
ORDER BY runs.experiment, runs.collection, runs.index_factory, metrics.metric, value DESC""",
    },
    "variant_runs": {
        "title": "The runs of a variant",
        "sql": """SELECT id, experiment, collection, index_factory AS "index", seed, finished_at, run_key
FROM runs WHERE variant = :variant ORDER BY experiment, collection, index_factory, seed""",
    },
    "side_by_side": {
        "title": "Per-query metrics of two runs side by side",
        "sql": """SELECT a.query_id, a.metric, a.value AS run_a, b.value AS run_b, b.value - a.value AS diff
FROM query_metrics AS a JOIN query_metrics AS b ON b.query_id = a.query_id AND b.metric = a.metric
WHERE a.run_id = :run_a AND b.run_id = :run_b ORDER BY a.metric, diff DESC""",
    },
    "training_log": {
        "title": "The training log of a variant",
        "sql": """SELECT seed, step, loss, lr, extra FROM training_log
WHERE experiment = :experiment AND variant = :variant ORDER BY seed, step""",
    },
}


def metadata(database: str) -> dict[str, Any]:
    """Datasette's metadata for the store served as `database` (its file name without .db)."""
    return {
        "title": "drbench results",
        "description": "Dense-retrieval runs stored by drbench: read-only.",
        "databases": {database: {
            "tables": {name: {"description": description, "columns": columns}
                       for name, (description, columns) in TABLES.items()},
            "queries": QUERIES,
        }},
    }
