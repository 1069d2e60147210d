"""Hard-negative mining and the samplers of every shared-tower strategy, on hand-made data and Cranfield."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import harness.train.mining as mining_mod
from harness.data.collection import Collection
from harness.train.mining import mine_negatives
from harness.train.samplers import random_neg, star, static
from harness.train.samplers.base import TrainData, relevance_mask

# Fixtures (cranfield, one_torch_thread, ...) are used by name, hence the noqa.
from train_helpers import (  # noqa: F401
    one_torch_thread, N_DOCS, quiet_console, hand_data, HAND_NEGATIVES, cranfield)


# --- mining -----------------------------------------------------------------------------------

def test_mined_negatives_drop_positives_keep_order_and_depth(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    data = hand_data()
    ranked = {"q1": [0, 5, 6, 7, 8, 9], "q2": [2, 4, 1, 5, 6], "q3": [3, 2], "q4": [3]}
    asked: list[int] = []

    def fake_rows(data_: TrainData, collection: Collection, k: int) -> dict[str, list[int]]:
        asked.append(k)
        return ranked

    monkeypatch.setattr(mining_mod, "_bm25_rows", fake_rows)
    collection = Collection("hand", "hand", tuple(map(str, range(10))), data.doc_texts, data.queries, {}, ())
    ctx = SimpleNamespace(cache_dir=tmp_path, console=quiet_console())
    negatives, key = mine_negatives("bm25", 3, data, collection, ctx)  # type: ignore[arg-type]
    assert asked == [3 + 10 + 2]  # depth + 10 + room for the largest positive set
    assert {q: v.tolist() for q, v in negatives.items()} == {"q1": [5, 6, 7], "q2": [4, 5, 6], "q3": [3],
                                                             "q4": []}
    # cached: a second call neither ranks again nor changes anything
    monkeypatch.setattr(mining_mod, "_bm25_rows", lambda *a: pytest.fail("mined twice"))
    again, key_again = mine_negatives("bm25", 3, data, collection, ctx)  # type: ignore[arg-type]
    assert key_again == key and {q: v.tolist() for q, v in again.items()} == {
        q: v.tolist() for q, v in negatives.items()}


def test_bm25_negatives_on_cranfield(cranfield: Collection, tmp_path: Path) -> None:
    data = TrainData.from_collection(cranfield)
    ctx = SimpleNamespace(cache_dir=tmp_path, console=quiet_console())
    depth = 20
    negatives, _ = mine_negatives("bm25", depth, data, cranfield, ctx)  # type: ignore[arg-type]
    room = depth + 10 + max(len(p) for p in data.positives.values())
    ranked = mining_mod._bm25_rows(data, cranfield, room)
    assert set(negatives) == set(data.query_ids)
    for q in data.query_ids:
        rows = negatives[q].tolist()
        assert len(rows) <= depth and len(set(rows)) == len(rows)
        assert not set(rows) & set(data.positives[q])
        assert all(0 <= r < N_DOCS for r in rows)
        # the top of BM25's own ranking, positives removed, order kept
        assert rows == [r for r in ranked[q] if r not in data.positives[q]][:depth]
    assert sum(len(v) == depth for v in negatives.values()) > 0.9 * len(negatives)

    # drawing from them: static never hands a query one of its positives
    params = {"negatives_per_query": 4}
    batch = static.build(list(data.query_ids), data, np.random.default_rng(0), params, negatives)
    for i, q in enumerate(data.query_ids):
        drawn = batch.negative_rows[i * 4:(i + 1) * 4]
        assert set(drawn) <= set(negatives[q].tolist())
        assert not set(drawn) & set(data.positives[q])
    assert batch.extra["neg_mask"].all()


# --- samplers ---------------------------------------------------------------------------------

def test_static_draws_own_negatives_and_masks_random_fallback() -> None:
    data = hand_data()
    params = {"negatives_per_query": 3}
    negatives = {**HAND_NEGATIVES, "q4": np.array([], dtype=np.int64)}  # q4: nothing mined
    for seed in range(20):
        batch = static.build(["q1", "q2", "q3", "q4"], data, np.random.default_rng(seed), params, negatives)
        assert len(batch.negative_rows) == 12 and batch.extra["neg_mask"].shape == (4, 3)
        for i, q in enumerate(["q1", "q2", "q3"]):
            assert set(batch.negative_rows[3 * i:3 * i + 3]) <= set(negatives[q].tolist())
        random_rows = batch.negative_rows[9:]
        assert all(0 <= r < 10 for r in random_rows)
        # the mask is False exactly where a drawn document is one of the query's positives
        expected = [[r not in data.positives[q] for r in batch.negative_rows[3 * i:3 * i + 3]]
                    for i, q in enumerate(["q1", "q2", "q3", "q4"])]
        assert batch.extra["neg_mask"].tolist() == expected
        assert batch.positive_rows[0] == 0 and batch.positive_rows[1] in (1, 2)


def test_star_one_hard_negative_per_query_from_its_own_list() -> None:
    data = hand_data()
    queries = ["q1", "q2", "q3", "q4"]
    seen: set[tuple[int, ...]] = set()
    for seed in range(30):
        batch = star.build(queries, data, np.random.default_rng(seed), {}, HAND_NEGATIVES)
        assert len(batch.negative_rows) == len(queries)
        for q, row in zip(queries, batch.negative_rows):
            assert row in HAND_NEGATIVES[q].tolist() and row not in data.positives[q]
        seen.add(tuple(batch.negative_rows))
        # every query is scored against every hard negative; q4's (doc 0) is q1's positive
        neg_mask = batch.extra["neg_mask"]
        assert neg_mask.shape == (4, 4)
        assert not neg_mask[0, 3] and neg_mask[1:, 3].all()
        assert neg_mask.tolist() == relevance_mask(queries, batch.negative_rows, data).tolist()
    assert len(seen) > 1  # the draw is random, not always the head of the list


def test_inbatch_masks_mark_positives_shared_between_queries() -> None:
    data = hand_data()
    queries = ["q1", "q2", "q3", "q4"]
    drew_shared = False
    for seed in range(30):
        for module in (star, random_neg):
            batch = module.build(queries, data, np.random.default_rng(seed),
                                 {"random_negatives": 2}, HAND_NEGATIVES)
            mask = batch.extra["rel_mask"]
            assert batch.positive_rows[2] == 2  # q3's only positive
            assert not mask[1, 2]  # ... is also q2's positive: not a negative for q2
            assert not mask.diagonal().any()
            assert mask[0, 1:].all() and mask[3, :3].all()  # q1 and q4 share nothing
            assert mask[2, 1] == (batch.positive_rows[1] != 2)
            drew_shared |= batch.positive_rows[1] == 2
    assert drew_shared


def test_random_negatives_are_uniform_corpus_rows_with_masks() -> None:
    data = hand_data()
    batch = random_neg.build(["q1", "q2"], data, np.random.default_rng(1), {"random_negatives": 50}, None)
    assert len(batch.negative_rows) == 100 and set(batch.negative_rows) <= set(range(10))
    assert len(set(batch.negative_rows)) == 10  # 100 uniform draws over 10 docs hit all of them
    assert batch.extra["neg_mask"].tolist() == relevance_mask(["q1", "q2"], batch.negative_rows,
                                                               data).tolist()


@pytest.mark.parametrize("module", [static, star, random_neg])
def test_same_seed_same_batch(module: Any) -> None:
    data = hand_data()
    params = {"negatives_per_query": 2, "random_negatives": 3}

    def draw(seed: int) -> tuple[Any, ...]:
        b = module.build(["q2", "q3", "q1"], data, np.random.default_rng([seed, 4, 0, 1]), params,
                         HAND_NEGATIVES)
        return b.positive_rows, b.negative_rows, {k: np.asarray(v).tolist() for k, v in b.extra.items()}

    assert draw(7) == draw(7)
    assert any(draw(7) != draw(s) for s in range(8, 20))
