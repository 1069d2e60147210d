"""Dev splits held out of the training queries: a fixed, seeded fraction (the same whatever order
the ids come in, whatever the recipe's seed), at least one query, and a dev collection holding
exactly those queries and their judgements under its own name."""

from __future__ import annotations

import pytest

from harness.data.collection import Collection
from harness.data.holdout import HOLDOUT_SEED, holdout_collection, holdout_ids, holdout_label
from harness.recipe.model import holdout_fraction

IDS = [f"q{i:03d}" for i in range(200)]


@pytest.mark.parametrize("n, fraction, count", [(200, 0.1, 20), (200, 0.5, 100), (10, 0.2, 2), (10, 0.25, 2),
                                                (10, 0.35, 4), (3, 0.1, 1), (1, 0.5, 1)])
def test_round_fraction_times_n_and_at_least_one(n: int, fraction: float, count: int) -> None:
    assert len(holdout_ids(IDS[:n], fraction)) == count


def test_the_same_ids_whatever_their_order_and_type() -> None:
    held = holdout_ids(IDS, 0.1)
    assert held == holdout_ids(reversed(IDS), 0.1) == holdout_ids(set(IDS), 0.1) == holdout_ids(iter(IDS), 0.1)
    assert held <= set(IDS) and isinstance(held, frozenset)


def test_a_larger_fraction_holds_out_a_superset() -> None:
    # one permutation, cut at round(F x n): the 10% are among the 20%, so fractions nest
    assert holdout_ids(IDS, 0.1) < holdout_ids(IDS, 0.2) < holdout_ids(IDS, 0.5)


def test_the_draw_is_fixed_by_the_holdout_seed() -> None:
    import numpy as np

    assert HOLDOUT_SEED == 0
    order = np.random.default_rng(0).permutation(len(IDS))
    assert holdout_ids(IDS, 0.1) == frozenset(sorted(IDS)[i] for i in order[:20])
    assert sorted(holdout_ids([f"q{i}" for i in range(10)], 0.2)) == ["q4", "q6"]


def test_the_holdout_is_not_the_first_or_last_ids() -> None:
    held = holdout_ids(IDS, 0.1)
    assert held != frozenset(IDS[:20]) and held != frozenset(IDS[-20:])


def train_split() -> Collection:
    queries = {q: f"text of {q}" for q in IDS[:20]}
    qrels = {q: {f"d{i}": 1, f"d{i + 1}": 2} for i, q in enumerate(IDS[:20])}
    return Collection(dataset_id="beir/toy/train", docs_id="beir/toy", doc_ids=("d0", "d1"), doc_texts=["a", "b"],
                      queries=queries, qrels=qrels, archives=())


def test_the_dev_collection_holds_exactly_the_held_out_queries_and_their_judgements() -> None:
    train = train_split()
    dev = holdout_collection(train, "holdout:0.25", 0.25)
    held = holdout_ids(train.queries, 0.25)
    assert dev.dataset_id == "beir/toy/train[holdout:0.25]" == holdout_label("beir/toy/train", "holdout:0.25")
    assert set(dev.queries) == set(dev.qrels) == held and len(held) == 5
    assert all(dev.queries[q] == train.queries[q] and dev.qrels[q] == train.qrels[q] for q in held)
    assert dev.doc_ids == train.doc_ids and dev.docs_id == train.docs_id  # the same corpus
    assert len(train.queries) == 20  # the training split itself is left whole


@pytest.mark.parametrize("dev, fraction", [("holdout:0.1", 0.1), ("holdout:0.5", 0.5), ("beir/scifact/dev", None),
                                           (None, None)])
def test_holdout_fraction_reads_the_dev_setting(dev: str | None, fraction: float | None) -> None:
    assert holdout_fraction(dev) == fraction
