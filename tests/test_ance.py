"""ANCE (harness/train/strategies/ance.py): declared and explained, refreshed at step 0 and every
`refresh_every` steps with a `refresh` row in the log, negatives from the current model's top
`negatives_depth` without judged positives, exact resume between refreshes, and the official loss."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from harness.cli import app
from harness.data.collection import Collection
from harness.errors import RecipeError
from harness.dense import EncoderSettings
from harness.model.encoder import Encoder
from harness.progress import StageProgress
from harness.recipe import parse_recipe
from harness.train.data import TrainData
from harness.train.loop import CHECKPOINT
from harness.train.strategies.ance import KIND, Ance, AnceParams, Refresh, ance_loss, draw_negatives
from harness.train.strategy import TrainInputs
from harness.train.trainer import train_into

# Fixtures (cranfield, one_torch_thread, ...) are used by name, hence the noqa.
from train_helpers import (  # noqa: F401
    one_torch_thread, cranfield, use_cranfield, quiet_console, console_text, recipe_text, stage_context,
    assert_same_weights, folder_weights, Interrupted)

SETTINGS = EncoderSettings(pooling="mean", normalize=False, query_max_length=None, doc_max_length=None,
                           query_prefix="", doc_prefix="", batch_size=64)
# refreshes before step 1 and after steps 2 and 4; a checkpoint after step 3, between two refreshes
PARAMS = AnceParams(batch_size=4, max_steps=5, refresh_every=2, checkpoint_every=3, negatives_depth=20,
                    negatives=3, query_max_length=16, doc_max_length=32, lr=1e-3, warmup_steps=2, scale=20.0)

VARIANTS = """
[variant.warm]
kind = "static"
negatives_depth = 20
max_steps = 2
batch_size = 4
query_max_length = 16
doc_max_length = 32

