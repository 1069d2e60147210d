"""ANCE's denoised refresh (harness/train/strategies/ance.py, issue 22 §2): the denoising keys of
static and star (range_min, max_score, absolute_margin, relative_margin, sampling, the
cross-encoder filter) applied to the current model's ranking at every refresh. The draw on
hand-made rankings (the same eligible candidates as static's denoised_negatives, the official
shuffle kept at the defaults), validation, the explained keys, the keys of the trained model, and
training: denoised negatives that obey the keys under the model that drew them, an exact resume,
and the cross-encoder filter through the pipeline."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from harness.cli import app
from harness.data.collection import Collection
from harness.errors import RecipeError
from harness.model.encoder import Encoder
from harness.progress import StageProgress
from harness.recipe import build_plan, parse_recipe
from harness.train.data import TrainData
from harness.train.denoise import Denoise, denoised_negatives
from harness.train.hooks import ignore
from harness.train.loop import CHECKPOINT
from harness.train.strategies.ance import KIND, OFFICIAL, AnceParams, DrawCounts, Refresh, draw_negatives
from harness.train.strategy import TrainInputs
from harness.train.trainer import train_into

from conftest import build_tiny_cross_encoder
from test_ance import PARAMS, SETTINGS, Watched, timeless
# Fixtures (cranfield, one_torch_thread, use_cranfield) are used by name or applied by import, hence the noqa.
from train_helpers import (  # noqa: F401
    one_torch_thread, cranfield, use_cranfield, hand_data, quiet_console, recipe_text, stage_context,
    assert_same_weights, folder_weights, Interrupted)

# hand_data's positives: q1 -> 0, q2 -> 1 and 2 (scores 10 and 8: its margins use 8), q3 -> 2, q4 -> 3.
RANKED = np.array([[0, 5, 6, 7, 8, 9], [1, 4, 2, 5, 6, 3], [3, 2, -1, -1, -1, -1], [3, -1, -1, -1, -1, -1]])
SCORES = np.array([[10.0, 9.8, 9.0, 8.0, 5.0, 1.0], [10.0, 9.0, 8.0, 7.9, 7.0, 2.0],
                   [4.0, 3.0, 0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
POSITIVE_SCORES = {"q1": [10.0], "q2": [10.0, 8.0], "q3": [3.0], "q4": [1.0]}


def draw(count: int = 3, keep: Any = None, rng: int = 0, **settings: Any) -> dict[str, list[int]]:
    # ance's defaults (sampling = "random") unless the settings say otherwise
    drawn, _ = draw_negatives(RANKED, hand_data(), count, np.random.default_rng(rng), replace(OFFICIAL, **settings),
                              SCORES, POSITIVE_SCORES, keep)
    return {q: v.tolist() for q, v in drawn.items()}


def official(ranked: np.ndarray, data: TrainData, count: int, rng: np.random.Generator) -> dict[str, list[int]]:
    """ance's draw before the denoising keys existed (ance.py at 30bbfea), verbatim."""
    drawn = {}
    for i, query_id in enumerate(data.query_ids):
        positives = set(data.positives[query_id])
        shuffled = ranked[i][rng.permutation(ranked.shape[1])]
        drawn[query_id] = [int(r) for r in shuffled if r >= 0 and r not in positives][:count]
    return drawn


# --- the draw, on hand-made rankings -------------------------------------------------------------

@pytest.mark.parametrize("count", [1, 3, 40])
def test_the_defaults_draw_what_ance_drew_before_the_keys(count: int) -> None:
    rng = np.random.default_rng(11)
    n_docs, n_queries, depth = 60, 25, 30
    data = TrainData(tuple(f"q{i}" for i in range(n_queries)), {f"q{i}": "x" for i in range(n_queries)},
                     {f"q{i}": tuple(rng.choice(n_docs, size=1 + i % 3, replace=False).tolist())
                      for i in range(n_queries)}, tuple(str(d) for d in range(n_docs)))
    ranked = np.stack([rng.permutation(n_docs)[:depth] for _ in range(n_queries)])
    ranked[3, 20:] = -1  # a short list
    scores = -np.sort(-rng.normal(size=ranked.shape), axis=1)
    for seed in range(5):
        today = official(ranked, data, count, np.random.default_rng([seed, 2]))
        drawn, counts = draw_negatives(ranked, data, count, np.random.default_rng([seed, 2]), OFFICIAL, scores)
        assert {q: v.tolist() for q, v in drawn.items()} == today
        assert counts.scored_out == counts.filtered_out == counts.skipped == 0
        assert counts.candidates == counts.eligible
    assert AnceParams().sampling == OFFICIAL.sampling == "random" and Denoise.of(AnceParams()) == OFFICIAL


