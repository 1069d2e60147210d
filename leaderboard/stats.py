"""Paired statistics on per-query scores: significance tests, p-value corrections, bootstrap CIs.

Every function takes two aligned arrays (one value per query, same query order) or a list of
p-values, and nothing else: selecting runs and pairing queries is :mod:`leaderboard.compare`'s job.
Light on purpose: numpy, plus ranx's t-test (scipy) imported when first used.

Example::

    p = paired_p_value(control, treatment, test="student")
    adjusted = adjust_p_values([0.01, 0.04, 0.03], "holm")      # [0.03, 0.06, 0.06]
"""

from __future__ import annotations

import math

import numpy as np

TESTS = ("student", "fisher")
CORRECTIONS = ("holm", "bonferroni", "none")
TEST_NAMES = {"student": "paired Student's t-test", "fisher": "Fisher's randomization test"}
CORRECTION_NAMES = {"holm": "Holm-Bonferroni", "bonferroni": "Bonferroni", "none": "no correction"}
# Per-query values closer than this are a tie: metrics are means of ranks and gains, so two
# runs that rank a query identically agree to far better than this after float rounding.
TIE_ATOL = 1e-9
# Resamples are drawn in blocks so that B x n indices never need more than ~40 MB at once.
_BLOCK_CELLS = 5_000_000


def paired_p_value(control: np.ndarray, treatment: np.ndarray, test: str = "student", *,
                   permutations: int = 1000, seed: int = 42) -> float:
    """Two-sided p-value of the paired difference between `treatment` and `control`.

    `student` is ranx's paired t-test (scipy's ``ttest_rel``); `fisher` is seeded
    :func:`fisher_randomization_p`. Identical arrays give 1.0 (the t statistic is undefined).
    """
    control, treatment = _pair(control, treatment)
    if np.allclose(control, treatment, rtol=0.0, atol=TIE_ATOL):
        return 1.0
    if test == "student":
        from ranx.statistical_tests import paired_student_t_test

        p_value, _ = paired_student_t_test(control, treatment, max_p=1.0)
        return float(p_value)
    if test == "fisher":
        return fisher_randomization_p(control, treatment, permutations, seed)
    raise ValueError(f"unknown test {test!r}; use one of {', '.join(TESTS)}")


def fisher_randomization_p(control: np.ndarray, treatment: np.ndarray, permutations: int = 1000,
                           seed: int = 42) -> float:
    """Fisher's (approximate) randomization test, as ranx computes it, but reproducible.

    Each permutation swaps the two systems' scores on every query with probability 1/2 (a
    random sign flip of the per-query difference); p is (k + 1) / (B + 1), where k of the B
    permutations have a |mean difference| at least the observed one (Smucker et al., CIKM 2007).
    The +1s count the observed assignment as one of the permutations (Phipson & Smyth 2010): a
    sampled permutation p-value is then never 0, so Holm's correction of it stays honest (ranx
    and drbench before it returned k / B, which is 0 for a large effect). ranx's own
    ``fisher_randomization_test`` draws inside numba's parallel threads, whose generators its
    ``random_seed`` does not reach, so its p-value changes from call to call; this one is a
    function of (scores, permutations, seed).
    """
    control, treatment = _pair(control, treatment)
    if permutations < 1:
        raise ValueError("permutations must be >= 1")
    diff = treatment - control
    observed = abs(diff.mean())
    rng = np.random.default_rng(seed)
    hits = 0
    for size in _blocks(permutations, diff.size):
        signs = rng.integers(0, 2, size=(size, diff.size), dtype=np.int8) * 2 - 1
        # The same relative slack ranx's float comparison effectively has, so a permutation
        # that reproduces the observed split is counted despite summation-order rounding.
        hits += int((np.abs(signs @ diff) / diff.size >= observed - 1e-12).sum())
    return (hits + 1) / (permutations + 1)


def adjust_p_values(p_values: list[float], method: str = "holm") -> list[float]:
    """Family-wise adjusted p-values, in the input order.

    Holm: sort ascending, p_(i) * (m - i + 1) for 1-based i, made monotone with a running
    maximum, capped at 1. Bonferroni: p * m capped at 1.

    >>> adjust_p_values([0.01, 0.04, 0.03], "holm")
    [0.03, 0.06, 0.06]
    """
    m = len(p_values)
    if method == "none":
        return [float(p) for p in p_values]
    if method == "bonferroni":
        return [min(1.0, float(p) * m) for p in p_values]
    if method != "holm":
        raise ValueError(f"unknown correction {method!r}; use one of {', '.join(CORRECTIONS)}")
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        adjusted[i] = running
    return adjusted


def bootstrap_ci(values: np.ndarray, resamples: int = 1000, seed: int = 42,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of `values` (resampling queries with replacement).

    For a paired comparison pass the per-query differences: that is the paired bootstrap.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return math.nan, math.nan
    if resamples < 1:
        raise ValueError("resamples must be >= 1")
    rng = np.random.default_rng(seed)
    means = np.concatenate([values[rng.integers(0, values.size, size=(size, values.size))].mean(axis=1)
                            for size in _blocks(resamples, values.size)])
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def wins_ties_losses(control: np.ndarray, treatment: np.ndarray) -> tuple[int, int, int]:
    """Queries where `treatment` scores higher, the same (within TIE_ATOL), lower."""
    control, treatment = _pair(control, treatment)
    diff = treatment - control
    ties = np.abs(diff) <= TIE_ATOL
    return int(((diff > 0) & ~ties).sum()), int(ties.sum()), int(((diff < 0) & ~ties).sum())


def _pair(control: np.ndarray, treatment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    control = np.asarray(control, dtype=np.float64)
    treatment = np.asarray(treatment, dtype=np.float64)
    if control.shape != treatment.shape or control.ndim != 1:
        raise ValueError(f"paired scores need two 1-d arrays of one length, got {control.shape} "
                         f"and {treatment.shape}")
    return control, treatment


def _blocks(total: int, width: int) -> list[int]:
    step = max(1, _BLOCK_CELLS // max(width, 1))
    return [min(step, total - start) for start in range(0, total, step)]