[variant.anc]
kind = "ance"
init = "warm"
refresh_every = 2
negatives_depth = 20
negatives = 3
max_steps = 3
batch_size = 4
query_max_length = 16
doc_max_length = 32
"""


# --- declared and explained -------------------------------------------------------------------

def test_a_recipe_declares_it_chained_on_a_static_warm_up(tmp_path: Path) -> None:
    variant = parse_recipe(recipe_text(tmp_path, tmp_path, VARIANTS)).variant("anc")
    assert isinstance(variant.params, AnceParams)
    assert (variant.params.init, variant.params.refresh_every, variant.params.negatives_depth,
            variant.params.negatives) == ("warm", 2, 20, 3)
    assert KIND.needs(variant.params).init == "warm" and KIND.needs(variant.params).negatives is None


@pytest.mark.parametrize("refresh_every", [2, 3, 26])
def test_it_never_refreshes_after_the_last_step_and_the_plan_counts_what_it_does(refresh_every: int) -> None:
    # a refresh after the last step draws negatives nothing trains on (78 steps, every 26: steps 0, 26, 52)
    params = AnceParams(refresh_every=refresh_every)
    for steps in (1, 2, 3, 4, 6, 52, 78):
        hook = Refresh(None, params, None)  # type: ignore[arg-type]  # `due` reads neither
        done = [step for step in range(steps + 1) if hook.due(step, steps)]
        assert done[0] == 0 and steps not in done
        assert len(done) == Ance().corpus_encodes(params, steps)


def test_refresh_every_1_is_refused_in_one_line(tmp_path: Path) -> None:
    # refreshes before step 1 and after it would both log into step 1's row
    text = recipe_text(tmp_path, tmp_path, VARIANTS.replace("refresh_every = 2", "refresh_every = 1"))
    with pytest.raises(RecipeError, match=r"\[variant.anc\] refresh_every = 1: .*2"):
        parse_recipe(text)


def test_explain_documents_its_keys_with_the_official_values() -> None:
    result = CliRunner().invoke(app, ["validate", "--explain", "--format", "markdown"])
    assert result.exit_code == 0, result.output
    section = result.output.split('kind = "ance"')[1].split("#### ")[0]
    assert "| `refresh_every` | int | 100 | >= 2 | 10000" in section
    assert "| `negatives_depth` | int | 200 | >= 1 | 200 (--topk_training" in section
    assert "| `negatives` | int | 20 | >= 1 | 20 (--negative_sample" in section
    assert "| `lr` | float | 2e-05 |" in section  # the shared training keys come with it


# --- the loss -----------------------------------------------------------------------------------

def test_the_loss_is_anCEs_log_softmax_over_the_positive_and_the_negative() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    d_pos = torch.tensor([[2.0, 0.0], [0.0, 1.0]])  # scores 2 and 1
    d_neg = torch.tensor([[1.0, 5.0], [4.0, 3.0]])  # scores 1 and 3
    # -log(e^p / (e^p + e^n)) = log(1 + e^(n - p)), per query, then the mean
    expected = (math.log(1 + math.exp(1 - 2)) + math.log(1 + math.exp(3 - 1))) / 2
    assert float(ance_loss(q, d_pos, d_neg)) == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(1.2200948, rel=1e-6)


# --- drawing ------------------------------------------------------------------------------------

def test_drawing_shuffles_the_top_list_and_skips_positives() -> None:
    data = TrainData(("a", "b"), {"a": "x", "b": "y"}, {"a": (1,), "b": (4, 5)}, tuple("0123456789"))
    ranked = np.array([[1, 3, 0, 2, -1], [4, 6, 5, 7, 8]])
    drawn, _ = draw_negatives(ranked, data, 2, np.random.default_rng([3, 0]))
    assert set(drawn["a"]) <= {3, 0, 2} and len(drawn["a"]) == 2
    assert set(drawn["b"]) <= {6, 7, 8} and len(drawn["b"]) == 2
    again, _ = draw_negatives(ranked, data, 2, np.random.default_rng([3, 0]))
    assert all(np.array_equal(drawn[q], again[q]) for q in drawn)  # the seed and step decide
    everything, _ = draw_negatives(ranked, data, 10, np.random.default_rng(1))
    assert sorted(everything["a"]) == [0, 2, 3] and sorted(everything["b"]) == [6, 7, 8]


# --- training: refreshes, negatives, resume ------------------------------------------------------

class Watched(Ance):
    """ANCE whose refresh hook the test can read, and which can die before a given step."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at, self.refresh = fail_at, None

    def hooks(self, encoder: Any, params: Any, inputs: TrainInputs) -> list:
        hooks = super().hooks(encoder, params, inputs)
        self.refresh = hooks[0]
        return hooks

    def step(self, encoder: Any, params: Any, inputs: TrainInputs, hooks: Any = ()) -> Any:
        inner = super().step(encoder, params, inputs, hooks)

        def step(query_ids: list[str], rng: np.random.Generator, at: int) -> Any:
            if at == self.fail_at:
                raise Interrupted
            return inner(query_ids, rng, at)

        return step


@pytest.fixture(scope="module")
def inputs(cranfield: Collection) -> TrainInputs:
    return TrainInputs(data=TrainData.from_collection(cranfield), settings=SETTINGS, seed=5, nprobe=1)


def trained(folder: Path, strategy: Ance, inputs: TrainInputs, tiny_model: Path,
            console: Any = None) -> list[dict[str, Any]]:
    log, _ = train_into(folder, strategy, PARAMS, inputs, tiny_model, StageProgress(console or quiet_console()),
                        quiet_console(), "ance")
    return log


def timeless(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The log without the refreshes' wall-clock seconds, the one thing two runs may differ in."""
    return [{k: ({**v, "seconds": None} if k == "refresh" else v) for k, v in row.items()} for row in log]


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path,
          inputs: TrainInputs) -> Iterator[tuple[Path, list[dict[str, Any]], Watched]]:
    folder = tmp_path_factory.mktemp("ance") / "whole"
    strategy = Watched()
    strategy.console = quiet_console()  # what the progress showed, read by a test
    yield folder, trained(folder, strategy, inputs, tiny_model, strategy.console), strategy


