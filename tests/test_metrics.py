"""harness.evaluate.metrics against numbers worked out by hand on three queries."""

from __future__ import annotations

from math import log2

import pytest

from harness.evaluate.metrics import evaluate

# q1: graded judgments; q2: one relevant doc at rank 3; q3: judged but nothing retrieved.
QRELS = {"q1": {"d1": 2, "d3": 1}, "q2": {"d5": 1}, "q3": {"d9": 1}}
RESULTS = {
    "q1": [("d2", 3.0), ("d1", 2.0), ("d3", 1.0)],
    "q2": [("d4", 0.9), ("d6", 0.8), ("d5", 0.7), ("d7", 0.6)],
    "q_unjudged": [("d5", 9.0)],  # not in the qrels: ignored
}

# Järvelin DCG with linear gains: sum rel / log2(rank + 1).
NDCG_Q1 = (2 / log2(3) + 1 / log2(4)) / (2 / log2(2) + 1 / log2(3))
NDCG_Q2 = (1 / log2(4)) / 1.0
EXPECTED = {
    "ndcg@10": {"q1": NDCG_Q1, "q2": NDCG_Q2, "q3": 0.0},
    "mrr@10": {"q1": 1 / 2, "q2": 1 / 3, "q3": 0.0},
    "recall@2": {"q1": 1 / 2, "q2": 0.0, "q3": 0.0},
    "recall@3": {"q1": 1.0, "q2": 1.0, "q3": 0.0},
    "precision@2": {"q1": 1 / 2, "q2": 0.0, "q3": 0.0},
}


@pytest.mark.parametrize("metric", sorted(EXPECTED))
def test_per_query_values_match_hand_computation(metric: str) -> None:
    evaluation = evaluate(QRELS, RESULTS, [metric])
    assert evaluation.query_metrics[metric] == pytest.approx(EXPECTED[metric], abs=1e-6)


def test_mean_counts_every_qrels_query_and_only_those() -> None:
    metrics = list(EXPECTED)
    evaluation = evaluate(QRELS, RESULTS, metrics)
    for metric in metrics:
        # paired: q3 (nothing retrieved) is scored 0 and divides the mean; q_unjudged never appears
        assert set(evaluation.query_metrics[metric]) == {"q1", "q2", "q3"}
        assert evaluation.metrics[metric] == pytest.approx(sum(EXPECTED[metric].values()) / 3, abs=1e-6)


def test_ndcg_uses_linear_gains_not_burges() -> None:
    # rel 2 at rank 1 and rel 1 at rank 2 is ideal, whatever the gain; swap them to tell gains apart
    qrels = {"q": {"a": 2, "b": 1}}
    results = {"q": [("b", 2.0), ("a", 1.0)]}
    linear = (1 + 2 / log2(3)) / (2 + 1 / log2(3))
    burges = (1 + 3 / log2(3)) / (3 + 1 / log2(3))
    assert evaluate(qrels, results, ["ndcg@10"]).metrics["ndcg@10"] == pytest.approx(linear)
    assert evaluate(qrels, results, ["ndcg_burges@10"]).metrics["ndcg_burges@10"] == pytest.approx(burges)


@pytest.mark.parametrize("ranking, expected_mrr", [
    ([("d4", 1.0), ("d5", 1.0), ("d6", 1.0)], 1 / 2),
    ([("d5", 1.0), ("d4", 1.0), ("d6", 1.0)], 1.0),
    ([("d4", 1.0), ("d6", 1.0), ("d5", 1.0)], 1 / 3),
])
def test_ties_keep_the_given_order(ranking: list[tuple[str, float]], expected_mrr: float) -> None:
    evaluation = evaluate({"q": {"d5": 1}}, {"q": ranking}, ["mrr@10"])
    assert evaluation.metrics["mrr@10"] == pytest.approx(expected_mrr)


def test_cutoff_ignores_documents_below_k() -> None:
    ranking = [(f"n{i}", 100.0 - i) for i in range(10)] + [("hit", 1.0)]
    evaluation = evaluate({"q": {"hit": 1}}, {"q": ranking}, ["mrr@10", "recall@10", "recall@11"])
    assert evaluation.metrics == pytest.approx({"mrr@10": 0.0, "recall@10": 0.0, "recall@11": 1.0})


