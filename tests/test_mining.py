"""Hard-negative mining (harness/train/mining.py): positives dropped, order and depth kept, the
pipeline's cache of mined negatives, and BM25's negatives on Cranfield drawn by `static`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import harness.train.mining as mining_mod
from harness.data.collection import Collection
from harness.train.data import TrainData
from harness.train.mining import hard_negatives, mining_depth
from harness.train.strategies.static import KIND as static, StaticParams
from harness.train.strategy import Needs

# Fixtures (cranfield, one_torch_thread) are used by name or applied by import, hence the noqa.
from train_helpers import (  # noqa: F401
    one_torch_thread, N_DOCS, hand_data, cranfield, count_calls, recipe_text, stage_context)


def test_mined_negatives_drop_positives_keep_order_and_depth() -> None:
    data = hand_data()
    ranked = {"q1": [0, 5, 6, 7, 8, 9], "q2": [2, 4, 1, 5, 6], "q3": [3, 2], "q4": [3]}
    assert mining_depth(3, data) == 3 + 10 + 2  # depth + 10 + room for the largest positive set
    negatives = hard_negatives(ranked, 3, data)
    assert {q: v.tolist() for q, v in negatives.items()} == {"q1": [5, 6, 7], "q2": [4, 5, 6], "q3": [3],
                                                             "q4": []}


def test_pipeline_mines_once_then_reads_the_cache(tmp_path: Path, cranfield: Collection,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    data = TrainData.from_collection(cranfield)
    calls = count_calls(monkeypatch, mining_mod, "bm25_ranking")
    needs = Needs(init="base", negatives="bm25", negatives_depth=5)
    models = stage_context(recipe_text(tmp_path, tmp_path / "unused", '[variant.b]\nkind = "bm25"\n'), tmp_path)
    negatives, key = models._negatives(needs, data, cranfield)
    again, key_again = stage_context(recipe_text(tmp_path, tmp_path / "unused", '[variant.b]\nkind = "bm25"\n'),
                                     tmp_path)._negatives(needs, data, cranfield)
    assert len(calls) == 1 and key_again == key
    assert {q: v.tolist() for q, v in again.items()} == {q: v.tolist() for q, v in negatives.items()}


def test_bm25_negatives_on_cranfield(cranfield: Collection) -> None:
    data = TrainData.from_collection(cranfield)
    depth = 20
    ranked = mining_mod.bm25_ranking(data, cranfield, mining_depth(depth, data))
    negatives = hard_negatives(ranked, depth, data)
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
    batch = static.batch(list(data.query_ids), data, np.random.default_rng(0), StaticParams(negatives_per_query=4),
                         negatives)
    for i, q in enumerate(data.query_ids):
        drawn = batch.negative_rows[i * 4:(i + 1) * 4]
        assert set(drawn) <= set(negatives[q].tolist())
        assert not set(drawn) & set(data.positives[q])
    assert batch.neg_mask.all()