def test_it_refreshes_before_the_first_step_and_every_refresh_every_steps(whole: Any, cranfield: Collection) -> None:
    _, log, _ = whole
    # the refresh before step 1 joins step 1's row; the others their own step's
    assert [row.get("refresh", {}).get("step") for row in log] == [0, 2, None, 4, None]
    for row in log:
        if "refresh" in row:
            refresh = row["refresh"]
            assert refresh["documents"] == len(cranfield.doc_ids) and refresh["queries"] > 0
            assert refresh["seconds"] >= 0
    assert all(row["loss"] > 0 for row in log)


def test_each_refresh_shows_as_a_stage_of_the_training_progress(whole: Any, inputs: TrainInputs) -> None:
    *_, strategy = whole
    texts = len(inputs.data.doc_texts) + len(inputs.data.query_ids)
    lines = console_text(strategy.console).splitlines()
    done = [line.split("] ", 1)[-1].strip().split(" in ")[0] for line in lines if "refreshing negatives" in line
            and ": done," in line]
    assert done == [f"ance: refreshing negatives: done, {texts:,} texts",
                    f"ance: refreshing negatives after step 2: done, {texts:,} texts",
                    f"ance: refreshing negatives after step 4: done, {texts:,} texts"]


def test_the_default_draw_trains_what_ance_trained_before_the_denoising_keys(whole: Any) -> None:
    # Losses of this run recorded before the denoising keys existed (harness/train/strategies/ance.py
    # at 30bbfea): every key at its default draws the same negatives, so the same losses.
    _, log, _ = whole
    assert [row["loss"] for row in log] == pytest.approx(
        [2.6732044219970703, 6.62734317779541, 3.5440351963043213, 8.279183387756348, 7.958535194396973],
        rel=1e-6, abs=1e-9)
    assert all("denoise" not in row.get("refresh", {}) for row in log)  # and the same log rows


def test_negatives_come_from_the_current_models_top_list_without_positives(whole: Any, inputs: TrainInputs,
                                                                          tiny_model: Path) -> None:
    # A refresh ranks with the weights as they are: the run's own hook, called once more after the
    # last step (which the loop never does), must draw from the saved weights' top lists.
    folder, _, _ = whole
    params = AnceParams(**{**PARAMS.as_dict(), "max_steps": 4})
    strategy = Watched()
    log, _ = train_into(folder.parent / "four", strategy, params, inputs, tiny_model, StageProgress(quiet_console()),
                        quiet_console(), "ance")
    assert "refresh" not in log[-1]  # none after the last step: its negatives would train nothing
    assert strategy.refresh.run(4)["refresh"]["step"] == 4
    encoder = Encoder(folder.parent / "four", pooling="mean", normalize=False, max_length=None)
    data = inputs.data
    docs = encoder.encode(data.doc_texts, max_length=params.doc_max_length)
    queries = encoder.encode([data.queries[q] for q in data.query_ids], max_length=params.query_max_length)
    scores = queries @ docs.T
    negatives = strategy.refresh.negatives
    assert set(negatives) == set(data.query_ids)
    for i, query_id in enumerate(data.query_ids):
        drawn = negatives[query_id]
        assert len(drawn) == params.negatives and len(set(drawn.tolist())) == len(drawn)
        assert not set(drawn.tolist()) & set(data.positives[query_id])
        cut = np.sort(scores[i])[::-1][params.negatives_depth - 1]  # the depth-th best score
        assert (scores[i][drawn] >= cut - 1e-4).all(), query_id


def test_a_run_killed_between_refreshes_resumes_with_the_same_negatives_and_weights(
        whole: Any, inputs: TrainInputs, tiny_model: Path) -> None:
    folder, whole_log, whole_strategy = whole
    cut = folder.parent / "cut"
    with pytest.raises(Interrupted):  # dies in step 4: after the checkpoint of step 3, before the refresh of step 4
        trained(cut, Watched(fail_at=3), inputs, tiny_model)
    saved = torch.load(cut / CHECKPOINT, weights_only=True)
    assert saved["step"] == 3 and saved["hooks"]["ance"]["rows"].shape == (len(inputs.data.query_ids), 3)

    resumed = Watched()
    log = trained(cut, resumed, inputs, tiny_model)
    assert timeless(log) == timeless(whole_log)
    assert_same_weights(folder_weights(cut), folder_weights(folder))
    assert all(np.array_equal(resumed.refresh.negatives[q], whole_strategy.refresh.negatives[q])
               for q in inputs.data.query_ids)


