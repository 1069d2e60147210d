"""A sweep's chosen point at the edge of its grid is said, by `run` and on the leaderboard."""

from __future__ import annotations

from leaderboard.rows import LeaderboardRow
from harness.recipe.grid import grid_edges, recipe_grids


def test_only_numeric_keys_at_an_edge_are_named() -> None:
    grid = {"lr": [1e-5, 2e-5, 5e-5], "epochs": [1, 3], "pooling": ["cls", "mean"], "negatives": [1, 1]}
    assert grid_edges(grid, {"lr": 2e-5, "epochs": 1, "pooling": "mean", "negatives": 1}) == [
        "epochs = 1, the smallest of 2"]
    assert grid_edges(grid, {"lr": 5e-5, "epochs": 3}) == ["lr = 5e-05, the largest of 3", "epochs = 3, the largest of 2"]
    assert grid_edges(grid, {"lr": 2e-5}) == [] and grid_edges({}, {"lr": 1.0}) == []


def test_grids_are_read_from_the_recipe_text_as_written() -> None:
    text = '[variant.star]\nkind = "star"\n[variant.star.sweep]\nlr = [1e-5, 2e-5]\n[variant.bm25]\nkind = "bm25"\n'
    assert recipe_grids(text) == {"star": {"lr": [1e-5, 2e-5]}}
    assert recipe_grids("not = [toml") == {}


def test_the_leaderboard_says_when_the_chosen_point_is_at_an_edge() -> None:
    selection = {"point": {"lr": 1e-4}, "metric": "ndcg@10", "score": 0.7}
    row = LeaderboardRow("e", "star", "star", "c", "Flat", {}, selection=selection, grid={"lr": [2e-5, 5e-5, 1e-4]})
    assert row.chosen == "lr=0.0001 (dev ndcg@10 0.7000) at the grid's edge: lr = 0.0001, the largest of 3"
    inside = LeaderboardRow("e", "star", "star", "c", "Flat", {}, selection={**selection, "point": {"lr": 5e-5}},
                            grid={"lr": [2e-5, 5e-5, 1e-4]})
    assert inside.chosen == "lr=5e-05 (dev ndcg@10 0.7000)"
