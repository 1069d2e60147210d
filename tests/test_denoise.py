"""Denoised hard negatives (harness/train/denoise.py): each key's effect on hand-made rankings,
sentence-transformers' semantics, defaults equal to today's hard_negatives, validation, keys, and
a static variant mining with a relative margin that trains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.data.collection import Collection
from harness.errors import RecipeError
from harness.pipeline.models import mined_key
from harness.recipe.loader import parse_recipe
from harness.train.data import TrainData
from harness.train.denoise import Denoise, denoised_negatives
from harness.train.mining import hard_negatives, mining_depth
from harness.train.strategies.static import KIND as static, StaticParams

# Fixtures (cranfield, one_torch_thread, use_cranfield) are used by name or applied by import, hence the noqa.
from train_helpers import (  # noqa: F401
    console_text, one_torch_thread, cranfield, hand_data, recipe_text, stage_context, use_cranfield)

# q1's positive is row 0 (score 10), q2's are rows 1 and 2 (scores 10 and 8): its margins use 8.
RANKED = {"q1": [(0, 10.0), (5, 9.8), (6, 9.0), (7, 8.0), (8, 5.0), (9, 1.0)],
          "q2": [(1, 10.0), (4, 9.0), (2, 8.0), (5, 7.9), (6, 7.0), (3, 2.0)],
          "q3": [(3, 4.0), (2, 3.0)], "q4": [(3, 1.0)]}
POSITIVE_SCORES = {"q1": [10.0], "q2": [10.0, 8.0], "q3": [3.0], "q4": [1.0]}


def mine(depth: int = 3, **settings: object) -> dict[str, list[int]]:
    negatives = denoised_negatives(RANKED, depth, hand_data(), Denoise(**settings),  # type: ignore[arg-type]
                                   POSITIVE_SCORES, np.random.default_rng(0))
    return {q: v.tolist() for q, v in negatives.items()}


def test_defaults_are_todays_hard_negatives() -> None:
    rows = {q: [r for r, _ in ranked] for q, ranked in RANKED.items()}
    today = {q: v.tolist() for q, v in hard_negatives(rows, 3, hand_data()).items()}
    assert mine() == today == {"q1": [5, 6, 7], "q2": [4, 5, 6], "q3": [3], "q4": []}
    assert Denoise().key(seed=3) == {} and not Denoise().needs_scores
    assert Denoise().retrieve_depth(3, hand_data()) == mining_depth(3, hand_data())


def test_range_min_skips_the_top_survivors() -> None:
    assert mine(range_min=1) == {"q1": [6, 7, 8], "q2": [5, 6, 3], "q3": [], "q4": []}
    # after the filters, as s-t: 5 is rejected first, so range_min skips 6, not 5
    assert mine(range_min=1, max_score=9.5)["q1"] == [7, 8, 9]


def test_range_max_bounds_the_candidates() -> None:
    # the first 2 non-positive ranks only (q2's positives 1 and 2 do not count)
    assert mine(range_max=2) == {"q1": [5, 6], "q2": [4, 5], "q3": [3], "q4": []}
    assert Denoise(range_max=50).retrieve_depth(3, hand_data()) == 50 + 2  # + the largest positive set
    assert Denoise(range_min=4).retrieve_depth(3, hand_data()) == 4 + 3 + 10 + 2


def test_max_score_drops_candidates_above_it() -> None:
    assert mine(max_score=8.0) == {"q1": [7, 8, 9], "q2": [5, 6, 3], "q3": [3], "q4": []}


def test_absolute_margin_keeps_scores_at_most_positive_minus_margin() -> None:
    # q1: 10 - 1 = 9 (9.0 stays: s-t rejects only score + margin > positive); q2: min(10, 8) - 1 = 7
    assert mine(absolute_margin=1.0) == {"q1": [6, 7, 8], "q2": [6, 3], "q3": [], "q4": []}


def test_relative_margin_keeps_scores_at_most_a_share_of_the_positive() -> None:
    # q1: 10 * 0.95 = 9.5; q2: 8 * 0.95 = 7.6 (its lowest-scoring positive); q3: 3 * 0.95 < 4
    assert mine(relative_margin=0.05) == {"q1": [6, 7, 8], "q2": [6, 3], "q3": [], "q4": []}


def test_random_sampling_is_seeded_and_draws_among_the_eligible() -> None:
    data = hand_data()
    ranked = {q: [(r, 100.0 - r) for r in range(10)] for q in data.query_ids}
    denoise = Denoise(range_min=1, range_max=7, sampling="random")

    def draw(seed: int) -> dict[str, list[int]]:
        return {q: v.tolist() for q, v in
                denoised_negatives(ranked, 3, data, denoise, rng=np.random.default_rng(seed)).items()}

    first = draw(0)
    assert first == draw(0)
    assert any(draw(seed) != first for seed in range(1, 5))
    for q, rows in first.items():
        eligible = [r for r in range(10) if r not in data.positives[q]][:7][1:]
        assert len(rows) == 3 and set(rows) <= set(eligible) and rows == sorted(rows)  # rank order kept
    # fewer eligible than depth: all of them
    assert draw(0)["q1"] != [] and denoised_negatives(ranked, 9, data, denoise,
                                                      rng=np.random.default_rng(0))["q1"].tolist() == list(range(2, 8))


def test_margins_need_positive_scores() -> None:
    with pytest.raises(ValueError, match="positives' scores"):
        denoised_negatives(RANKED, 3, hand_data(), Denoise(relative_margin=0.05))


def test_keys_change_only_when_a_setting_is_set(cranfield: Collection) -> None:
    base = mined_key(None, 200, cranfield)
    assert mined_key(None, 200, cranfield, Denoise().key(3)) == base
    set_keys = {mined_key(None, 200, cranfield, Denoise(**s).key(3))  # type: ignore[arg-type]
                for s in ({"range_min": 1}, {"range_max": 50}, {"max_score": 0.9}, {"absolute_margin": 0.1},
                          {"relative_margin": 0.05}, {"sampling": "random"})}
    assert len(set_keys) == 6 and base not in set_keys
    assert Denoise(sampling="random").key(3) != Denoise(sampling="random").key(4)  # a draw depends on its seed
    assert StaticParams().key_dict() == StaticParams(sampling="top").key_dict()
    assert "relative_margin" in StaticParams(relative_margin=0.05).key_dict()


STATIC = '[variant.{name}]\nkind = "static"\nnegatives_from = "base"\nnegatives_depth = 5\n{extra}'


@pytest.mark.parametrize("extra, fragment", [
    ("range_min = 5\nrange_max = 5\n", "[variant.s] range_min = 5: must be below range_max (5)"),
    ("relative_margin = 1.0\n", "[variant.s] relative_margin = 1.0: must be below 1"),
    ("absolute_margin = -0.5\n", "[variant.s] absolute_margin = -0.5: must be >= 0"),
    ('sampling = "rand"\n', '[variant.s] sampling = "rand"'),
])
def test_validation_names_the_key(tmp_path: Path, extra: str, fragment: str) -> None:
    text = STATIC.format(name="s", extra=extra)
    with pytest.raises(RecipeError) as err:
        parse_recipe(recipe_text(tmp_path, tmp_path, text), "x.toml")
    assert fragment in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_static_with_a_relative_margin_mines_other_negatives_and_trains(
        tiny_model: Path, tmp_path: Path, use_cranfield: Collection, mirror: Path) -> None:
    variants = (STATIC.format(name="plain", extra="max_steps = 2\nbatch_size = 4\n")
                + STATIC.format(name="denoised", extra="max_steps = 2\nbatch_size = 4\nrelative_margin = 0.05\n"))
    models = stage_context(recipe_text(tmp_path, tiny_model, variants), tmp_path / "cache")
    data = TrainData.from_collection(use_cranfield)
    plain_needs, denoised_needs = (static.needs(models.recipe.variant(v).params) for v in ("plain", "denoised"))
    plain, plain_key = models._negatives(plain_needs, data, use_cranfield)
    denoised, denoised_key = models._negatives(denoised_needs, data, use_cranfield)
    assert plain_key != denoised_key
    assert plain_key == mined_key(models.model("base").identity, 5, use_cranfield)  # today's key
    assert any(plain[q].tolist() != denoised[q].tolist() for q in data.query_ids)
    # every kept negative scores at most 95% of the query's lowest-scoring positive
    base = models.model("base")
    docs, _ = base.encode_corpus(use_cranfield, tmp_path / "cache", models.progress, models.console)
    queries = base.encode_queries([data.queries[q] for q in data.query_ids], lambda _: None)
    for i, q in enumerate(data.query_ids):
        ceiling = 0.95 * min(float(docs[p] @ queries[i]) for p in data.positives[q])
        assert all(float(docs[r] @ queries[i]) <= ceiling + 1e-5 for r in denoised[q].tolist())
        assert not set(denoised[q].tolist()) & set(data.positives[q])
    trained = models.resolve("denoised")
    assert trained.trained is not None and trained.trained["steps"] == 2
    # `drbench plan` computes the same negatives key, so it finds the model trained on them
    from harness.pipeline.plan_status import _Lookup

    planned = _Lookup(models.recipe, tmp_path / "cache", mirror, None).model("denoised", 3)
    assert planned.ref.trained is not None and planned.ref.trained["key"] == trained.trained["key"]


def test_bm25_scores_rank_as_its_rows_and_score_every_positive(cranfield: Collection) -> None:
    from harness.train.mining import bm25_ranking, bm25_scored

    data = TrainData.from_collection(cranfield)
    rows = bm25_ranking(data, cranfield, 30)
    scored, positive_scores = bm25_scored(data, cranfield, 30)
    assert {q: [r for r, _ in v] for q, v in scored.items()} == rows
    assert all([s for _, s in v] == sorted((s for _, s in v), reverse=True) for v in scored.values())
    # a positive's score is the one retrieval gives it where it ranks, and 0 where it shares no term
    ranked_positives = 0
    for q in data.query_ids:
        assert len(positive_scores[q]) == len(data.positives[q])
        score = dict(scored[q])
        for p, s in zip(data.positives[q], positive_scores[q]):
            if p in score:
                ranked_positives += 1
                assert s == pytest.approx(score[p], rel=1e-5)
            else:
                assert s <= min(score.values(), default=np.inf) + 1e-5
    assert ranked_positives > 50
    cap = float(np.median([s for v in scored.values() for _, s in v]))
    capped = denoised_negatives(scored, 20, data, Denoise(max_score=cap))
    assert all(dict(scored[q])[r] <= cap for q, v in capped.items() for r in v.tolist())
    assert sum(map(len, capped.values())) < sum(map(len, hard_negatives(rows, 20, data).values()))


def test_bm25_mines_with_a_relative_margin(tmp_path: Path, cranfield: Collection) -> None:
    from harness.train.mining import bm25_scored

    text = (STATIC.format(name="plain", extra="") + STATIC.format(name="denoised", extra="relative_margin = 0.1\n")
            ).replace('negatives_from = "base"\n', "")
    models = stage_context(recipe_text(tmp_path, tmp_path / "unused", text), tmp_path / "cache")
    data = TrainData.from_collection(cranfield)
    plain, plain_key = models._negatives(static.needs(models.recipe.variant("plain").params), data, cranfield)
    denoised, key = models._negatives(static.needs(models.recipe.variant("denoised").params), data, cranfield)
    assert plain_key == mined_key(None, 5, cranfield) != key
    scored, positive_scores = bm25_scored(data, cranfield, 100)
    changed = 0
    for q in data.query_ids:
        score, ceiling = dict(scored[q]), 0.9 * min(positive_scores[q])
        assert all(score[r] <= ceiling + 1e-5 for r in denoised[q].tolist())
        changed += plain[q].tolist() != denoised[q].tolist()
    assert changed > 0


def test_the_plan_names_denoised_negatives_apart(tmp_path: Path) -> None:
    from harness.recipe import build_plan

    text = (STATIC.format(name="plain", extra="") + STATIC.format(name="denoised", extra="relative_margin = 0.05\n")
            + STATIC.format(name="drawn", extra='sampling = "random"\n'))
    plan = build_plan(parse_recipe(recipe_text(tmp_path, tmp_path, text)))
    training = {r.variant: r for r in plan.runs if r.trains}
    made = {v: [a for a in r.produces if a.startswith("negatives:")] for v, r in training.items()}
    assert made == {"plain": ["negatives:base:5"], "denoised": ["negatives:base:5[relative_margin=0.05]"],
                    "drawn": ["negatives:base:5[sampling=random, seed=3]"]}
    assert not training["denoised"].after and not training["drawn"].after  # nothing the plain run makes


def test_mining_says_how_many_queries_the_denoising_left_without_negatives(tmp_path: Path,
                                                                           cranfield: Collection) -> None:
    text = (STATIC.format(name="some", extra="relative_margin = 0.05\n")
            + STATIC.format(name="none", extra="max_score = -1e9\n")).replace('negatives_from = "base"\n', "")
    models = stage_context(recipe_text(tmp_path, tmp_path / "unused", text), tmp_path / "cache")
    data = TrainData.from_collection(cranfield)
    some, _ = models._negatives(static.needs(models.recipe.variant("some").params), data, cranfield)
    counts = [len(v) for v in some.values()]
    full, none = sum(c == 5 for c in counts), sum(c == 0 for c in counts)
    assert 0 < full < len(counts)  # the margin leaves some queries fewer than 5
    expected = (f"mined up to 5 hard negatives per query from bm25 ({len(counts)} training queries: {full} with 5, "
                f"{len(counts) - full - none} with fewer")
    assert ("warning: " if none else "") + expected in console_text(models.console)
    empty, _ = models._negatives(static.needs(models.recipe.variant("none").params), data, cranfield)
    assert not any(len(v) for v in empty.values())
    assert (f"warning: mined up to 5 hard negatives per query from bm25 ({len(counts)} training queries: 0 with 5, "
            f"0 with fewer, {len(counts)} with none); a query with none trains on random documents as negatives: "
            "loosen the denoising keys to keep more") in console_text(models.console)
