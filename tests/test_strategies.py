"""The samplers and masked losses of every shared-tower strategy (harness/train/strategies/), on
hand-made data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from harness.train.sampling import relevance_mask
from harness.train.strategies.random import KIND as random_neg, RandomParams
from harness.train.strategies.star import KIND as star, StarParams
from harness.train.strategies.static import KIND as static, StaticParams
from harness.train.strategy import MissingInputError

# one_torch_thread is an autouse fixture: importing it applies it here, hence the noqa.
from train_helpers import one_torch_thread, hand_data, HAND_NEGATIVES  # noqa: F401


def test_static_draws_own_negatives_and_masks_random_fallback() -> None:
    data = hand_data()
    params = StaticParams(negatives_per_query=3)
    negatives = {**HAND_NEGATIVES, "q4": np.array([], dtype=np.int64)}  # q4: nothing mined
    for seed in range(20):
        batch = static.batch(["q1", "q2", "q3", "q4"], data, np.random.default_rng(seed), params, negatives)
        assert len(batch.negative_rows) == 12 and batch.neg_mask.shape == (4, 3)
        for i, q in enumerate(["q1", "q2", "q3"]):
            assert set(batch.negative_rows[3 * i:3 * i + 3]) <= set(negatives[q].tolist())
        random_rows = batch.negative_rows[9:]
        assert all(0 <= r < 10 for r in random_rows)
        # the mask is False exactly where a drawn document is one of the query's positives
        expected = [[r not in data.positives[q] for r in batch.negative_rows[3 * i:3 * i + 3]]
                    for i, q in enumerate(["q1", "q2", "q3", "q4"])]
        assert batch.neg_mask.tolist() == expected
        assert batch.positive_rows[0] == 0 and batch.positive_rows[1] in (1, 2)


def test_star_one_hard_negative_per_query_from_its_own_list() -> None:
    data = hand_data()
    queries = ["q1", "q2", "q3", "q4"]
    seen: set[tuple[int, ...]] = set()
    for seed in range(30):
        batch = star.batch(queries, data, np.random.default_rng(seed), StarParams(), HAND_NEGATIVES)
        assert len(batch.negative_rows) == len(queries)
        for q, row in zip(queries, batch.negative_rows):
            assert row in HAND_NEGATIVES[q].tolist() and row not in data.positives[q]
        seen.add(tuple(batch.negative_rows))
        # every query is scored against every hard negative; q4's (doc 0) is q1's positive
        neg_mask = batch.neg_mask
        assert neg_mask.shape == (4, 4)
        assert not neg_mask[0, 3] and neg_mask[1:, 3].all()
        assert neg_mask.tolist() == relevance_mask(queries, batch.negative_rows, data).tolist()
    assert len(seen) > 1  # the draw is random, not always the head of the list


def test_inbatch_masks_mark_positives_shared_between_queries() -> None:
    data = hand_data()
    queries = ["q1", "q2", "q3", "q4"]
    drew_shared = False
    for seed in range(30):
        for strategy, params in ((star, StarParams()), (random_neg, RandomParams(random_negatives=2))):
            batch = strategy.batch(queries, data, np.random.default_rng(seed), params, HAND_NEGATIVES)
            mask = batch.rel_mask
            assert batch.positive_rows[2] == 2  # q3's only positive
            assert not mask[1, 2]  # ... is also q2's positive: not a negative for q2
            assert not mask.diagonal().any()
            assert mask[0, 1:].all() and mask[3, :3].all()  # q1 and q4 share nothing
            assert mask[2, 1] == (batch.positive_rows[1] != 2)
            drew_shared |= batch.positive_rows[1] == 2
    assert drew_shared


def test_random_negatives_are_uniform_corpus_rows_with_masks() -> None:
    data = hand_data()
    batch = random_neg.batch(["q1", "q2"], data, np.random.default_rng(1), RandomParams(random_negatives=50), None)
    assert len(batch.negative_rows) == 100 and set(batch.negative_rows) <= set(range(10))
    assert len(set(batch.negative_rows)) == 10  # 100 uniform draws over 10 docs hit all of them
    assert batch.neg_mask.tolist() == relevance_mask(["q1", "q2"], batch.negative_rows,
                                                               data).tolist()


@pytest.mark.parametrize("strategy, params", [(static, StaticParams(negatives_per_query=2)), (star, StarParams()),
                                              (random_neg, RandomParams(random_negatives=3))])
def test_same_seed_same_batch(strategy: Any, params: Any) -> None:
    data = hand_data()

    def draw(seed: int) -> tuple[Any, ...]:
        b = strategy.batch(["q2", "q3", "q1"], data, np.random.default_rng([seed, 4, 0, 1]), params,
                           HAND_NEGATIVES)
        masks = [None if m is None else m.tolist() for m in (b.rel_mask, b.neg_mask)]
        return b.positive_rows, b.negative_rows, masks

    assert draw(7) == draw(7)
    assert any(draw(7) != draw(s) for s in range(8, 20))


@pytest.mark.parametrize("strategy, params", [(static, StaticParams()), (star, StarParams())])
def test_mined_strategies_without_negatives_say_so(strategy: Any, params: Any) -> None:
    with pytest.raises(MissingInputError, match=f"{strategy.name} draws mined hard negatives"):
        strategy.batch(["q1"], hand_data(), np.random.default_rng(0), params, None)


# --- the masks reach the loss -------------------------------------------------------------------

@pytest.mark.parametrize("strategy, params", [(star, StarParams()), (random_neg, RandomParams(random_negatives=3))])
def test_star_and_random_losses_drop_pairs_their_masks_drop(strategy: Any, params: Any) -> None:
    import torch

    from harness.train.losses import star_loss

    data = hand_data()
    queries = ["q1", "q2", "q3", "q4"]
    gen = torch.Generator().manual_seed(0)
    for seed in range(10):
        batch = strategy.batch(queries, data, np.random.default_rng(seed), params, HAND_NEGATIVES)
        assert not batch.neg_mask.all()  # a drawn negative is some query's positive: a pair to drop
        q, d_pos = torch.randn(4, 8, generator=gen), torch.randn(4, 8, generator=gen)
        d_neg = torch.randn(len(batch.negative_rows), 8, generator=gen)
        loss, _ = strategy.loss(q, d_pos, d_neg, batch, params)
        masked, _ = star_loss(q, d_pos, d_neg, torch.from_numpy(relevance_mask(queries, batch.positive_rows, data)),
                              torch.from_numpy(relevance_mask(queries, batch.negative_rows, data)))
        unmasked, _ = star_loss(q, d_pos, d_neg, None, None)
        assert loss.item() == pytest.approx(masked.item(), rel=1e-6)
        assert abs(loss.item() - unmasked.item()) > 1e-4


def test_static_loss_drops_own_negatives_that_are_positives() -> None:
    import torch

    from harness.train.losses import static_loss

    data = hand_data()
    # q2's mined list holds doc 2, its own positive (shared with q3): drawing it must not count
    negatives = {**HAND_NEGATIVES, "q2": np.array([2])}
    params = StaticParams(negatives_per_query=1)
    batch = static.batch(["q1", "q2"], data, np.random.default_rng(0), params, negatives)
    assert batch.neg_mask.tolist() == [[True], [False]]
    gen = torch.Generator().manual_seed(1)
    q, d_pos, d_neg = (torch.randn(2, 8, generator=gen) for _ in range(3))
    loss, _ = static.loss(q, d_pos, d_neg, batch, params)
    only_q1 = static_loss(q[:1], d_pos[:1], d_neg[:1].view(1, 1, -1), None)
    assert loss.item() == pytest.approx(only_q1.item(), rel=1e-6)
