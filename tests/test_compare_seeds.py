"""compare with several seeds: per-query scores are the mean over seeds, and "seeds agree" counts
the seed pairs whose difference (system - reference) has the sign of the difference of the means,
paired by seed where both systems share seeds, else every seed against every seed.

Seed means are chosen so that each count is known: ADORE beats STAR on seeds 13 and 14 and loses
on seed 15 (2 of 3 agree), and beats BM25's single run on every seed but 15.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.store import open_memory_store, open_store
from leaderboard.compare import CompareSettings, compare_runs
from store_helpers import add_run, around

STAR = {13: 0.50, 14: 0.50, 15: 0.50}
ADORE = {13: 0.60, 14: 0.70, 15: 0.40}  # mean 0.5667 > 0.5: seeds 13 and 14 agree, 15 does not
OTHER = {21: 0.45, 22: 0.65}  # seeds STAR does not have: mean 0.55, every seed meets every seed
BM25 = 0.45


def populate(db) -> None:
    # a jitter of its own per system, so no paired difference is constant (a degenerate t-test)
    add_run(db, "bm25", {"ndcg@10": around(BM25, spread=0.03)}, kind="bm25")
    for variant, seeds, spread in (("star", STAR, 0.02), ("adore", ADORE, 0.01), ("other", OTHER, 0.015)):
        for seed, mean in seeds.items():
            add_run(db, variant, {"ndcg@10": around(mean, spread=spread)}, seed=seed)


def comparisons(db, baseline: str | None = None) -> dict[tuple[str, str], object]:
    result = compare_runs(db, CompareSettings(baseline=baseline, bootstrap=100))
    return {(c.reference, c.system): c for c in result.comparisons}


@pytest.fixture
def db():
    db = open_memory_store()
    populate(db)
    return db


def test_systems_sharing_seeds_pair_by_seed(db) -> None:
    c = comparisons(db, "star")[("star", "adore")]
    assert c.diff == pytest.approx(sum(ADORE.values()) / 3 - 0.5)
    assert (c.seeds_agree, c.seed_pairs) == (2, 3) and c.agreement == "2/3"


def test_the_count_is_the_same_from_either_side(db) -> None:
    # adore as the reference: diff is negative, and STAR's seed 15 is the one pair that agrees with it
    c = comparisons(db, "adore")[("adore", "star")]
    assert c.diff < 0 and (c.seeds_agree, c.seed_pairs) == (2, 3)


def test_a_single_run_meets_every_seed(db) -> None:
    found = comparisons(db, "bm25")
    adore = found[("bm25", "adore")]  # 0.60, 0.70 beat 0.45; 0.40 does not
    assert (adore.seeds_agree, adore.seed_pairs) == (2, 3)
    star = found[("bm25", "star")]
    assert (star.seeds_agree, star.seed_pairs) == (3, 3)


def test_systems_without_shared_seeds_meet_every_seed_pair(db) -> None:
    # other - star: mean 0.55 - 0.5 > 0; pairs (0.45|0.65) x (0.5, 0.5, 0.5): 3 of 6 agree
    c = comparisons(db, "star")[("star", "other")]
    assert c.diff > 0 and (c.seeds_agree, c.seed_pairs) == (3, 6)
    # other - adore: 0.55 - 0.5667 < 0; pairs below zero: 0.45-0.6, 0.45-0.7, 0.65-0.7 (0.45 - 0.4 > 0,
    # 0.65 - 0.6 > 0, 0.65 - 0.4 > 0): 3 of 6
    c = comparisons(db)[("adore", "other")]
    assert c.diff < 0 and (c.seeds_agree, c.seed_pairs) == (3, 6)


def test_per_query_scores_of_a_multi_seed_system_are_its_seed_means(db) -> None:
    c = comparisons(db, "bm25")[("bm25", "adore")]
    assert c.system_mean == pytest.approx(sum(ADORE.values()) / 3) and c.reference_mean == pytest.approx(BM25)
    # per query ADORE's seed mean is 0.5667 +- 0.01, BM25's 0.45 +- 0.03: ADORE wins every query
    assert (c.wins, c.ties, c.losses) == (4, 0, 0)


def test_the_cli_shows_the_agreement(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    db = open_store(store)
    populate(db)
    db.close()
    result = CliRunner().invoke(app, ["compare", "--store", str(store), "--baseline", "star", "--format", "json"])
    assert result.exit_code == 0, result.output
    found = {c["system"]: (c["seeds_agree"], c["seed_pairs"]) for c in json.loads(result.output)["comparisons"]}
    assert found == {"bm25": (3, 3), "adore": (2, 3), "other": (3, 6)}
    table = CliRunner().invoke(app, ["compare", "--store", str(store), "--baseline", "star"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and " 2/3 " in table.output and " 3/6 " in table.output
