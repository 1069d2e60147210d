"""drbench compare: paired tests against scipy and hand counts, corrections, exports, CLI, layering."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import ttest_rel
from rich.console import Console
from typer.testing import CliRunner

from harness.cli import app
from harness.store import ExperimentRecord, RunRecord, open_memory_store, open_store, write_run
from leaderboard.compare import CompareSettings, compare_runs
from leaderboard.compare_report import format_result, latex_escape, render_table
from leaderboard.errors import CompareError
from leaderboard.stats import (adjust_p_values, bootstrap_ci, fisher_randomization_p, paired_p_value,
                               wins_ties_losses)

REPO = Path(__file__).resolve().parent.parent


def add_run(db, experiment: str, variant: str, scores: dict[str, list[float]], *,
            collection: str = "toy", index: str = "Flat", recipe_text: str = "") -> int:
    """Store a run whose per-query values are `scores[metric]` for queries q0, q1, ..."""
    record = ExperimentRecord(name=experiment, recipe_path=None, recipe_text=recipe_text, recipe_hash="h",
                              git_commit=None, git_dirty=False, packages={}, python="3.11", platform="test",
                              seed=1, started_at="2024-01-01T00:00:00+00:00")
    run = RunRecord(experiment=experiment, variant=variant, kind="zero-shot", collection=collection,
                    index_factory=index, run_key="k", model=None, depth=10, n_docs=100,
                    started_at="t", finished_at="t",
                    metrics={m: float(np.mean(v)) for m, v in scores.items()},
                    query_metrics={m: {f"q{i:02d}": float(x) for i, x in enumerate(v)} for m, v in scores.items()})
    return write_run(db, record, run)


BASE = np.linspace(0.1, 0.7, 24)


def populate(db, experiment: str = "exp") -> None:
    """zero-shot, a clearly better variant, and a noisy one that is not better."""
    noise = np.tile([0.05, -0.05, 0.02, -0.02], 6)
    add_run(db, experiment, "zero-shot", {"ndcg@10": BASE, "mrr@10": BASE})
    jitter = np.tile([0.01, -0.01], 12)  # a constant difference would make the t statistic degenerate
    add_run(db, experiment, "star_adore", {"ndcg@10": BASE + 0.2 + jitter, "mrr@10": BASE + 0.1 - jitter})
    add_run(db, experiment, "noisy", {"ndcg@10": BASE + noise, "mrr@10": BASE - noise})


# --- statistics -------------------------------------------------------------------------------

def test_student_p_value_is_scipys_paired_t_test() -> None:
    control = np.array([0.2, 0.5, 0.1, 0.9, 0.4, 0.3])
    treatment = np.array([0.3, 0.6, 0.1, 0.7, 0.6, 0.5])
    assert paired_p_value(control, treatment, "student") == pytest.approx(
        ttest_rel(control, treatment).pvalue, abs=1e-15)


def test_identical_runs_have_p_value_one() -> None:
    scores = np.array([0.1, 0.4, 0.4])
    assert paired_p_value(scores, scores.copy(), "student") == 1.0
    assert paired_p_value(scores, scores.copy(), "fisher") == 1.0


def _exact_randomization_p(control: np.ndarray, treatment: np.ndarray) -> float:
    diff = treatment - control
    observed = abs(diff.mean())
    flips = [abs((np.array(signs) * diff).mean()) >= observed - 1e-12
             for signs in itertools.product((1, -1), repeat=len(diff))]
    return sum(flips) / len(flips)


def test_fisher_close_to_exact_enumeration_and_to_ranx() -> None:
    from ranx.statistical_tests import fisher_randomization_test

    # Continuous values: with ties (e.g. multiples of 0.1) ranx's float comparison drops some.
    control = np.array([0.21, 0.53, 0.12, 0.94, 0.41, 0.33, 0.62, 0.27, 0.48, 0.15])
    treatment = np.array([0.35, 0.58, 0.07, 0.83, 0.66, 0.49, 0.71, 0.43, 0.40, 0.29])
    exact = _exact_randomization_p(control, treatment)  # all 1024 sign flips
    assert exact == pytest.approx(0.083984375)
    assert fisher_randomization_p(control, treatment, 20_000, seed=1) == pytest.approx(exact, abs=0.02)
    ranx_p, _ = fisher_randomization_test(control, treatment, 2000, 0.05, 42)
    assert ranx_p == pytest.approx(exact, abs=0.05)


def test_fisher_p_is_never_zero_so_holm_stays_honest() -> None:
    rng = np.random.default_rng(0)
    control = rng.uniform(0, 0.5, 200)
    treatment = control + 0.2  # every permutation's |mean difference| is below the observed one
    assert fisher_randomization_p(control, treatment, 999, seed=1) == 1 / 1000  # (0 + 1) / (999 + 1)
    assert adjust_p_values([1 / 1000, 0.5], "holm")[0] == 2 / 1000


def test_fisher_is_seeded() -> None:
    control, treatment = BASE, BASE + np.tile([0.03, -0.02], 12)
    first = fisher_randomization_p(control, treatment, 500, seed=7)
    assert fisher_randomization_p(control, treatment, 500, seed=7) == first
    assert paired_p_value(control, treatment, "fisher", permutations=500, seed=7) == first


def test_holm_matches_hand_computation_including_monotonicity() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> raised to 0.06
    assert adjust_p_values([0.01, 0.04, 0.03, 0.005], "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert adjust_p_values([0.5, 0.4, 0.3], "holm") == pytest.approx([0.9, 0.9, 0.9])
    assert adjust_p_values([0.02, 0.9], "none") == [0.02, 0.9]


def test_bonferroni_multiplies_and_caps_at_one() -> None:
    assert adjust_p_values([0.3, 0.6, 0.01], "bonferroni") == pytest.approx([0.9, 1.0, 0.03])


def test_wins_ties_losses() -> None:
    control = np.array([0.5, 0.5, 0.2, 0.0, 1.0])
    treatment = np.array([0.6, 0.5, 0.1, 0.0, 0.9])
    assert wins_ties_losses(control, treatment) == (1, 2, 2)


def test_values_equal_up_to_float_rounding_are_ties() -> None:
    # 0.1 + 0.2 != 0.3 in binary floating point; two runs that rank a query identically can
    # still reach its score by different sums
    control = np.array([0.3, 1 / 3, 0.5])
    treatment = np.array([0.1 + 0.2, 1 - 2 / 3, 0.5 + 2e-9])
    assert wins_ties_losses(control, treatment) == (1, 2, 0)


def test_bootstrap_ci_level_matches_the_normal_approximation() -> None:
    # 400 draws of N(0, 1): the mean's standard error is s / sqrt(400) (about 0.05), so a 95%
    # percentile CI spans about 2 * 1.96 se and a 90% one 2 * 1.645 se (16% narrower). With
    # 4000 resamples the width's own error is about 1.5%, well inside the 5% allowed here.
    values = np.random.default_rng(0).normal(0.0, 1.0, 400)
    se = values.std(ddof=1) / np.sqrt(values.size)
    low, high = bootstrap_ci(values, 4000, seed=1)
    assert high - low == pytest.approx(2 * 1.959964 * se, rel=0.05)
    low90, high90 = bootstrap_ci(values, 4000, seed=1, level=0.90)
    assert high90 - low90 == pytest.approx(2 * 1.644854 * se, rel=0.05)
    assert low < low90 < values.mean() < high90 < high


def test_bootstrap_ci_contains_mean_and_is_seeded() -> None:
    diff = np.tile([0.1, -0.05, 0.2, 0.0, 0.05], 8)
    low, high = bootstrap_ci(diff, 1000, seed=3)
    assert low < diff.mean() < high
    assert bootstrap_ci(diff, 1000, seed=3) == (low, high)
    assert bootstrap_ci(diff, 1000, seed=4) != (low, high)


# --- comparisons on a store --------------------------------------------------------------------

def test_baseline_comparison_marks_the_clearly_better_variant() -> None:
    db = open_memory_store()
    populate(db)
    result = compare_runs(db, CompareSettings(baseline="zero-shot"))
    assert result.metrics == ["ndcg@10", "mrr@10"]  # no [eval] metrics: the declared defaults, in their order
    assert len(result.comparisons) == 4  # 2 variants x 2 metrics, one family
    best = {(c.system, c.metric): c for c in result.comparisons}
    star = best["star_adore", "ndcg@10"]
    assert star.significant and star.marker == "▲" and star.diff == pytest.approx(0.2)
    assert (star.wins, star.ties, star.losses) == (24, 0, 0)
    assert result.beats("toy", "star_adore", "ndcg@10") == ["a"]  # a: zero-shot, the first stored
    noisy = best["noisy", "ndcg@10"]
    assert not noisy.significant and noisy.marker == ""
    assert noisy.p_adjusted == pytest.approx(min(1.0, noisy.p_value * 3))  # Holm, largest of 4 p-values


def test_metrics_follow_the_recipe_order_as_the_leaderboard_does() -> None:
    db = open_memory_store()
    text = '[eval]\nmetrics = ["ndcg@10", "mrr@10"]\n'
    add_run(db, "exp", "zero-shot", {"ndcg@10": BASE, "mrr@10": BASE}, recipe_text=text)
    jitter = np.tile([0.01, -0.01], 12)  # a constant difference would make the t statistic degenerate
    add_run(db, "exp", "better", {"ndcg@10": BASE + 0.1 + jitter, "mrr@10": BASE + 0.1}, recipe_text=text)
    assert compare_runs(db, CompareSettings(baseline="zero-shot", metrics=("ndcg@10",))).metrics == ["ndcg@10"]
    assert compare_runs(db, CompareSettings(baseline="zero-shot", test="fisher")).metrics == ["ndcg@10", "mrr@10"]


def test_the_legend_names_superscripts_only_when_one_is_shown() -> None:
    db = open_memory_store()
    populate(db)
    shown = compare_runs(db, CompareSettings(baseline="zero-shot"))
    assert "a superscript letter: significantly better than that system" in shown.legend
    table = io.StringIO()
    render_table(shown, Console(file=table, width=200))
    assert " sig " in table.getvalue() and "| sig |" in format_result(shown, "markdown")  # the marker column
    assert "a different procedure from the test" in shown.legend
    db = open_memory_store()
    add_run(db, "exp", "zero-shot", {"ndcg@10": BASE})
    add_run(db, "exp", "noisy", {"ndcg@10": BASE + np.tile([0.05, -0.05, 0.02, -0.02], 6)})
    none = compare_runs(db, CompareSettings(baseline="zero-shot"))
    assert "superscript" not in none.legend and "no system is significantly better than another" in none.legend


def test_all_pairs_beats_counts_both_sides_of_a_comparison() -> None:
    db = open_memory_store()
    populate(db)  # a: zero-shot, b: star_adore (+0.2), c: noisy (about zero-shot)
    result = compare_runs(db, CompareSettings(metrics=("ndcg@10",)))
    pairs = {(c.reference, c.system): c for c in result.comparisons}
    assert set(pairs) == {("zero-shot", "star_adore"), ("zero-shot", "noisy"), ("star_adore", "noisy")}
    # star_adore is the *reference* of (star_adore, noisy), where noisy is significantly worse
    assert pairs["star_adore", "noisy"].significant and pairs["star_adore", "noisy"].diff < 0
    assert result.beats("toy", "star_adore", "ndcg@10") == ["a", "c"]
    assert result.beats("toy", "zero-shot", "ndcg@10") == []
    assert result.beats("toy", "noisy", "ndcg@10") == []


def test_all_pairs_family_spans_pairs_and_metrics() -> None:
    db = open_memory_store()
    populate(db)
    result = compare_runs(db, CompareSettings(correction="bonferroni", metrics=("ndcg@10",)))
    assert len(result.comparisons) == 3
    assert all(c.p_adjusted == pytest.approx(min(1.0, 3 * c.p_value)) for c in result.comparisons)


def test_significance_is_decided_on_the_holm_adjusted_p_value() -> None:
    db = open_memory_store()
    populate(db)
    # mild: +0.02 on average, but +0.065/-0.025 alternately: t(23) = 2.13, raw p = 0.044
    add_run(db, "exp", "mild", {m: BASE + np.tile([0.065, -0.025], 12) for m in ("ndcg@10", "mrr@10")})
    result = compare_runs(db, CompareSettings(baseline="zero-shot", metrics=("ndcg@10",)))
    by_system = {c.system: c for c in result.comparisons}
    star, mild, noisy = by_system["star_adore"], by_system["mild"], by_system["noisy"]
    assert mild.p_value == pytest.approx(ttest_rel(BASE + np.tile([0.065, -0.025], 12), BASE).pvalue)
    # Holm over 3: star's tiny p * 3, then mild's 0.044 * 2 = 0.088, then noisy's p = 1 * 1.
    assert star.p_value < mild.p_value < 0.05 < noisy.p_value
    assert mild.p_adjusted == pytest.approx(2 * mild.p_value)
    assert mild.p_adjusted > 0.05 and not mild.significant and mild.marker == ""
    assert star.p_adjusted == pytest.approx(3 * star.p_value) and star.p_adjusted < 0.05
    assert star.significant and star.marker == "▲"
    assert result.beats("toy", "star_adore", "ndcg@10") == ["a"]
    assert result.beats("toy", "mild", "ndcg@10") == []
    # without a correction the same raw p is significant: the test above is about the adjustment
    uncorrected = compare_runs(db, CompareSettings(baseline="zero-shot", metrics=("ndcg@10",),
                                                   correction="none"))
    assert {c.system: c.significant for c in uncorrected.comparisons}["mild"]


def test_diff_ci_is_the_paired_bootstrap_of_per_query_differences() -> None:
    db = open_memory_store()
    # Scores spread over [0, 0.9] but the system is 0.1 (+-0.001) above the reference on every
    # query: the paired-difference CI is about [0.0995, 0.1005]; a CI over the system's own
    # scores would be about its mean 0.55 +- 0.1, and one over reference - system about -0.1.
    reference = np.linspace(0.0, 0.9, 30)
    system = reference + 0.1 + np.tile([0.001, -0.001], 15)
    add_run(db, "exp", "zero-shot", {"ndcg@10": reference})
    add_run(db, "exp", "better", {"ndcg@10": system})
    settings = CompareSettings(baseline="zero-shot", bootstrap=500, seed=5)
    (c,) = compare_runs(db, settings).comparisons
    assert c.diff == pytest.approx(0.1)
    assert 0.099 < c.ci_low <= c.diff <= c.ci_high < 0.101
    assert (c.ci_low, c.ci_high) == pytest.approx(bootstrap_ci(system - reference, 500, seed=5))


@pytest.mark.parametrize("kwargs, message", [
    ({"settings": CompareSettings(baseline="zero-shto")}, 'unknown baseline \'zero-shto\'; did you mean "zero-shot"?'),
    ({"collection": "toy2"}, "unknown collection 'toy2'"),
    ({"experiments": ["nope"]}, "unknown experiment 'nope'"),
    ({"settings": CompareSettings(metrics=("ndcg@100",))}, "unknown metric 'ndcg@100'"),
], ids=["baseline", "collection", "experiment", "metric"])
def test_selection_errors_name_the_stored_choices(kwargs: dict, message: str) -> None:
    db = open_memory_store()
    populate(db)
    settings = kwargs.pop("settings", CompareSettings())
    with pytest.raises(CompareError, match=message.replace("?", r"\?").replace("(", r"\(")):
        compare_runs(db, settings, **kwargs)


def test_exports_parse_back() -> None:
    db = open_memory_store()
    populate(db, "my_exp")
    populate(db, "other")
    result = compare_runs(db, CompareSettings(baseline="my_exp/zero-shot", metrics=("ndcg@10",)))
    rows = list(csv.DictReader(io.StringIO(format_result(result, "csv"))))
    assert len(rows) == len(result.comparisons) == 5  # every run but the baseline
    star = next(r for r in rows if r["system"] == "my_exp/star_adore")
    assert (star["reference"], star["marker"], star["significant"]) == ("my_exp/zero-shot", "▲", "True")
    assert float(star["diff"]) == pytest.approx(0.2)
    data = json.loads(format_result(result, "json"))
    assert data["settings"]["test"] == "student" and data["settings"]["correction"] == "holm"
    assert [s["label"] for s in data["collections"][0]["systems"]][:2] == ["my_exp/zero-shot", "my_exp/star_adore"]
    assert len(data["comparisons"]) == 5
    latex = format_result(result, "latex")
    assert r"\begin{tabular}" in latex and r"my\_exp/star\_adore" in latex and "$^{a}$" in latex
    assert "| b | my_exp/star_adore | 0.6000ᵃ" in format_result(result, "markdown")
    assert latex_escape("a_b&c%") == r"a\_b\&c\%"


# --- CLI ---------------------------------------------------------------------------------------

def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def store_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("compare") / "results.db"
    db = open_store(path)
    populate(db, "a")
    populate(db, "b")
    db.close()
    return path


def test_cli_compare_marks_better_variant(store_file: Path) -> None:
    result = invoke("compare", "--store", store_file, "-e", "a", "--baseline", "zero-shot",
                    "--metrics", "ndcg@10", "--format", "markdown")
    assert result.exit_code == 0, result.output
    assert "| b | star_adore | 0.6000ᵃ |" in result.output
    assert "| ndcg@10 | star_adore | zero-shot | +0.2000 |" in result.output and "▲" in result.output
    assert "Holm-Bonferroni over 2 comparisons; alpha = 0.05" in result.output


def test_cli_compare_two_experiments_to_files(store_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp.json"
    result = invoke("compare", "--store", store_file, "-e", "a", "-e", "b", "--baseline", "a/zero-shot",
                    "--test", "fisher", "--permutations", "200", "--correction", "bonferroni",
                    "--format", "json", "-o", out)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    labels = {c["system"] for c in data["comparisons"]}
    assert labels == {"a/star_adore", "a/noisy", "b/zero-shot", "b/star_adore", "b/noisy"}
    assert data["settings"]["test"] == "fisher" and data["settings"]["permutations"] == 200
    table = invoke("compare", "--store", store_file, "-e", "a", "--metrics", "ndcg@10")
    assert table.exit_code == 0 and "ᵃ" in table.output and "paired Student's t-test" in table.output


@pytest.mark.parametrize("args, fragment", [
    (["--baseline", "zero-shto"], "unknown baseline 'zero-shto'"),
    (["--collection", "cranfield"], "unknown collection 'cranfield'"),
    (["--metrics", "ndcg@100"], "unknown metric 'ndcg@100'"),
    (["--alpha", "2"], "alpha 2 must be between 0 and 1"),
], ids=["baseline", "collection", "metric", "alpha"])
def test_cli_compare_errors_are_one_line_exit_2(store_file: Path, args: list[str], fragment: str) -> None:
    result = invoke("compare", "--store", store_file, "-e", "a", *args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.output


# --- layering ----------------------------------------------------------------------------------

def test_compare_runs_without_torch() -> None:
    # A meta-path finder rather than sys.modules[...] = None: scipy.stats (ranx's t-test) looks
    # up sys.modules["torch"].Tensor whenever the key exists, so a None entry breaks scipy
    # itself; the finder makes any torch/transformers import raise and leaves the key absent.
    code = textwrap.dedent("""
        import importlib.abc, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in ("torch", "transformers"):
                    raise ImportError(f"{name} is blocked")

        sys.meta_path.insert(0, Block())
        from harness.store import open_memory_store
        import leaderboard.compare, leaderboard.compare_report, leaderboard.check, leaderboard.plot
        from test_compare import populate
        db = open_memory_store()
        populate(db)
        for test in ("student", "fisher"):
            result = leaderboard.compare.compare_runs(
                db, leaderboard.compare.CompareSettings(baseline="zero-shot", test=test, permutations=100))
            leaderboard.compare_report.format_result(result, "json")
        assert not [m for m in sys.modules if m.partition(".")[0] in ("torch", "transformers")]
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
