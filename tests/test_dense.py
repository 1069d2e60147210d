"""The index axis: what each index costs (bytes per document, times, recall of the exact top-k)
is stored per run and shown by the leaderboard, next to which index ADORE trained against."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.dense import overlap_with_exact
from harness.store import list_runs, open_store
from leaderboard import leaderboard_rows
from test_run import end_to_end


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, mirror: Path, tiny_model: Path) -> dict[str, dict]:
    e2e = end_to_end(tmp_path_factory, mirror, tiny_model)
    db = open_store(e2e.store, create=False)
    return {r["index_factory"]: r for r in list_runs(db) if r["variant"] == "zero-shot"} | {"_store": e2e.store}


def test_bytes_per_document_is_the_code_size(runs: dict) -> None:
    # the tiny model has 32 float32 dimensions: Flat keeps 128 bytes, PQ8 one byte per sub-quantizer
    assert runs["Flat"]["index_stats"]["bytes_per_doc"] == 128
    assert runs["PQ8"]["index_stats"]["bytes_per_doc"] == 8


def test_recall_against_the_exact_top_k(runs: dict) -> None:
    assert runs["Flat"]["index_stats"]["flat_recall@10"] == 1.0
    assert runs["Flat"]["index_stats"]["flat_recall@100"] == 1.0
    assert 0.0 < runs["PQ8"]["index_stats"]["flat_recall@10"] < 1.0


def test_build_and_search_times_are_stored(runs: dict) -> None:
    for factory in ("Flat", "PQ8"):
        stats = runs[factory]["index_stats"]
        assert stats["build_seconds"] >= 0 and stats["ms_per_query"] > 0


def test_overlap_with_exact_by_hand() -> None:
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    ids = np.array([[1, 9, 3, 4], [8, 7, 6, 5]])
    # query 1 finds 3 of the exact top 4, query 2 all 4 (order does not matter)
    assert overlap_with_exact(ids, exact, cutoffs=(2, 4)) == {"flat_recall@2": 0.25, "flat_recall@4": 0.875}


def test_leaderboard_shows_index_costs(runs: dict) -> None:
    result = CliRunner().invoke(app, ["leaderboard", "--store", str(runs["_store"])])
    assert result.exit_code == 0, result.output
    assert "bytes/doc" in result.output and "flat R@10" in result.output
    rows = json.loads(CliRunner().invoke(app, ["leaderboard", "--store", str(runs["_store"]), "--format",
                                                "json"]).output)
    pq = next(r for r in rows if r["variant"] == "zero-shot" and r["index"] == "PQ8")
    assert pq["index_stats"]["bytes_per_doc"] == 8 and pq["trained_on_index"] is None


def test_compressed_results_name_the_faiss_release_they_came_from(runs: dict) -> None:
    import faiss

    rows = json.loads(CliRunner().invoke(app, ["leaderboard", "--store", str(runs["_store"]), "--format",
                                                "json"]).output)
    assert {r["faiss"].split()[0] for r in rows if r["index"] != "bm25"} == {faiss.__version__}
    table = CliRunner().invoke(app, ["leaderboard", "--store", str(runs["_store"])], terminal_width=250).output
    assert f"PQ8 (faiss {faiss.__version__})" in table  # beside the compressed index, where it matters
    assert "Flat (faiss" not in table


def test_leaderboard_names_the_index_adore_trained_on(tmp_path: Path) -> None:
    from harness.store import ExperimentRecord, RunRecord, write_run

    db = open_store(tmp_path / "s.db")
    exp = ExperimentRecord(name="x", recipe_path="r.toml", recipe_text="", recipe_hash="h", git_commit=None,
                           git_dirty=False, packages={}, python="3", platform="p", seed=1, started_at="t")
    for variant, trained_on in (("adore-flat", "Flat"), ("adore-pq", "PQ8")):
        write_run(db, exp, RunRecord(experiment="x", variant=variant, kind="adore", collection="c",
                                     index_factory="PQ8", run_key=variant, model=None, depth=10, n_docs=1,
                                     started_at="t", finished_at="t", params={"train_index": trained_on},
                                     metrics={"ndcg@10": 0.5}))
    rows = {r.variant: r for r in leaderboard_rows(db)}
    assert rows["adore-flat"].trained_on == "Flat" and rows["adore-pq"].trained_on == "PQ8"
