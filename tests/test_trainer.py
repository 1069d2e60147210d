"""Trained kinds through their stages and the pipeline: resume, chaining, artifact caching,
store logs, reproducibility."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import harness.train.frozen_index as adore_mod
import harness.train.loop as loop_mod
import harness.train.mining as mining_mod
from harness.data.collection import Collection
from harness.dense import DenseModel
from harness.errors import RecipeError
from harness.index.faiss_index import stored_vectors
from harness.pipeline import RunOptions, run_recipe
from harness.progress import StageProgress
from harness.recipe.loader import parse_recipe
from harness.store import open_store, training_log
from harness.train.frozen_index import frozen_index
from harness.train.strategy import PairStrategy

# Fixtures (cranfield, one_torch_thread, ...) are used by name, hence the noqa.
from train_helpers import (  # noqa: F401
    one_torch_thread, quiet_console, console_text, assert_same_weights, folder_weights,
    cranfield, use_cranfield, recipe_text, stage_context, count_calls, forbid, Interrupted)


# --- stages: resume and reproducibility -------------------------------------------------------

INBATCH_VARIANT = """
[variant.inb]
kind = "inbatch"
max_steps = 3
batch_size = 8
checkpoint_every = 1
lr = 1e-3
query_max_length = 16
doc_max_length = 32
"""


def test_stage_resumes_from_checkpoint_and_matches_a_fresh_cache(tiny_model: Path, tmp_path: Path,
                                                                  use_cranfield: Collection,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    text = recipe_text(tmp_path, tiny_model, INBATCH_VARIANT)
    original = PairStrategy.step
    calls: list[int] = []
    fail = {"at": 3}

    def counting(*args: Any) -> Any:
        inner = original(*args)

        def step(query_ids: list[str], rng: np.random.Generator, at: int) -> Any:
            calls.append(1)
            if len(calls) == fail["at"]:
                raise Interrupted
            return inner(query_ids, rng, at)

        return step

    monkeypatch.setattr(PairStrategy, "step", counting)
    with pytest.raises(Interrupted):
        stage_context(text, tmp_path / "a").resolve("inb")
    models = tmp_path / "a" / "models"
    [partial] = list(models.iterdir())
    assert ".tmp-" in partial.name and (partial / "checkpoint.pt").is_file()

    calls.clear()
    fail["at"] = 0
    ctx = stage_context(text, tmp_path / "a")
    resumed = Path(ctx.resolve("inb").query)
    assert "resuming from" in console_text(ctx.console) and len(calls) == 1
    assert sorted(p.name for p in models.iterdir()) == [resumed.name]  # partial renamed into place
    assert not (resumed / "checkpoint.pt").exists()

    calls.clear()
    fresh = Path(stage_context(text, tmp_path / "b").resolve("inb").query)
    assert len(calls) == 3 and fresh.name == resumed.name  # same key, whatever the cache folder
    assert_same_weights(folder_weights(resumed), folder_weights(fresh))
    assert (resumed / "train_log.jsonl").read_text() == (fresh / "train_log.jsonl").read_text()


# --- pipeline: chaining, caching, logs --------------------------------------------------------

STAR_VARIANTS = """
[variant."star+adore"]
kind = "star+adore"
max_steps = 2
batch_size = 8
train_index = "PQ8"
top_k = 50
query_max_length = 16

