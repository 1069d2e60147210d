"""drbench plot: PNGs written for a tiny populated store; the size plot skipped with one index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.store import ExperimentRecord, RunRecord, open_memory_store, open_store, write_run, write_training_log
from leaderboard.plot import plot_store

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def populate(db, indexes: tuple[str, ...] = ("Flat", "PQ8")) -> None:
    experiment = ExperimentRecord(name="tiny", recipe_path=None, recipe_text="", recipe_hash="h", git_commit=None,
                                  git_dirty=False, packages={}, python="3.11", platform="test", seed=1,
                                  started_at="t")
    rng = np.random.default_rng(0)
    for variant, shift in (("zero-shot", 0.0), ("adore", 0.1)):
        for index, size in zip(indexes, (1536.0, 8.0)):
            scores = {m: np.clip(rng.random(12) * 0.6 + shift - (0.05 if index != "Flat" else 0), 0, 1)
                      for m in ("ndcg@10", "mrr@10")}
            write_run(db, experiment, RunRecord(
                experiment="tiny", variant=variant, kind=variant, collection="beir/toy/test", index_factory=index,
                run_key="k", model=None, depth=10, n_docs=10, started_at="t", finished_at="t",
                timings={"search": 0.1}, index_stats={"bytes_per_doc": size},
                metrics={m: float(v.mean()) for m, v in scores.items()},
                query_metrics={m: {f"q{i}": float(x) for i, x in enumerate(v)} for m, v in scores.items()}))
    write_training_log(db, "tiny", "adore", [{"step": s, "loss": 1.0 / s, "lr": 1e-5, "train_mrr@10": 0.3 + s / 100}
                                             for s in range(1, 6)], seed=1)


def assert_png(path: Path) -> None:
    assert path.is_file() and path.read_bytes()[:8] == PNG_SIGNATURE, path


def test_plots_are_valid_pngs(tmp_path: Path) -> None:
    db = open_memory_store()
    populate(db)
    written, skipped = plot_store(db, tmp_path / "plots", bootstrap=200)
    assert sorted(p.name for p in written) == ["beir_toy_test-metrics.png", "beir_toy_test-size.png",
                                               "tiny-training.png"]
    for path in written:
        assert_png(path)
    assert skipped == []


def test_cli_plot_skips_size_plot_with_one_index(tmp_path: Path) -> None:
    store = tmp_path / "r.db"
    db = open_store(store)
    populate(db, indexes=("Flat",))
    db.close()
    result = CliRunner().invoke(app, ["plot", "--store", str(store), "--out", str(tmp_path / "out"),
                                      "--metrics", "ndcg@10"])
    assert result.exit_code == 0, result.output
    assert "skipped quality vs bytes per document" in result.output
    printed = [Path(line) for line in result.output.splitlines() if line.endswith(".png")]
    assert {p.name for p in printed} == {"tiny-training.png", "beir_toy_test-metrics.png"}
    for path in printed:
        assert_png(path)


@pytest.mark.parametrize("args, fragment", [
    (["--collection", "nope"], "unknown collection 'nope'"),
    (["--metrics", "map"], "unknown metric 'map'"),
], ids=["collection", "metric"])
def test_cli_plot_errors(tmp_path: Path, args: list[str], fragment: str) -> None:
    store = tmp_path / "r.db"
    populate(open_store(store), indexes=("Flat",))
    result = CliRunner().invoke(app, ["plot", "--store", str(store), "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2 and fragment in result.output and len(result.output.strip().splitlines()) == 1


def test_a_swept_variant_shows_its_chosen_points_training_curve() -> None:
    """On the evaluation split a swept variant is stored under its own name (`star`), but it
    trained as its chosen point (`star[lr=2e-05]`), whose log the training plot must find."""
    from leaderboard.plot import store_plots

    db = open_memory_store()
    experiment = ExperimentRecord(name="swept", recipe_path=None, recipe_text="", recipe_hash="h", git_commit=None,
                                  git_dirty=False, packages={}, python="3.11", platform="test", seed=1,
                                  started_at="t")
    write_run(db, experiment, RunRecord(
        experiment="swept", variant="star", kind="star", collection="beir/toy/test", index_factory="Flat",
        run_key="k", model=None, depth=10, n_docs=10, started_at="t", finished_at="t", seed=1,
        metrics={"ndcg@10": 0.5}, query_metrics={"ndcg@10": {"q1": 0.5, "q2": 0.5}},
        selection={"name": "star[lr=2e-05]", "point": {"lr": 2e-05}, "metric": "ndcg@10", "score": 0.6}))
    write_training_log(db, "swept", "star[lr=2e-05]", [{"step": s, "loss": 1.0 / s} for s in range(1, 4)], seed=1)
    # A variant chained on it records only the point it trained on (no point of its own).
    write_run(db, experiment, RunRecord(
        experiment="swept", variant="adore", kind="adore", collection="beir/toy/test", index_factory="Flat",
        run_key="k2", model=None, depth=10, n_docs=10, started_at="t", finished_at="t", seed=1,
        metrics={"ndcg@10": 0.6}, query_metrics={"ndcg@10": {"q1": 0.6, "q2": 0.6}},
        selection={"on": {"star": "star[lr=2e-05]"}}))
    write_training_log(db, "swept", "adore", [{"step": s, "loss": 0.5 / s} for s in range(1, 4)], seed=1)
    plots, skipped = store_plots(db, collection="beir/toy/test", bootstrap=50)
    training = [p for p in plots if p.what == "training"]
    assert len(training) == 1 and not [s for s in skipped if "training" in s]
    labels = [t.get_text() for t in training[0].figure.legends[0].get_texts()]
    assert sorted(labels) == ["adore", "star = star[lr=2e-05]"]


def test_the_cost_plot_shows_each_trained_model_once_across_indexes() -> None:
    """Quality against training cost: one point per trained model (its run on the first index),
    one dashed line per untrained system, however many indexes each was evaluated with."""
    from leaderboard.plot import store_plots

    db = open_memory_store()
    experiment = ExperimentRecord(name="cost", recipe_path=None, recipe_text="", recipe_hash="h", git_commit=None,
                                  git_dirty=False, packages={}, python="3.11", platform="test", seed=1,
                                  started_at="t")
    for variant, units in (("zero-shot", None), ("star", 700), ("ance", 1900)):
        trained = {"trained": {"key": variant, "cost": {"documents": units - 100, "examples": 100, "units": units,
                                                        "parts": {}}}} if units else None
        for index, drop in (("Flat", 0.0), ("PQ8", 0.05)):
            scores = np.full(4, 0.5 + (units or 0) / 10_000 - drop)
            write_run(db, experiment, RunRecord(
                experiment="cost", variant=variant, kind=variant, collection="c", index_factory=index, run_key="k",
                model=trained, depth=10, n_docs=10, started_at="t", finished_at="t",
                timings={"search": 0.1, **({"train_chain": units / 10} if units else {})}, index_stats={},
                metrics={"ndcg@10": float(scores.mean())},
                query_metrics={"ndcg@10": {f"q{i}": float(x) for i, x in enumerate(scores)}}))
    plots, _ = store_plots(db, bootstrap=20)
    [cost] = [p for p in plots if p.what == "cost"]
    units_axes = cost.figure.axes[0]
    points = sorted(tuple(np.round(p, 4)) for c in units_axes.collections for p in c.get_offsets())
    assert points == [(700.0, 0.57), (700.0, 0.57), (1900.0, 0.69), (1900.0, 0.69)]  # Flat's: a seed dot, the mean
    assert [line.get_linestyle() for line in units_axes.lines] == ["--"]  # zero-shot once
    assert "Flat" in cost.caption
