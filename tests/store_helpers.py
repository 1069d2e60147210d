"""Hand-built stores for the read side: runs whose per-query values a test chooses, so the
numbers the leaderboard, compare, plots and selection derive from them can be computed by hand."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.store import ExperimentRecord, RunRecord, write_run


def experiment(name: str = "exp", recipe_text: str = "") -> ExperimentRecord:
    return ExperimentRecord(name=name, recipe_path=None, recipe_text=recipe_text, recipe_hash="h", git_commit=None,
                            git_dirty=False, packages={}, python="3.11", platform="test", seed=13,
                            started_at="2024-01-01T00:00:00+00:00")


def add_run(db: Any, variant: str, scores: dict[str, list[float]], *, seed: int = 13, experiment_name: str = "exp",
            collection: str = "toy", index: str = "Flat", kind: str = "star", bytes_per_doc: float | None = None,
            selection: dict[str, Any] | None = None, recipe_text: str = "") -> int:
    """Store one run of `variant` whose per-query values are `scores[metric]` (queries q00, q01, ...)
    and whose aggregate metric is their mean."""
    run = RunRecord(experiment=experiment_name, variant=variant, kind=kind, collection=collection,
                    index_factory=index, run_key=f"{variant}-{seed}-{index}", model=None, depth=10, n_docs=100,
                    started_at="t", finished_at="t", seed=seed, selection=selection,
                    index_stats={} if bytes_per_doc is None else {"bytes_per_doc": bytes_per_doc, "build_seconds": 0.5,
                                                                  "ms_per_query": 1.0},  # as a dense search stores them
                    metrics={m: float(np.mean(v)) for m, v in scores.items()},
                    query_metrics={m: {f"q{i:02d}": float(x) for i, x in enumerate(v)} for m, v in scores.items()})
    return write_run(db, experiment(experiment_name, recipe_text), run)


def around(mean: float, n: int = 4, spread: float = 0.02) -> list[float]:
    """`n` per-query values whose mean is exactly `mean` (a zero-mean jitter, so paired tests are
    not degenerate)."""
    jitter = [spread if i % 2 == 0 else -spread for i in range(n)]
    return [mean + j for j in jitter]