@pytest.mark.parametrize("settings", [{}, {"relative_margin": 0.05}, {"absolute_margin": 1.0}, {"max_score": 8.0},
                                      {"range_min": 1}, {"range_min": 1, "max_score": 9.5},
                                      {"range_min": 1, "relative_margin": 0.05, "max_score": 9.0}])
def test_top_keeps_the_candidates_static_would_keep(settings: dict[str, Any]) -> None:
    # one implementation of the semantics: denoised_negatives, as static mines with it
    ranking = {q: [(int(r), float(s)) for r, s in zip(RANKED[i], SCORES[i]) if r >= 0]
               for i, q in enumerate(hand_data().query_ids)}
    static = denoised_negatives(ranking, 3, hand_data(), Denoise(**settings), POSITIVE_SCORES)
    assert draw(sampling="top", **settings) == {q: v.tolist() for q, v in static.items()}


def test_each_key_moves_the_negatives_as_sentence_transformers_does() -> None:
    assert draw(sampling="top") == {"q1": [5, 6, 7], "q2": [4, 5, 6], "q3": [3], "q4": []}
    # q1: 9.8 > 0.95 x 10; q2: 9.0 and 7.9 > 0.95 x 8 (its lowest positive); q3: 4.0 > 0.95 x 3
    assert draw(sampling="top", relative_margin=0.05) == {"q1": [6, 7, 8], "q2": [6, 3], "q3": [], "q4": []}
    assert draw(sampling="top", absolute_margin=1.0) == {"q1": [6, 7, 8], "q2": [6, 3], "q3": [], "q4": []}
    assert draw(sampling="top", max_score=8.0) == {"q1": [7, 8, 9], "q2": [5, 6, 3], "q3": [3], "q4": []}
    assert draw(sampling="top", range_min=1) == {"q1": [6, 7, 8], "q2": [5, 6, 3], "q3": [], "q4": []}
    # range_min after the filters: 5 is rejected first, so range_min skips 6
    assert draw(sampling="top", range_min=1, max_score=9.5)["q1"] == [7, 8, 9]


def test_random_draws_among_the_eligible_only() -> None:
    eligible = {"q1": {7, 8, 9}, "q2": {5, 6, 3}, "q3": {3}, "q4": set()}  # max_score = 8.0
    seen: dict[str, set[int]] = {q: set() for q in eligible}
    for seed in range(30):
        drawn = draw(count=2, rng=seed, max_score=8.0)
        for q, rows in drawn.items():
            assert set(rows) <= eligible[q] and len(rows) == min(2, len(eligible[q])) == len(set(rows))
            seen[q] |= set(rows)
    assert seen == eligible  # every eligible candidate is drawn some time, nothing else ever
    # the same shuffle as the official draw, restricted to the eligible: with room for all of them,
    # the official order of the whole list with the rejected ones taken out
    full = official(RANKED, hand_data(), 10, np.random.default_rng(4))
    assert draw(count=10, rng=4, max_score=8.0) == {q: [r for r in full[q] if r in eligible[q]] for q in full}


