"""The cross-encoder filter of denoised mining (harness/train/cross_filter.py, RocketQA's
denoising; issue 22 §2), with a tiny random cross-encoder built from a config: what it keeps
against a hand computation with the same model, its extremes, its keys, its validation, and a
static variant mining through it that trains."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from harness.data.collection import Collection
from harness.errors import RecipeError
from harness.pipeline.models import mined_key
from harness.recipe.checks import check_resources
from harness.recipe.loader import parse_recipe
from harness.train.cross_filter import CrossFilter, cross_filtered
from harness.train.data import TrainData
from harness.train.denoise import Denoise, denoised_negatives
from harness.train.strategies.static import KIND as static, StaticParams

from conftest import build_tiny_cross_encoder
# Fixtures (cranfield, one_torch_thread, use_cranfield) are used by name or applied by import, hence the noqa.
from train_helpers import (  # noqa: F401
    one_torch_thread, console_text, cranfield, hand_data, recipe_text, stage_context, use_cranfield)

# hand_data's positives: q1 -> 0, q2 -> 1 and 2, q3 -> 2, q4 -> 3; every other row is a candidate.
RANKED = {q: [(r, 10.0 - r) for r in range(10)] for q in ("q1", "q2", "q3", "q4")}


def hand_scores(folder: Path, data: TrainData) -> dict[tuple[str, int], float]:
    """sigmoid(logit) of every (query, document) pair, one pair at a time, straight from transformers."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    out = {}
    with torch.no_grad():
        for q in data.query_ids:
            for r, text in enumerate(data.doc_texts):
                logit = model(**tokenizer(data.queries[q], text, return_tensors="pt")).logits[0, 0].item()
                out[(q, r)] = 1.0 / (1.0 + np.exp(-logit))
    return out


def mine(folder: Path | None, max_score: float | None = None, **settings: object) -> dict[str, list[int]]:
    data = hand_data()
    denoise = Denoise(filter_model=None if folder is None else str(folder), filter_max_score=max_score,
                      **settings)  # type: ignore[arg-type]
    keep = None if folder is None else CrossFilter(folder, float(max_score), data)  # type: ignore[arg-type]
    negatives = denoised_negatives(RANKED, 4, data, denoise, rng=np.random.default_rng(0), keep=keep)
    return {q: v.tolist() for q, v in negatives.items()}


@pytest.mark.parametrize("settings", [{}, {"range_min": 1, "range_max": 7}, {"sampling": "random"}])
def test_a_ceiling_above_every_score_removes_nothing(tiny_cross_encoder: Path, settings: dict[str, object]) -> None:
    # sigmoid < 1, so 1.0 (the highest allowed) keeps everything; the draws of "random" do not move either
    assert mine(tiny_cross_encoder, 1.0, **settings) == mine(None, **settings)


def test_a_ceiling_below_every_score_removes_everything_and_warns(tiny_cross_encoder: Path) -> None:
    data = hand_data()
    keep = CrossFilter(tiny_cross_encoder, 0.0, data)
    negatives = denoised_negatives(RANKED, 4, data, Denoise(filter_model=str(tiny_cross_encoder),
                                                             filter_max_score=0.0), keep=keep)
    assert all(len(v) == 0 for v in negatives.values())  # as the other keys leave a query: no negative
    line = keep.summary()
    assert line.startswith("warning: ") and "kept 0 of 35 candidates" in line and "\n" not in line
    assert "random documents" in line and "raise filter_max_score" in line


def test_the_kept_candidates_are_those_scored_below_the_ceiling(tiny_cross_encoder: Path) -> None:
    data = hand_data()
    scores = hand_scores(tiny_cross_encoder, data)
    values = sorted(scores.values())
    assert values[-1] - values[0] > 0.1  # a filter with something to tell apart
    middle = len(values) // 2
    ceiling = (values[middle - 1] + values[middle]) / 2
    assert min(abs(v - ceiling) for v in values) > 1e-4  # far from rounding: batching cannot flip a pair
    range_min, depth = 1, 4
    expected = {}
    for q in data.query_ids:
        candidates = [r for r, _ in RANKED[q] if r not in data.positives[q]]
        expected[q] = [r for r in candidates if scores[(q, r)] < ceiling][range_min:][:depth]
    assert mine(tiny_cross_encoder, ceiling, range_min=range_min) == expected
    assert expected != mine(None, range_min=range_min)  # it did remove some
    # the filter is handed what the score filters let through, every query at once ...
    handed: list[dict[str, list[int]]] = []

    def spy(eligible: dict[str, list[int]]) -> dict[str, list[int]]:
        handed.append(eligible)
        return eligible

    denoised_negatives(RANKED, 4, data, Denoise(filter_model="ce", filter_max_score=0.5, max_score=5.0), keep=spy)
    assert handed == [{q: [r for r, s in RANKED[q] if r not in data.positives[q] and s <= 5.0]
                       for q in data.query_ids}]
    # ... and scores them in one call, so its batches span queries
    calls: list[int] = []

    def zeros(pairs, advance):  # type: ignore[no-untyped-def]
        calls.append(len(pairs))
        return np.zeros(len(pairs))

    kept, counts = cross_filtered({"q1": [5, 6], "q2": [], "q3": [4], "q4": []}, data, zeros, 0.5)
    assert calls == [3] and kept == {"q1": [5, 6], "q2": [], "q3": [4], "q4": []} and counts.emptied == 0
    with pytest.raises(ValueError, match="cross-encoder filter"):
        denoised_negatives(RANKED, 4, data, Denoise(filter_model="ce", filter_max_score=0.5))


