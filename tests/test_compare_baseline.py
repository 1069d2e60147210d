"""compare --baseline with several indexes and experiments: each system meets the baseline run
closest to it (same index and experiment, else same index, else same experiment), and a choice
that stays ambiguous is an error naming the candidates."""

from __future__ import annotations

import pytest

from harness.store import open_memory_store
from leaderboard.compare import CompareSettings, compare_runs
from leaderboard.errors import CompareError
from store_helpers import add_run, around


def compared(db, baseline: str = "zero") -> dict[tuple[str, str], str]:
    """{(system label, its index): the reference it met, as experiment/variant@index}."""
    result = compare_runs(db, CompareSettings(baseline=baseline, bootstrap=50))
    systems = {s.label: s for g in result.groups for s in g.systems}
    return {(systems[c.system].experiment + "/" + systems[c.system].variant, systems[c.system].index):
            f"{systems[c.reference].experiment}/{systems[c.reference].variant}@{systems[c.reference].index}"
            for c in result.comparisons}


def test_each_index_meets_the_baseline_on_its_own_index() -> None:
    db = open_memory_store()
    for index, value in (("Flat", 0.3), ("PQ8", 0.2)):
        add_run(db, "zero", {"ndcg@10": around(value, spread=0.01)}, index=index, kind="zero-shot")
        add_run(db, "star", {"ndcg@10": around(value + 0.1, spread=0.02)}, index=index)
    assert compared(db) == {("exp/star", "Flat"): "exp/zero@Flat", ("exp/star", "PQ8"): "exp/zero@PQ8"}


def test_each_experiment_meets_its_own_baseline() -> None:
    db = open_memory_store()
    for experiment in ("one", "two"):
        add_run(db, "zero", {"ndcg@10": around(0.3, spread=0.01)}, experiment_name=experiment, kind="zero-shot")
        add_run(db, "star", {"ndcg@10": around(0.4, spread=0.02)}, experiment_name=experiment)
    assert compared(db) == {("one/star", "Flat"): "one/zero@Flat", ("two/star", "Flat"): "two/zero@Flat"}
    # a third experiment without a baseline of its own has two on its index: ambiguous
    add_run(db, "star", {"ndcg@10": around(0.4, spread=0.03)}, experiment_name="three")
    with pytest.raises(CompareError, match=r"baseline 'zero' is ambiguous for three/star: one/zero@Flat, "
                                           r"two/zero@Flat; name one as experiment/variant@index"):
        compared(db)
    assert compared(db, "two/zero")[("three/star", "Flat")] == "two/zero@Flat"


def test_an_ambiguous_baseline_names_the_candidates() -> None:
    db = open_memory_store()
    for index in ("Flat", "PQ8"):
        add_run(db, "zero", {"ndcg@10": around(0.3, spread=0.01)}, index=index, kind="zero-shot")
    add_run(db, "star", {"ndcg@10": around(0.4, spread=0.02)}, index="HNSW32")
    with pytest.raises(CompareError, match=r"^baseline 'zero' is ambiguous for star: exp/zero@Flat, exp/zero@PQ8; "
                                           r"name one as experiment/variant@index$"):
        compare_runs(db, CompareSettings(baseline="zero", bootstrap=50))
    assert compared(db, "zero@PQ8") == {("exp/star", "HNSW32"): "exp/zero@PQ8", ("exp/zero", "Flat"): "exp/zero@PQ8"}


def test_the_same_index_wins_over_the_same_experiment() -> None:
    db = open_memory_store()
    add_run(db, "zero", {"ndcg@10": around(0.3, spread=0.01)}, experiment_name="one", index="PQ8", kind="zero-shot")
    add_run(db, "zero", {"ndcg@10": around(0.3, spread=0.015)}, experiment_name="two", kind="zero-shot")
    add_run(db, "star", {"ndcg@10": around(0.4, spread=0.02)}, experiment_name="two", index="PQ8")
    assert compared(db)[("two/star", "PQ8")] == "one/zero@PQ8"