[variant.star]
kind = "star"
max_steps = 3
batch_size = 8
negatives_depth = 20
query_max_length = 16
doc_max_length = 32
"""


def run(text: str, folder: Path) -> tuple[list[Any], str]:
    recipe = parse_recipe(text, folder / "recipe.toml")
    console = quiet_console()
    outcomes = run_recipe(recipe, RunOptions(), console)
    return outcomes, console_text(console)


@pytest.fixture(scope="module")
def star_run(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, cranfield: Collection) -> dict[str, Any]:
    """star+adore (listed first) and star, trained and evaluated once; what the tests inspect."""
    folder = tmp_path_factory.mktemp("star-run")
    text = recipe_text(folder, tiny_model, STAR_VARIANTS, name="chain")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("harness.pipeline.run.load_collection", lambda *a, **k: cranfield)
        mp.setattr("harness.pipeline.models.load_collection", lambda *a, **k: cranfield)
        mp.setattr("harness.pipeline.run.git_commit", lambda _: (None, False))
        trains = count_calls(mp, loop_mod, "train")
        indexes = count_calls(mp, adore_mod, "frozen_index")
        outcomes, console = run(text, folder)
    models = {json.loads((p / "drbench.json").read_text())["variant"]: p
              for p in (folder / "cache" / "models").iterdir()}
    return {"folder": folder, "text": text, "outcomes": outcomes, "console": console, "models": models,
            "trained": [call[0][7] for call in trains], "indexes": indexes}


def test_chain_trains_star_once(star_run: dict[str, Any]) -> None:
    assert star_run["trained"] == ["star", "star+adore"]
    assert [(o.variant, o.status) for o in star_run["outcomes"]] == [("star+adore", "done"), ("star", "done")]
    assert star_run["console"].count("mined 20 hard negatives") == 1
    assert "trained model from cache" not in star_run["console"]  # star trained once, then reused in memory
    assert sorted(star_run["models"]) == ["star", "star+adore"]  # no .partial folder left behind
    assert all(not p.name.endswith(".partial") for p in star_run["models"].values())


def test_trained_folders_load_as_sentence_transformers_models(star_run: dict[str, Any], tiny_model: Path) -> None:
    from transformers import AutoModel

    from harness.model.spec import read_model_spec

    for folder in star_run["models"].values():
        assert (folder / "modules.json").is_file() and (folder / "1_Pooling" / "config.json").is_file()
        assert not (folder / "checkpoint.pt").exists()
        model = AutoModel.from_pretrained(folder)
        assert model.config.hidden_size == 32
        spec, base = read_model_spec(folder), read_model_spec(tiny_model)
        assert (spec.pooling, spec.normalize, spec.dim) == (base.pooling, base.normalize, base.dim)
    star_meta = json.loads((star_run["models"]["star"] / "drbench.json").read_text())
    adore_meta = json.loads((star_run["models"]["star+adore"] / "drbench.json").read_text())
    assert star_meta["pairs_with"] is None and star_meta["steps"] == 3
    assert adore_meta["pairs_with"]["path"] == str(star_run["models"]["star"].resolve())
    assert adore_meta["steps"] == 2


def test_star_adore_pairs_its_queries_with_star_documents(star_run: dict[str, Any]) -> None:
    from harness.store import find_run

    db = open_store(star_run["folder"] / "drbench.db")
    star_path, adore_path = (str(star_run["models"][v].resolve()) for v in ("star", "star+adore"))
    model = find_run(db, "star+adore", "cranfield", "Flat", experiment="chain")["model"]
    assert model["path"] == star_path and model["query_path"] == adore_path


def test_star_adore_trains_on_the_decoded_pq_vectors_of_star(star_run: dict[str, Any],
                                                             cranfield: Collection) -> None:
    [((factory, doc_vectors, seed, *_), _)] = star_run["indexes"]
    assert factory == "PQ8" and seed == 3
    star_model = DenseModel.open(str(star_run["models"]["star"]), parse_recipe(star_run["text"]).model)
    console = quiet_console()
    star_docs, seconds = star_model.encode_corpus(cranfield, star_run["folder"] / "cache",
                                                  StageProgress(console), console)
    assert seconds == 0.0 and np.array_equal(doc_vectors, star_docs)  # star's cached vectors
    fi = frozen_index(factory, doc_vectors, seed)
    assert np.array_equal(fi.vectors.numpy(), stored_vectors(fi.built))
    assert not np.allclose(fi.vectors.numpy(), doc_vectors, atol=1e-4)


def test_training_logs_in_the_store(star_run: dict[str, Any]) -> None:
    db = open_store(star_run["folder"] / "drbench.db")
    star_log = training_log(db, "chain", "star")
    assert [r["step"] for r in star_log] == [1, 2, 3]
    assert all(r["loss"] > 0 and r["lr"] > 0 and "hard_loss" in r for r in star_log)
    adore_log = training_log(db, "chain", "star+adore")
    assert [r["step"] for r in adore_log] == [1, 2]
    assert all("train_mrr@10" in r and "train_recall@10" in r for r in adore_log)
    folder_log = [json.loads(x) for x in (star_run["models"]["star"] / "train_log.jsonl").read_text().splitlines()]
    assert folder_log == star_log


def test_same_recipe_again_trains_nothing(star_run: dict[str, Any], use_cranfield: Collection,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    forbid(monkeypatch, loop_mod, "train")
    forbid(monkeypatch, mining_mod, "dense_ranking")
    outcomes, console = run(star_run["text"], star_run["folder"])
    assert {o.status for o in outcomes} == {"skipped"} and len(outcomes) == 2
    assert console.count("trained model from cache") == 2


def test_a_moved_cache_and_model_are_still_reused(star_run: dict[str, Any], use_cranfield: Collection,
                                                 tiny_model: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # keys hash fingerprints, not folders: moving the cache (and the base model) retrains nothing
    import shutil

    shutil.copytree(star_run["folder"] / "cache", tmp_path / "cache")
    moved_model = shutil.copytree(tiny_model, tmp_path / "moved-model")
    forbid(monkeypatch, loop_mod, "train")
    forbid(monkeypatch, mining_mod, "dense_ranking")
    outcomes, console = run(recipe_text(tmp_path, moved_model, STAR_VARIANTS, name="chain"), tmp_path)
    assert {o.status for o in outcomes} == {"done"} and console.count("trained model from cache") == 2


def test_new_experiment_with_an_extra_variant_reuses_trained_models(star_run: dict[str, Any],
                                                                    use_cranfield: Collection,
                                                                    tiny_model: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    forbid(monkeypatch, loop_mod, "train")
    forbid(monkeypatch, mining_mod, "dense_ranking")
    text = recipe_text(star_run["folder"], tiny_model, STAR_VARIANTS + '[variant.zs]\nkind = "zero-shot"\n',
                       name="chain-more")
    outcomes, console = run(text, star_run["folder"])
    assert [(o.variant, o.status) for o in outcomes] == [("star+adore", "done"), ("star", "done"),
                                                          ("zs", "done")]
    assert console.count("trained model from cache") == 2
    db = open_store(star_run["folder"] / "drbench.db")
    assert training_log(db, "chain-more", "star") == training_log(db, "chain", "star")


@pytest.mark.parametrize("bad", ['kind = "inbatch"\ninit = "star+adore"', 'kind = "ance"\ninit = "star+adore"',
                                 'kind = "static"\ninit = "adore"'])
def test_shared_training_refuses_an_adore_init_before_anything_trains(tmp_path: Path, tiny_model: Path,
                                                                     bad: str) -> None:
    text = recipe_text(tmp_path, tiny_model, STAR_VARIANTS + '[variant.adore]\nkind = "adore"\n'
                       f'[variant.bad]\n{bad}\n', name="chain")
    init = bad.split('"')[-2]
    expected = (f'[variant.bad] init = "{init}": that variant ({init}) trains a query encoder beside frozen documents; '
                'start shared-tower training from "base" or a shared-tower variant')
    with pytest.raises(RecipeError) as err:
        parse_recipe(text)
    assert str(err.value).endswith(expected), str(err.value)


def test_star_reproducible_in_a_fresh_cache(star_run: dict[str, Any], use_cranfield: Collection,
                                            tiny_model: Path, tmp_path: Path) -> None:
    text = recipe_text(tmp_path, tiny_model, STAR_VARIANTS, name="again")
    again = Path(stage_context(text, tmp_path / "cache").resolve("star").query)
    first = star_run["models"]["star"]
    assert again.name == first.name
    assert_same_weights(folder_weights(again), folder_weights(first))
    assert (again / "train_log.jsonl").read_text() == (first / "train_log.jsonl").read_text()