def test_the_cross_encoder_filter_acts_after_the_scores_and_before_range_min() -> None:
    handed: list[dict[str, list[int]]] = []

    def keep(eligible: dict[str, list[int]]) -> dict[str, list[int]]:  # vetoes row 6 wherever it is
        handed.append({q: list(rows) for q, rows in eligible.items()})
        return {q: [r for r in rows if r != 6] for q, rows in eligible.items()}

    settings = {"sampling": "top", "max_score": 9.5, "range_min": 1, "filter_model": "ce", "filter_max_score": 0.1}
    drawn, counts = draw_negatives(RANKED, hand_data(), 3, np.random.default_rng(0), Denoise(**settings), SCORES,
                                   POSITIVE_SCORES, keep)
    # it sees what max_score left, in rank order; range_min then skips the first it kept
    assert handed == [{"q1": [6, 7, 8, 9], "q2": [4, 5, 6, 3], "q3": [3], "q4": []}]
    assert {q: v.tolist() for q, v in drawn.items()} == {"q1": [8, 9], "q2": [5, 3], "q3": [], "q4": []}
    # candidates: q1 5, q2 4, q3 1, q4 0; max_score rejects q1's 5; the filter both 6s; range_min one each of 3
    assert counts == DrawCounts(candidates=10, scored_out=1, filtered_out=2, skipped=3, eligible=4)


def test_the_draw_refuses_what_it_cannot_honour() -> None:
    data, rng = hand_data(), np.random.default_rng(0)
    with pytest.raises(ValueError, match="negatives_depth"):
        draw_negatives(RANKED, data, 3, rng, Denoise(range_max=3), SCORES)
    with pytest.raises(ValueError, match="scores"):
        draw_negatives(RANKED, data, 3, rng, Denoise(max_score=1.0))
    with pytest.raises(ValueError, match="cross-encoder"):
        draw_negatives(RANKED, data, 3, rng, Denoise(filter_model="ce", filter_max_score=0.1), SCORES)


# --- declared, validated, explained, keyed --------------------------------------------------------

ANCE = """
[variant.anc]
kind = "ance"
negatives_depth = 20
negatives = 3
max_steps = 2
batch_size = 4
query_max_length = 16
doc_max_length = 32
{extra}"""


def test_a_recipe_sets_the_keys_on_ance(tmp_path: Path) -> None:
    extra = 'range_min = 2\nrelative_margin = 0.05\nmax_score = 30.0\nabsolute_margin = 0.5\nsampling = "top"\n'
    params = parse_recipe(recipe_text(tmp_path, tmp_path, ANCE.format(extra=extra))).variant("anc").params
    assert isinstance(params, AnceParams)
    assert Denoise.of(params) == Denoise(range_min=2, relative_margin=0.05, max_score=30.0, absolute_margin=0.5,
                                         sampling="top")
    assert KIND.needs(params).negatives is None  # no mined negatives: the refresh draws them


@pytest.mark.parametrize("extra, fragment", [
    ("range_min = 20\n", "[variant.anc] range_min = 20: must be below negatives_depth (20)"),
    ("relative_margin = 1.0\n", "[variant.anc] relative_margin = 1.0: must be below 1"),
    ("filter_max_score = 0.1\n", "[variant.anc] filter_max_score = 0.1: needs filter_model"),
    ('filter_model = "ce"\n', '[variant.anc] filter_model = "ce": needs filter_max_score'),
    ("range_max = 50\n", "[variant.anc] range_max: ance's candidate depth is negatives_depth"),
    ('sampling = "best"\n', '[variant.anc] sampling = "best"'),
    ("absolute_margin = -1.0\n", "[variant.anc] absolute_margin = -1.0"),
])
def test_validation_names_the_key(tmp_path: Path, extra: str, fragment: str) -> None:
    with pytest.raises(RecipeError) as err:
        parse_recipe(recipe_text(tmp_path, tmp_path, ANCE.format(extra=extra)), "x.toml")
    assert fragment in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_a_missing_cross_encoder_is_refused_before_any_work(tmp_path: Path, tiny_model: Path) -> None:
    from harness.recipe.checks import check_resources

    missing = tmp_path / "missing"
    text = recipe_text(tmp_path, tiny_model, ANCE.format(extra=f'filter_model = "{missing}"\nfilter_max_score = 0.1\n'))
    with pytest.raises(RecipeError, match="does not exist") as err:
        check_resources(parse_recipe(text, "x.toml"))
    assert str(err.value).startswith(f'x.toml [variant.anc] filter_model = "{missing}": ')


def test_validate_refuses_it_in_one_line_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text(recipe_text(tmp_path, tmp_path, ANCE.format(extra="range_max = 50\n")))
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "r.toml")])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "set that instead" in lines[0], result.stderr


