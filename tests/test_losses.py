"""Training losses against hand-computed numbers on 2-3 queries with 2-dim vectors.

Expected values are written out with math.log / math.exp from the dot products in the comments,
never re-derived with the function under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.train.losses import (adore_batch_loss, adore_metric_weights, adore_ndcg_weights,
                                  adore_query_loss, inbatch_loss, pairwise_logistic, star_loss,
                                  static_loss, train_list_metrics)


def sp(x: float) -> float:
    """softplus(x) = log(1 + exp(x)), by hand."""
    return math.log(1 + math.exp(x))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


# Two queries shared by the in-batch, STAR and static tests.
# q1=(1,0) q2=(0,1); p1=(2,0) p2=(1,2)  ->  q1.p1=2 q1.p2=1 q2.p1=0 q2.p2=2
Q2, P2 = t([[1, 0], [0, 1]]), t([[2, 0], [1, 2]])
# random (in-batch) pairs: (q1, p2): sp(1-2) ; (q2, p1): sp(0-2)
RANDOM_SUM = sp(-1) + sp(-2)


def test_pairwise_logistic_sum_and_count_with_mask():
    # pos=[1, 0]; neg=[[0, 2], [1, -1]]; pair (0, 1) masked out
    # kept: sp(0-1) + sp(1-0) + sp(-1-0)
    total, count = pairwise_logistic(t([1, 0]), t([[0, 2], [1, -1]]),
                                     torch.tensor([[True, False], [True, True]]))
    assert total.item() == pytest.approx(2 * sp(-1) + sp(1), rel=1e-6)
    assert count.item() == 3
    total, count = pairwise_logistic(t([1, 0]), t([[0, 2], [1, -1]]))
    assert total.item() == pytest.approx(2 * sp(-1) + sp(1) + sp(1), rel=1e-6)
    assert count.item() == 4


def test_inbatch_loss_two_queries():
    assert inbatch_loss(Q2, P2).item() == pytest.approx(RANDOM_SUM / 2, rel=1e-6)


def test_inbatch_loss_three_queries_and_rel_mask():
    # q1=(1,0) q2=(0,1) q3=(1,1); p1=(2,0) p2=(0,3) p3=(1,1)
    # S = q.p:  q1: [2, 0, 1]   q2: [0, 3, 1]   q3: [2, 3, 2]
    q, p = t([[1, 0], [0, 1], [1, 1]]), t([[2, 0], [0, 3], [1, 1]])
    pairs = {(0, 1): sp(0 - 2), (0, 2): sp(1 - 2), (1, 0): sp(0 - 3), (1, 2): sp(1 - 3),
             (2, 0): sp(2 - 2), (2, 1): sp(3 - 2)}
    assert inbatch_loss(q, p).item() == pytest.approx(sum(pairs.values()) / 6, rel=1e-6)
    # p2 is also relevant to q3: that pair must not count as a negative
    rel_mask = torch.ones(3, 3, dtype=torch.bool)
    rel_mask[2, 1] = False
    expected = (sum(pairs.values()) - pairs[(2, 1)]) / 5
    assert inbatch_loss(q, p, rel_mask).item() == pytest.approx(expected, rel=1e-6)


# STAR hard negatives: n1=(1,1) n2=(3,0). q1: n1=1 n2=3 ; q2: n1=1 n2=0 ; positives s1=s2=2
# hard pairs: (q1,n1) sp(-1), (q1,n2) sp(1) [dropped: n2 relevant to q1], (q2,n1) sp(-1), (q2,n2) sp(-2)
NEG = t([[1, 1], [3, 0]])
NEG_MASK = torch.tensor([[True, False], [True, True]])
HARD_SUM = 2 * sp(-1) + sp(-2)


def test_star_loss_equal_pair_weighting_by_default():
    loss, stats = star_loss(Q2, P2, NEG, None, NEG_MASK)
    assert loss.item() == pytest.approx((RANDOM_SUM + HARD_SUM) / (2 + 3), rel=1e-6)
    assert stats["hard_loss"] == pytest.approx(HARD_SUM / 3, rel=1e-6)
    assert stats["random_loss"] == pytest.approx(RANDOM_SUM / 2, rel=1e-6)
    assert (stats["hard_pairs"], stats["random_pairs"]) == (3, 2)


def test_star_loss_paper_alpha():
    loss, _ = star_loss(Q2, P2, NEG, None, NEG_MASK, alpha=0.5)
    assert loss.item() == pytest.approx(HARD_SUM / 3 + 0.5 * RANDOM_SUM / 2, rel=1e-6)


def test_static_loss_own_negatives_only():
    # q1 negs (1,1),(3,0) -> 1, 3 ; q2 negs (0,1),(5,0) -> 1, 0 ; positives 2, 2
    d_neg = t([[[1, 1], [3, 0]], [[0, 1], [5, 0]]])
    expected = (sp(1 - 2) + sp(3 - 2) + sp(1 - 2) + sp(0 - 2)) / 4
    assert static_loss(Q2, P2, d_neg).item() == pytest.approx(expected, rel=1e-6)
    mask = torch.tensor([[True, False], [True, True]])
    expected = (sp(-1) + sp(-1) + sp(-2)) / 3
    assert static_loss(Q2, P2, d_neg, mask).item() == pytest.approx(expected, rel=1e-6)


def test_static_loss_positive_is_each_querys_own_dot_product():
    # q1=(1,1) p1=(1,2) -> s1+ = 3 ; q2=(0,1) p2=(3,1) -> s2+ = 1
    # (the element-wise products [[1, 2], [0, 1]] summed down the batch would give [1, 3])
    # one negative each: q1.(1,0) = 1 ; q2.(0,2) = 2
    q, p, d_neg = t([[1, 1], [0, 1]]), t([[1, 2], [3, 1]]), t([[[1, 0]], [[0, 2]]])
    expected = (sp(1 - 3) + sp(2 - 1)) / 2
    assert static_loss(q, p, d_neg).item() == pytest.approx(expected, rel=1e-6)


def test_scores_are_fp32_and_empty_pair_sets_backprop():
    q = Q2.to(torch.bfloat16).requires_grad_()
    assert inbatch_loss(q, P2.to(torch.bfloat16)).dtype == torch.float32
    one = t([[1, 0]]).requires_grad_()  # a batch of one has no in-batch negative
    loss = inbatch_loss(one, t([[2, 0]]))
    loss.backward()
    assert loss.item() == 0 and one.grad is not None


def test_adore_metric_weights_delta_mrr():
    # g = [1, 1/2, 0, 0] with metric_cut=2
    w = adore_metric_weights(4, 2)
    expected = t([[0, .5, 1, 1], [.5, 0, .5, .5], [1, .5, 0, 0], [1, .5, 0, 0]])
    assert torch.allclose(w, expected)
    assert adore_metric_weights(3, None)[1, 2].item() == pytest.approx(1 / 2 - 1 / 3)


def test_adore_query_loss_relevant_in_list():
    # y = [2, 1, 0], relevant at position 1, g = [1, 1/2, 1/3]
    # pair (1,0): w=1/2, sp(y0-y1)=sp(1) ; pair (1,2): w=1/6, sp(y2-y1)=sp(-1) ; 2 pairs -> /2
    y = t([2, 1, 0]).requires_grad_()
    rel = t([0, 1, 0])
    loss = adore_query_loss(y, rel, adore_metric_weights(3, None))
    assert loss.item() == pytest.approx((0.5 * sp(1) + sp(-1) / 6) / 2, rel=1e-6)
    loss.backward()
    # d/dy1 = -(1/2 sigmoid(1) + 1/6 sigmoid(-1)) / 2 < 0: pushes the relevant score up
    assert y.grad[1].item() == pytest.approx(-(0.5 * sigmoid(1) + sigmoid(-1) / 6) / 2, rel=1e-5)
    assert y.grad[1].item() < 0 < y.grad[0].item()


def test_adore_appended_positive_beyond_cut_and_batch_mean():
    # retrieved [3, 2, 1] all non-relevant, positive appended at position 3 with y=0; cut 2
    # g = [1, 1/2, 0, 0]: (3,0) w=1 sp(3) ; (3,1) w=1/2 sp(2) ; (3,2) w=0 ; 3 pairs -> /3
    y = t([3, 2, 1, 0]).requires_grad_()
    rel = t([0, 0, 0, 1])
    appended = (sp(3) + 0.5 * sp(2)) / 3
    loss = adore_query_loss(y, rel, adore_metric_weights(4, 2))
    assert loss.item() == pytest.approx(appended, rel=1e-6)
    loss.backward()
    assert y.grad[3].item() < 0
    # batch: mean of this list and the 3-doc list above (cut 2 leaves its weights 1/2 and 1/2)
    first = (0.5 * sp(1) + 0.5 * sp(-1)) / 2
    batch = adore_batch_loss([t([2, 1, 0]), t([3, 2, 1, 0])], [t([0, 1, 0]), rel], metric_cut=2)
    assert batch.item() == pytest.approx((first + appended) / 2, rel=1e-6)


def test_adore_ndcg_weights_graded():
    # relevance [1, 0, 2]; disc = [1, 1/log2(3), 0] with cut 2; IDCG@2 = 2*1 + 1/log2(3)
    d1 = 1 / math.log2(3)
    idcg = 2 + d1
    w = adore_ndcg_weights(t([1, 0, 2]), metric_cut=2)
    assert w[0, 1].item() == pytest.approx(1 * (1 - d1) / idcg, rel=1e-6)
    assert w[0, 2].item() == pytest.approx(1 * 1 / idcg, rel=1e-6)
    assert w[1, 2].item() == pytest.approx(2 * d1 / idcg, rel=1e-6)
    assert torch.allclose(w, w.T) and torch.all(w.diagonal() == 0)
    # equal scores: every pair costs log 2; pairs (0,1), (2,0), (2,1) -> /3
    loss = adore_batch_loss([t([0, 0, 0])], [t([1, 0, 2])], metric_cut=2, weighting="ndcg")
    expected = math.log(2) * (w[0, 1].item() + w[0, 2].item() + w[1, 2].item()) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert torch.all(adore_ndcg_weights(t([0, 0]), None) == 0)


def official_adore_loss(y_pred: torch.Tensor, target_labels: np.ndarray, metric_cut: int) -> torch.Tensor:
    """One query's loss as DRhard's adore/train.py computes it at its HEAD (15e2235), lines
    194-220, transcribed: both pair directions, each with the RankNet cost, over 2 * #pos pairs."""
    target_labels = target_labels.reshape(-1, 1)
    rel_diff = target_labels - target_labels.T
    pos_pairs = torch.FloatTensor((rel_diff > 0).astype(np.float32))
    neg_pairs = torch.FloatTensor((rel_diff < 0).astype(np.float32))
    num_pairs = 2 * pos_pairs.sum()
    y_pred = y_pred.view(-1, 1)
    c_pos = torch.log(1 + torch.exp(-(y_pred - y_pred.t())))
    c_neg = torch.log(1 + torch.exp(y_pred - y_pred.t()))
    arr = 1 / torch.arange(1, 1 + len(y_pred)).float()
    arr[metric_cut:] = 0
    weights = torch.abs(arr.view(-1, 1) - arr.view(1, -1))
    return torch.sum((pos_pairs * c_pos + neg_pairs * c_neg) * weights) / num_pairs


