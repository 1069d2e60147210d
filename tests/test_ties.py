"""Ties are broken as trec_eval breaks them, so trec_eval on an exported run gives drbench's numbers."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.evaluate.metrics import evaluate
from harness.evaluate.ties import trec_order
from test_run import EndToEnd, end_to_end

pytrec_eval = pytest.importorskip("pytrec_eval")  # a dev dependency: CI always has it

# drbench (ranx) metric -> trec_eval measure
MEASURES = {"ndcg@10": "ndcg_cut_10", "recall@100": "recall_100", "precision@10": "P_10", "mrr": "recip_rank",
            "map": "map"}


def trec_eval(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """trec_eval's per-query values, under drbench's metric names."""
    measured = pytrec_eval.RelevanceEvaluator(qrels, set(MEASURES.values())).evaluate(run)
    return {ours: {q: measured[q][theirs] for q in measured} for ours, theirs in MEASURES.items()}


def test_equal_scores_go_by_doc_id_descending() -> None:
    assert trec_order([("d10", 1.0), ("d9", 2.0), ("d2", 1.0), ("d1", 1.0)]) == [
        ("d9", 2.0), ("d2", 1.0), ("d10", 1.0), ("d1", 1.0)]  # byte order: "d2" > "d10" > "d1"


def test_drbench_equals_trec_eval_on_a_run_full_of_ties() -> None:
    rng = np.random.default_rng(0)
    docs = [f"doc{i}" for i in range(60)]
    qrels = {f"q{i}": {d: int(rng.integers(1, 3)) for d in rng.choice(docs, 6, replace=False)} for i in range(40)}
    # scores from 4 values: most documents tie with many others
    run = {q: {d: float(rng.integers(0, 4)) for d in rng.choice(docs, 30, replace=False)} for q in qrels}
    ours = evaluate(qrels, {q: trec_order(list(ranked.items())) for q, ranked in run.items()}, list(MEASURES))
    theirs = trec_eval(qrels, run)
    for metric in MEASURES:
        for q in qrels:
            assert ours.query_metrics[metric][q] == pytest.approx(theirs[metric][q], abs=1e-9), (metric, q)
    # the order given matters without the tie-break: ranx keeps it (so the check above can fail)
    as_given = evaluate(qrels, {q: sorted(r.items(), key=lambda p: -p[1]) for q, r in run.items()}, ["ndcg@10"])
    assert as_given.metrics["ndcg@10"] != pytest.approx(ours.metrics["ndcg@10"], abs=1e-6)


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory, mirror: Path, tiny_model: Path) -> EndToEnd:
    return end_to_end(tmp_path_factory, mirror, tiny_model)


@pytest.mark.parametrize("variant, index", [("bm25", "bm25"), ("zero-shot", "Flat")])
def test_trec_eval_on_an_exported_run_gives_the_stored_numbers(e2e: EndToEnd, tmp_path: Path, mirror: Path,
                                                              variant: str, index: str) -> None:
    from harness.data.collection import load_collection

    output = tmp_path / "run.trec"
    args = ["export-run", variant, "cranfield", "-o", str(output), "--store", str(e2e.store)]
    assert CliRunner().invoke(app, args + ([] if index == "bm25" else ["--index", index])).exit_code == 0
    run: dict[str, dict[str, float]] = {}
    for line in output.read_text().splitlines():
        query_id, _, doc_id, _, score, _ = line.split()
        run.setdefault(query_id, {})[doc_id] = float(score)
    qrels = load_collection("cranfield", mirror, with_docs=False).qrels
    theirs = trec_eval(qrels, run)
    with closing(sqlite3.connect(e2e.store)) as db:
        stored = db.execute("SELECT q.metric, q.query_id, q.value FROM query_metrics q JOIN runs r ON r.id = q.run_id "
                            "WHERE r.variant = ? AND r.index_factory = ?", (variant, index)).fetchall()
    compared = [(metric, q, value) for metric, q, value in stored if metric in ("ndcg@10", "recall@100")]
    assert len(compared) == 2 * 225
    for metric, q, value in compared:
        assert theirs[metric].get(q, 0.0) == pytest.approx(value, abs=1e-9), (metric, q)
