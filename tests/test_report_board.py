"""The report's leaderboard from a hand-built store (no training, no browser): each cell is the
mean over seeds ± the sd over seeds, its CI the bootstrap of the per-query seed means, ▲ against
the baseline (the first zero-shot system unless one is asked for), and a star on every best value."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from harness.store import open_memory_store
from leaderboard.compare import CompareSettings
from leaderboard.report.build import ReportOptions, build_report
from leaderboard.report.page import render_page
from leaderboard.stats import bootstrap_ci
from store_helpers import add_run

BASE = [float(x) for x in np.linspace(0.1, 0.5, 8)]  # mean 0.3
WIGGLE = [0.01 * (-1) ** i for i in range(8)]
SHIFTS = {14: 0.30, 13: 0.20, 15: 0.25}  # STAR's seeds, stored out of order: mean 0.55, sd 0.05
SETTINGS = CompareSettings(bootstrap=200, seed=42)


def star_scores(shift: float) -> list[float]:
    return [b + shift + w for b, w in zip(BASE, WIGGLE)]


def populate(db, tied: bool = False) -> None:
    add_run(db, "bm25", {"ndcg@10": [b + 5 * w for b, w in zip(BASE, WIGGLE)]}, kind="bm25", index="bm25")
    add_run(db, "zero", {"ndcg@10": BASE}, kind="zero-shot")
    for seed, shift in SHIFTS.items():
        add_run(db, "star", {"ndcg@10": star_scores(shift)}, seed=seed)
    if tied:  # one seed scoring STAR's mean on every query
        add_run(db, "twin", {"ndcg@10": star_scores(0.25)}, seed=13)


def report(tied: bool = False, **options):
    db = open_memory_store()
    populate(db, tied)
    return build_report(db, "s.db", ReportOptions(queries=3, settings=SETTINGS, **options))


def cells(section) -> dict[str, dict[str, object]]:
    return {row[0].text: dict(zip(section.board.columns, row)) for row in section.board.rows}


def test_a_metric_cell_is_the_mean_and_sd_over_seeds() -> None:
    [section] = report().collections
    star = cells(section)["star"]
    assert star["ndcg@10"].text == "0.5500 ±0.0500" and star["ndcg@10"].sort == pytest.approx(0.55)
    assert statistics.stdev(SHIFTS.values()) == pytest.approx(0.05)
    assert star["seeds"].text == "3" and star["seeds"].hint == "seeds 13, 14, 15"
    zero = cells(section)["zero"]
    assert zero["ndcg@10"].text == "0.3000" and zero["seeds"].hint == "seed 13"  # one run: no ±


def test_the_ci_is_the_bootstrap_of_the_per_query_seed_means() -> None:
    [section] = report().collections
    per_query = np.mean([star_scores(shift) for shift in SHIFTS.values()], axis=0)
    low, high = bootstrap_ci(per_query, SETTINGS.bootstrap, SETTINGS.seed)
    assert cells(section)["star"]["ndcg@10"].hint.startswith(f"95% bootstrap CI of the mean [{low:.4f}, {high:.4f}]")


def test_the_baseline_is_the_first_zero_shot_system_and_the_better_one_is_marked() -> None:
    [section] = report().collections
    assert section.baseline == "exp/zero@Flat" and section.note == ""
    board = cells(section)
    assert board["zero"]["system"].hint == "the baseline" and board["bm25"]["system"].hint == ""
    assert board["star"]["ndcg@10"].marker == "▲" and "vs zero: +0.2500" in board["star"]["ndcg@10"].hint
    assert board["bm25"]["ndcg@10"].marker == ""  # the same mean: not better
    assert [row[0].text for row in section.board.rows] == ["bm25", "zero", "star"]  # store order


def test_an_asked_baseline_wins_over_zero_shot() -> None:
    [section] = report(baseline="star").collections
    assert section.baseline == "star"
    board = cells(section)
    assert board["star"]["system"].hint == "the baseline" and board["zero"]["ndcg@10"].marker == "▼"


def test_only_the_best_value_is_starred_and_a_tie_stars_both() -> None:
    [section] = report().collections
    assert {name: row["ndcg@10"].best for name, row in cells(section).items()} == {
        "bm25": False, "zero": False, "star": True}
    [section] = report(tied=True).collections
    assert {name: row["ndcg@10"].best for name, row in cells(section).items()} == {
        "bm25": False, "zero": False, "star": True, "twin": True}


def test_the_page_shows_the_cells() -> None:
    page = render_page(report())
    assert "0.5500 ±0.0500" in page and "0.3000" in page and "▲" in page


def test_the_drill_down_shows_the_widest_spread_queries_with_seed_mean_metrics() -> None:
    # per query: zero = BASE, bm25 = BASE +- 0.05, STAR's seed mean = BASE + 0.25 +- 0.01; the spread
    # (best - worst system) is 0.29 on odd queries and 0.26 on even ones
    [section] = report().collections
    drill = section.drill
    assert drill["systems"] == ["bm25", "zero", "star"] and drill["seeds"] == [[13], [13], [13, 14, 15]]
    # queries=3: three of the four widest (equal up to float rounding, which decides among them)
    shown = {q["id"]: q for q in drill["queries"]}
    assert len(shown) == 3 and set(shown) < {"q01", "q03", "q05", "q07"}
    assert drill["covered"] == 3 and drill["total"] == 8
    for query_id, query in shown.items():
        i = int(query_id[1:])
        assert query["spread"] == pytest.approx(0.29)
        assert query["metrics"] == [[round(BASE[i] - 0.05, 4)], [round(BASE[i], 4)], [round(BASE[i] + 0.24, 4)]]