def test_explain_documents_the_keys_for_ance_with_their_sources() -> None:
    result = CliRunner().invoke(app, ["validate", "--explain", "--format", "markdown"])
    assert result.exit_code == 0, result.output
    section = result.output.split('kind = "ance"')[1].split("#### ")[0]
    rows = {line.split("|")[1].strip(" `"): line for line in section.splitlines() if line.startswith("| `")}
    for key in ("range_min", "max_score", "absolute_margin", "relative_margin", "sampling", "filter_model",
                "filter_max_score"):
        assert key in rows, key
    assert "range_max" not in rows and "ance's range_max" in rows["negatives_depth"]
    assert '| "random" | top, random | random (shuffle the top 200' in rows["sampling"]
    assert "run_ann_data_gen.py:339-396" in rows["sampling"] and "hard_negatives.py:582-584" in rows["sampling"]
    assert "hard_negatives.py:577-579" in rows["range_min"] and "hard_negatives.py:550-551" in rows["max_score"]
    assert "hard_negatives.py:523-532" in rows["absolute_margin"]
    assert "0.05 is NV-Retriever's" in rows["relative_margin"] and "0.1: RocketQA keeps a retrieved candidate" in rows["filter_max_score"]


def test_the_keys_enter_the_model_key_only_when_set(tiny_cross_encoder: Path, tmp_path: Path) -> None:
    import shutil

    def key_parts(**params: Any) -> dict[str, Any]:
        return KIND.key_parts(AnceParams(**params), None)  # type: ignore[arg-type]  # the inputs are not read

    names = ("range_min", "max_score", "absolute_margin", "relative_margin", "sampling", "filter_model",
             "filter_max_score")
    assert not set(names) & set(AnceParams().key_dict()) and key_parts() == {}
    assert AnceParams(sampling="random").key_dict() == AnceParams().key_dict()  # ance's default
    assert AnceParams(sampling="top").key_dict()["sampling"] == "top"
    assert AnceParams(relative_margin=0.05).key_dict()["relative_margin"] == 0.05
    # the cross-encoder by its content, not its folder
    filtered = AnceParams(filter_model=str(tiny_cross_encoder), filter_max_score=0.1)
    assert "filter_model" not in filtered.key_dict() and filtered.key_dict()["filter_max_score"] == 0.1
    parts = key_parts(filter_model=str(tiny_cross_encoder), filter_max_score=0.1)
    moved = shutil.copytree(tiny_cross_encoder, tmp_path / "moved")
    other = build_tiny_cross_encoder(tmp_path / "other", seed=1)
    assert parts and key_parts(filter_model=str(moved), filter_max_score=0.1) == parts
    assert key_parts(filter_model=str(other), filter_max_score=0.1) != parts


def test_the_plan_makes_only_the_model(tmp_path: Path) -> None:
    extra = "range_min = 2\nrelative_margin = 0.05\n"
    plan = build_plan(parse_recipe(recipe_text(tmp_path, tmp_path, ANCE.format(extra=extra))))
    [run] = [r for r in plan.runs if r.trains]
    assert run.produces == ("model:anc@3",) and run.needs == ()  # its negatives are no artifact


# --- training -------------------------------------------------------------------------------------

# refreshes before step 1 and after steps 2 and 4; a checkpoint after step 3. Four steps: the saved
# weights are those the last refresh ranked with. The tiny random model ranks most positives below
# its top 100 of 300, so a margin leaves candidates only when the list runs deep.
DENOISED = AnceParams(**{**PARAMS.as_dict(), "max_steps": 4, "negatives_depth": 150, "range_min": 2,
                         "relative_margin": 0.005})


@pytest.fixture(scope="module")
def inputs(cranfield: Collection) -> TrainInputs:
    return TrainInputs(data=TrainData.from_collection(cranfield), settings=SETTINGS, seed=5, nprobe=1)