def test_no_results_at_all_scores_zero_for_every_query() -> None:
    evaluation = evaluate(QRELS, {}, ["ndcg@10", "mrr@10"])
    assert evaluation.metrics == {"ndcg@10": 0.0, "mrr@10": 0.0}
    assert evaluation.query_metrics["mrr@10"] == {"q1": 0.0, "q2": 0.0, "q3": 0.0}


def test_numpy_scores_and_integer_scores_are_accepted() -> None:
    import numpy as np

    results = {"q1": [("d1", np.float32(2.0)), ("d3", 1)]}
    evaluation = evaluate({"q1": {"d1": 1, "d3": 1}}, results, ["recall@2"])
    assert evaluation.metrics["recall@2"] == pytest.approx(1.0)


def test_cutoff_10_on_rankings_longer_than_10() -> None:
    # qa: 12 docs, relevant at ranks 2 and 12; qb: 15 docs, the only relevant one at rank 11.
    qrels = {"qa": {"a2": 1, "a12": 1}, "qb": {"b11": 1}}
    results = {"qa": [(f"a{r}", 100.0 - r) for r in range(1, 13)],
               "qb": [(f"b{r}", 100.0 - r) for r in range(1, 16)]}
    # qa: DCG@10 = 1/log2(3) = 0.6309 (rank 12 is cut); IDCG@10 = 1/log2(2) + 1/log2(3) = 1.6309
    #     ndcg@10 = 0.6309 / 1.6309 = 0.3869; at cutoff 100 the rank-12 hit adds 1/log2(13) = 0.2702
    #     and ndcg would be 0.9011 / 1.6309 = 0.5525. mrr@10 = 1/2.
    # qb: nothing relevant in the top 10: ndcg@10 = mrr@10 = 0 (at cutoff 100: 1/log2(12) and 1/11).
    ndcg_qa = (1 / log2(3)) / (1 + 1 / log2(3))
    assert ndcg_qa == pytest.approx(0.38685, abs=1e-5)
    evaluation = evaluate(qrels, results, ["ndcg@10", "mrr@10"])
    assert evaluation.query_metrics["ndcg@10"] == pytest.approx({"qa": ndcg_qa, "qb": 0.0}, abs=1e-6)
    assert evaluation.query_metrics["mrr@10"] == pytest.approx({"qa": 1 / 2, "qb": 0.0}, abs=1e-6)
    assert evaluation.metrics == pytest.approx({"ndcg@10": ndcg_qa / 2, "mrr@10": 1 / 4}, abs=1e-6)


def test_the_metric_names_are_exactly_those_ranx_evaluates() -> None:
    """RANX_METRICS is read from ranx's source; here ranx itself says which of the names its
    dispatcher holds it accepts."""
    from ranx.metrics import metric_switch

    from harness.evaluate.metrics import RANX_METRICS

    def accepted(name: str) -> bool:
        try:
            metric_switch(name)
        except ValueError:
            return False
        return True

    constants = [c for c in metric_switch.__code__.co_consts if isinstance(c, str)]
    assert RANX_METRICS == tuple(c for c in constants if accepted(c))
    assert "rbp" in RANX_METRICS


def test_rank_biased_precision_is_accepted_with_its_persistence_and_scored() -> None:
    from harness.evaluate.metrics import metric_cutoff, metrics_problem

    assert metrics_problem(["rbp.5", "ndcg@10"]) is None and metric_cutoff("rbp.5") is None
    assert 'did you mean "rbp.95"?' in metrics_problem(["rbp"])
    assert metrics_problem(["rbp@10"])  # ranx would read @10 as persistence 0.10, not a cut
    # RBP = (1 - p) * sum over ranks i of rel_i * p^(i - 1), p = 0.5; ranx weighs by the grade
    # (q1: d1, grade 2, at rank 2; d3, grade 1, at rank 3)
    values = evaluate(QRELS, RESULTS, ["rbp.5"]).query_metrics["rbp.5"]
    assert values == pytest.approx({"q1": 0.5 * (2 * 0.5 ** 1 + 0.5 ** 2), "q2": 0.5 * 0.5 ** 2, "q3": 0.0})