def test_without_the_saved_negatives_the_resume_would_differ(whole: Any, inputs: TrainInputs, tiny_model: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # The control that gives the test above its teeth: step 4 trains on the negatives of step 2.
    folder, whole_log, _ = whole
    cut = folder.parent / "forgetful"
    with pytest.raises(Interrupted):
        trained(cut, Watched(fail_at=3), inputs, tiny_model)
    monkeypatch.setattr(Refresh, "load", lambda self, state: None)
    log = trained(cut, Watched(), inputs, tiny_model)
    assert timeless(log)[:3] == timeless(whole_log)[:3] and log[3]["loss"] != whole_log[3]["loss"]


def test_the_pipeline_trains_it_from_a_static_warm_up(tiny_model: Path, tmp_path: Path,
                                                      use_cranfield: Collection) -> None:
    ctx = stage_context(recipe_text(tmp_path, tiny_model, VARIANTS), tmp_path / "cache")
    ref = ctx.resolve("anc")
    assert ref.trained is not None and ref.trained["kind"] == "ance" and ref.query == ref.doc
    from harness.train.artifacts import read_log

    log = read_log(Path(ref.query))
    assert [row.get("refresh", {}).get("step") for row in log] == [0, 2, None]


# --- several processes --------------------------------------------------------------------------

TORCHRUN_RECIPE = """\
[experiment]
name = "dist"
seed = 7
store = "{folder}/drbench.db"
cache_dir = "{folder}/cache"
[model]
base = "{model}"
batch_size = 64
[data]
train = "cranfield"
eval = ["cranfield"]
[eval]
indexes = ["Flat"]
metrics = ["ndcg@10"]
depth = 100
[variant.anc]
kind = "ance"
max_steps = 4
batch_size = 7
lr = 1e-3
warmup_steps = 1
refresh_every = 2
negatives_depth = 20
negatives = 3
query_max_length = 16
doc_max_length = 32
"""


def test_under_torchrun_every_rank_refreshes_and_trains_what_one_process_does(
        tmp_path: Path, mirror: Path) -> None:
    # Both ranks re-encode their share of the corpus (Encoder.encode) and draw the same negatives
    # from rng([seed, step]); an odd batch (7) splits 3 and 4. No dropout: one source of difference less.
    import io
    import os
    import subprocess
    import sys

    from rich.console import Console

    from conftest import REPO, build_tiny_bert
    from harness.pipeline import RunOptions, run_recipe
    from harness.recipe import load_recipe
    from harness.train.artifacts import read_log

    model = build_tiny_bert(tmp_path / "model", dropout=0.0)

    def recipe(folder: Path) -> Path:
        folder.mkdir()
        (folder / "recipe.toml").write_text(TORCHRUN_RECIPE.format(folder=folder, model=model))
        return folder / "recipe.toml"

    run_recipe(load_recipe(recipe(tmp_path / "one")), RunOptions(mirror=str(mirror)), Console(file=io.StringIO()))
    done = subprocess.run([sys.executable, "-m", "harness", "run", str(recipe(tmp_path / "two")), "--mirror",
                           str(mirror), "--nproc", "2"], cwd=tmp_path / "two", capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "250"})
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = ([p.parent for p in (tmp_path / run / "cache" / "models").glob("*/drbench.json")]
                for run in ("one", "two"))
    [one_log], [two_log] = [read_log(f) for f in one], [read_log(f) for f in two]
    assert [row.get("refresh", {}).get("step") for row in two_log] == [0, 2, None, None]
    assert [row.get("refresh") for row in timeless(two_log)] == [row.get("refresh") for row in timeless(one_log)]
    assert [{k: v for k, v in row.items() if k != "refresh"} for row in two_log] == [
        pytest.approx({k: v for k, v in row.items() if k != "refresh"}, abs=1e-5) for row in one_log]
    for name, tensor in folder_weights(one[0]).items():
        torch.testing.assert_close(folder_weights(two[0])[name], tensor, rtol=1e-4, atol=5e-5)