def test_queries_left_empty_are_counted(tiny_cross_encoder: Path) -> None:
    data = hand_data()
    scores = hand_scores(tiny_cross_encoder, data)
    eligible = {q: [r for r, _ in RANKED[q] if r not in data.positives[q]] for q in data.query_ids}
    # a ceiling between the lowest and the second-lowest of the queries' lowest scores: one query keeps some
    lowest = {q: min(scores[(q, r)] for r in rows) for q, rows in eligible.items()}
    first, second = sorted(lowest, key=lowest.__getitem__)[:2]
    keep = CrossFilter(tiny_cross_encoder, (lowest[first] + lowest[second]) / 2, data)
    kept = keep(eligible)
    assert [q for q in data.query_ids if kept[q]] == [first]
    assert keep.summary().startswith("warning: ") and "3 of 4 training queries have no candidate left" in keep.summary()


KEY_DATA = SimpleNamespace(dataset_id="cranfield", archive_digests={"docs": "abc"})


def test_keys_change_only_when_set_and_name_the_model_by_its_content(tiny_cross_encoder: Path,
                                                                       tmp_path: Path) -> None:
    from harness.model.spec import fingerprint

    today = mined_key(None, 200, KEY_DATA)
    assert mined_key(None, 200, KEY_DATA, Denoise().key(3)) == today
    filtered = Denoise(filter_model=str(tiny_cross_encoder), filter_max_score=0.1)
    key = filtered.key(3)
    assert key == {"filter_model": {"fingerprint": fingerprint(tiny_cross_encoder)}, "filter_max_score": 0.1}
    assert str(tiny_cross_encoder) not in json.dumps(key)
    moved = tmp_path / "moved"
    shutil.copytree(tiny_cross_encoder, moved)
    assert Denoise(filter_model=str(moved), filter_max_score=0.1).key(3) == key  # same content, same key
    other = build_tiny_cross_encoder(tmp_path / "other", seed=1)
    keys = {mined_key(None, 200, KEY_DATA, d.key(3, device)) for d, device in (
        (filtered, "cpu"), (Denoise(filter_model=str(other), filter_max_score=0.1), "cpu"),
        (Denoise(filter_model=str(moved), filter_max_score=0.2), "cpu"), (filtered, "cuda"))}
    assert len(keys) == 4 and today not in keys
    # the plan names the negatives by the settings as written
    assert filtered.settings(3) == {"filter_model": str(tiny_cross_encoder), "filter_max_score": 0.1}
    # a trained model's key holds the negatives' key, not the folder
    params = StaticParams(filter_model=str(tiny_cross_encoder), filter_max_score=0.1)
    assert "filter_model" not in params.key_dict() and params.key_dict()["filter_max_score"] == 0.1
    assert StaticParams().key_dict() == StaticParams(filter_model=None).key_dict()
    assert "filter_max_score" not in StaticParams().key_dict()


STATIC = '[variant.{name}]\nkind = "static"\nnegatives_depth = 5\n{extra}'


@pytest.mark.parametrize("extra, fragment", [
    ("filter_max_score = 0.1\n", "[variant.s] filter_max_score = 0.1: needs filter_model"),
    ('filter_model = "ce"\n', '[variant.s] filter_model = "ce": needs filter_max_score'),
    ('filter_model = "ce"\nfilter_max_score = 1.5\n', "[variant.s] filter_max_score = 1.5: must be <= 1"),
])
def test_recipe_validation_names_the_key(tmp_path: Path, extra: str, fragment: str) -> None:
    with pytest.raises(RecipeError) as err:
        parse_recipe(recipe_text(tmp_path, tmp_path, STATIC.format(name="s", extra=extra)), "x.toml")
    assert fragment in str(err.value) and "\n" not in str(err.value), str(err.value)