@pytest.mark.parametrize("cut", [3, 10, 200])
def test_adore_loss_and_gradient_equal_the_official_code(cut: int) -> None:
    rng = np.random.default_rng(cut)
    for _ in range(5):
        n = 30
        labels = (rng.random(n) < 0.15).astype(np.int32)
        labels[rng.integers(n)] = 1  # at least one relevant document
        scores = torch.tensor(rng.normal(size=n) * 3, dtype=torch.float32)
        ours_y, theirs_y = scores.clone().requires_grad_(), scores.clone().requires_grad_()
        ours = adore_batch_loss([ours_y], [torch.tensor(labels)], metric_cut=cut)
        theirs = official_adore_loss(theirs_y, labels, cut)
        ours.backward()
        theirs.backward()
        assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)
        assert torch.allclose(ours_y.grad, theirs_y.grad, rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("relevance", [[0, 0, 0], [1, 1, 1]])
def test_adore_no_pairs_is_zero_and_backprops(relevance):
    y = t([1, 2, 3]).requires_grad_()
    loss = adore_batch_loss([y], [t(relevance)], metric_cut=10)
    loss.backward()
    assert loss.item() == 0 and torch.all(y.grad == 0)


def test_adore_unknown_weighting():
    with pytest.raises(ValueError, match="ndcg"):
        adore_batch_loss([t([1])], [t([1])], None, weighting="map")


def test_train_list_metrics():
    assert train_list_metrics(np.array([0, 0, 1] + [0] * 7)) == pytest.approx((1 / 3, 1.0))
    assert train_list_metrics(np.array([0] * 10 + [1])) == (0.0, 0.0)
    assert train_list_metrics(torch.tensor([1, 1, 0])) == (1.0, 1.0)