def trained(folder: Path, strategy: Watched, inputs: TrainInputs, tiny_model: Path) -> list[dict[str, Any]]:
    log, _ = train_into(folder, strategy, DENOISED, inputs, tiny_model, StageProgress(quiet_console()),
                        quiet_console(), "ance")
    return log


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path,
          inputs: TrainInputs) -> Iterator[tuple[Path, list[dict[str, Any]], Watched]]:
    folder = tmp_path_factory.mktemp("ance-denoise") / "whole"
    strategy = Watched()
    yield folder, trained(folder, strategy, inputs, tiny_model), strategy


def test_each_refresh_logs_what_the_keys_rejected(whole: Any, inputs: TrainInputs) -> None:
    _, log, _ = whole
    refreshes = [row["refresh"] for row in log if "refresh" in row]
    assert [r["step"] for r in refreshes] == [0, 2]  # none after step 4, the last
    for refresh in refreshes:
        counts = refresh["denoise"]
        assert counts["scored_out"] > 0 and counts["filtered_out"] == 0 and counts["eligible"] > 0
        assert 0 < counts["skipped"] <= 2 * len(inputs.data.query_ids)  # range_min = 2 per query, if it has them
        assert counts["candidates"] == sum(counts[k] for k in ("scored_out", "filtered_out", "skipped", "eligible"))


def test_the_negatives_obey_the_keys_under_the_model_that_drew_them(whole: Any, inputs: TrainInputs) -> None:
    # a refresh after the last step (which the loop never runs) draws from the saved weights'
    # ranking, which the test recomputes
    folder, _, strategy = whole
    again = Refresh(strategy.refresh.encoder, DENOISED, inputs)  # a copy: the resume test reads the run's own
    assert again.run(4)["refresh"]["step"] == 4
    encoder = Encoder(folder, pooling="mean", normalize=False, max_length=None)
    data = inputs.data
    docs = encoder.encode(data.doc_texts, max_length=DENOISED.doc_max_length)
    queries = encoder.encode([data.queries[q] for q in data.query_ids], max_length=DENOISED.query_max_length)
    scores = queries @ docs.T
    rejected = 0
    for i, q in enumerate(data.query_ids):
        drawn, positives = again.negatives[q].tolist(), list(data.positives[q])
        ceiling = (1 - DENOISED.relative_margin) * scores[i][positives].min()
        top = np.argsort(-scores[i])[:DENOISED.negatives_depth]
        survivors = [r for r in top if r not in positives and scores[i][r] <= ceiling]
        rejected += sum(1 for r in top if r not in positives and scores[i][r] > ceiling + 1e-4)
        assert not set(drawn) & set(positives) and len(drawn) == min(DENOISED.negatives, max(len(survivors) - 2, 0))
        for r in drawn:
            assert r in top and scores[i][r] <= ceiling + 1e-4, (q, r)
            # not one of the range_min best survivors
            assert sum(1 for s in survivors if scores[i][s] > scores[i][r] + 1e-4) >= DENOISED.range_min, (q, r)
    assert rejected > 0  # the margin had something to reject: the test has teeth
    assert sum(len(v) for v in again.negatives.values()) > 0  # and left something to check


def test_a_denoised_run_killed_between_refreshes_resumes_exactly(whole: Any, inputs: TrainInputs,
                                                                 tiny_model: Path) -> None:
    folder, whole_log, whole_strategy = whole
    cut = folder.parent / "cut"
    with pytest.raises(Interrupted):  # dies in step 4, after the checkpoint of step 3
        trained(cut, Watched(fail_at=3), inputs, tiny_model)
    assert torch.load(cut / CHECKPOINT, weights_only=True)["step"] == 3
    resumed = Watched()
    log = trained(cut, resumed, inputs, tiny_model)
    assert timeless(log) == timeless(whole_log)
    assert_same_weights(folder_weights(cut), folder_weights(folder))
    assert all(np.array_equal(resumed.refresh.negatives[q], whole_strategy.refresh.negatives[q])
               for q in inputs.data.query_ids)