@pytest.mark.parametrize("folder, fragment", [
    ("missing", "does not exist"),
    ("tiny_model", "is not a sequence-classification model (architectures: BertModel)"),
    ("two_labels", "has 2 outputs"),
    ("pickle", "pickle only"),
])
def test_a_folder_that_is_no_cross_encoder_is_refused_before_any_work(
        tmp_path: Path, tiny_model: Path, folder: str, fragment: str) -> None:
    path = {"missing": tmp_path / "missing", "tiny_model": tiny_model,
            "two_labels": build_tiny_cross_encoder(tmp_path / "two", num_labels=2)}.get(folder)
    if folder == "pickle":
        from transformers import AutoModelForSequenceClassification

        path = build_tiny_cross_encoder(tmp_path / "pickle")
        AutoModelForSequenceClassification.from_pretrained(path).save_pretrained(path, safe_serialization=False)
        (path / "model.safetensors").unlink()
    text = recipe_text(tmp_path, tiny_model, STATIC.format(
        name="s", extra=f'filter_model = "{path}"\nfilter_max_score = 0.1\n'))
    with pytest.raises(RecipeError) as err:
        check_resources(parse_recipe(text, "x.toml"))
    message = str(err.value)
    assert message.startswith(f'x.toml [variant.s] filter_model = "{path}": ') and fragment in message, message
    assert "\n" not in message


def test_a_cross_encoder_passes_the_checks(tmp_path: Path, tiny_model: Path, tiny_cross_encoder: Path) -> None:
    text = recipe_text(tmp_path, tiny_model, STATIC.format(
        name="s", extra=f'filter_model = "{tiny_cross_encoder}"\nfilter_max_score = 0.1\n'))
    check_resources(parse_recipe(text, "x.toml"))


def test_static_mines_through_the_filter_and_trains(tiny_model: Path, tiny_cross_encoder: Path, tmp_path: Path,
                                                    use_cranfield: Collection, mirror: Path) -> None:
    from harness.model.cross_encoder import CrossEncoder

    filtered = f'max_steps = 2\nbatch_size = 4\nfilter_model = "{tiny_cross_encoder}"\nfilter_max_score = 0.5\n'
    variants = (STATIC.format(name="plain", extra="max_steps = 2\nbatch_size = 4\n")
                + STATIC.format(name="filtered", extra=filtered))
    models = stage_context(recipe_text(tmp_path, tiny_model, variants), tmp_path / "cache")
    data = TrainData.from_collection(use_cranfield)
    plain_needs, filtered_needs = (static.needs(models.recipe.variant(v).params) for v in ("plain", "filtered"))
    plain, plain_key = models._negatives(plain_needs, data, use_cranfield)
    kept, key = models._negatives(filtered_needs, data, use_cranfield)
    assert plain_key == mined_key(None, 5, use_cranfield) != key  # today's key for the plain negatives
    assert any(plain[q].tolist() != kept[q].tolist() for q in data.query_ids)
    # every kept negative scores below 0.5 under the same cross-encoder
    pairs = [(data.queries[q], data.doc_texts[r]) for q in data.query_ids for r in kept[q].tolist()]
    assert pairs and (CrossEncoder(tiny_cross_encoder).score(pairs) < 0.5).all()
    assert "cross-encoder filter tiny-cross-encoder" in console_text(models.console).replace("\n", " ")
    trained = models.resolve("filtered")
    assert trained.trained is not None and trained.trained["steps"] == 2
    # `drbench plan` computes the same negatives key, so it finds the model trained on them
    from harness.pipeline.plan_status import _Lookup

    planned = _Lookup(models.recipe, tmp_path / "cache", mirror, None).model("filtered", 3)
    assert planned.ref.trained is not None and planned.ref.trained["key"] == trained.trained["key"]


def test_the_plan_names_filtered_negatives_apart(tmp_path: Path, tiny_cross_encoder: Path) -> None:
    from harness.recipe import build_plan

    text = (STATIC.format(name="plain", extra="") + STATIC.format(
        name="filtered", extra=f'filter_model = "{tiny_cross_encoder}"\nfilter_max_score = 0.1\n'))
    plan = build_plan(parse_recipe(recipe_text(tmp_path, tmp_path, text)))
    made = {r.variant: [a for a in r.produces if a.startswith("negatives:")] for r in plan.runs if r.trains}
    assert made == {"plain": ["negatives:bm25:5"],
                    "filtered": [f"negatives:bm25:5[filter_model={tiny_cross_encoder}, filter_max_score=0.1]"]}