def test_the_pipeline_filters_ances_candidates_with_a_cross_encoder(
        tiny_model: Path, tiny_cross_encoder: Path, tmp_path: Path, use_cranfield: Collection, mirror: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.model.cross_encoder import CrossEncoder
    from harness.pipeline.plan_status import _Lookup
    from harness.train.artifacts import read_log

    drawn: list[dict[str, list[int]]] = []
    run = Refresh.run

    def recorded(self: Refresh, step: int, advance: Any = ignore) -> dict[str, Any]:
        out = run(self, step, advance)
        drawn.append({q: v.tolist() for q, v in self.negatives.items()})
        return out

    monkeypatch.setattr(Refresh, "run", recorded)
    extra = f'refresh_every = 2\nfilter_model = "{tiny_cross_encoder}"\nfilter_max_score = 0.5\n'
    three_steps = ANCE.replace("max_steps = 2", "max_steps = 3")  # refreshes before step 1 and after step 2
    models = stage_context(recipe_text(tmp_path, tiny_model, three_steps.format(extra=extra)), tmp_path / "cache")
    ref = models.resolve("anc")
    assert ref.trained is not None and ref.trained["steps"] == 3
    refreshes = [row["refresh"] for row in read_log(Path(ref.query)) if "refresh" in row]
    assert [r["step"] for r in refreshes] == [0, 2] and len(drawn) == 2
    assert all(r["denoise"]["filtered_out"] > 0 and r["denoise"]["eligible"] > 0 for r in refreshes)
    data = TrainData.from_collection(use_cranfield)
    pairs = [(data.queries[q], data.doc_texts[r]) for negatives in drawn for q, rows in negatives.items()
             for r in rows]
    assert pairs and (CrossEncoder(tiny_cross_encoder).score(pairs) < 0.5).all()
    # `drbench plan` computes the same key (the cross-encoder's fingerprint in it), so it finds the model
    planned = _Lookup(models.recipe, tmp_path / "cache", mirror, None).model("anc", 3)
    assert planned.ref.trained is not None and planned.ref.trained["key"] == ref.trained["key"]


def test_under_torchrun_rank_0_filters_and_every_rank_draws_what_one_process_draws(
        tmp_path: Path, mirror: Path, tiny_cross_encoder: Path) -> None:
    # The cross-encoder runs on rank 0 and hands every rank its answer (World.on_main), so both
    # ranks draw the same negatives from rng([seed, step]); as test_ance's torchrun test, denoised.
    import io
    import os
    import subprocess
    import sys

    from rich.console import Console

    from conftest import REPO, build_tiny_bert
    from harness.pipeline import RunOptions, run_recipe
    from harness.recipe import load_recipe
    from harness.train.artifacts import read_log
    from test_ance import TORCHRUN_RECIPE

    model = build_tiny_bert(tmp_path / "model", dropout=0.0)
    extra = f'range_min = 1\nabsolute_margin = 0.0\nfilter_model = "{tiny_cross_encoder}"\nfilter_max_score = 0.5\n'
    text = TORCHRUN_RECIPE.replace("negatives_depth = 20", "negatives_depth = 150") + extra

    def recipe(folder: Path) -> Path:
        folder.mkdir()
        (folder / "recipe.toml").write_text(text.format(folder=folder, model=model))
        return folder / "recipe.toml"

    run_recipe(load_recipe(recipe(tmp_path / "one")), RunOptions(mirror=str(mirror)), Console(file=io.StringIO()))
    done = subprocess.run([sys.executable, "-m", "harness", "run", str(recipe(tmp_path / "two")), "--mirror",
                           str(mirror), "--nproc", "2"], cwd=tmp_path / "two", capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "250"})
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = ([p.parent for p in (tmp_path / run / "cache" / "models").glob("*/drbench.json")]
                for run in ("one", "two"))
    [one_log], [two_log] = [read_log(f) for f in one], [read_log(f) for f in two]
    refreshes = [row.get("refresh") for row in timeless(two_log)]
    assert refreshes == [row.get("refresh") for row in timeless(one_log)]
    assert all(r["denoise"]["filtered_out"] > 0 and r["denoise"]["eligible"] > 0 for r in refreshes if r)
    assert [{k: v for k, v in row.items() if k != "refresh"} for row in two_log] == [
        pytest.approx({k: v for k, v in row.items() if k != "refresh"}, abs=1e-5) for row in one_log]
    for name, tensor in folder_weights(one[0]).items():
        torch.testing.assert_close(folder_weights(two[0])[name], tensor, rtol=1e-4, atol=5e-5)
