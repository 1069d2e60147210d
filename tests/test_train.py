"""Training: samplers and mining on hand-made data, the loop (batches, steps, LR, resume), ADORE
(frozen documents, moving queries, compressed index), and trained kinds through the pipeline
(chaining, artifact caching, store logs, reproducibility).

Everything uses the tiny random-weight BERT. Tests that need a corpus use the first 300
Cranfield documents (loaded through the real ir_datasets API from the offline mirror, then cut
down): encoding the full 1,400 documents on a shared CPU would dominate the run time. The cut
stays above 256 documents so that a PQ8 index (256 centroids per sub-quantizer) can train.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import pytest
import torch
from rich.console import Console

import harness.train.adore as adore_mod
import harness.train.loop as loop_mod
import harness.train.mining as mining_mod
import harness.train.stages as stages_mod
from harness.context import StageContext
from harness.data.collection import Collection, load_collection
from harness.dense import DenseModel
from harness.errors import RecipeError
from harness.index.faiss_index import build_index, search, stored_vectors
from harness.model.encoder import embed_batch
from harness.pipeline import RunOptions, run_recipe
from harness.progress import StageProgress
from harness.recipe.loader import parse_recipe
from harness.store import open_store, training_log
from harness.train.adore import adore_step, frozen_index, retrieved_lists
from harness.train.loop import micro_batch, optimizer_for, plan, train
from harness.train.mining import mine_negatives
from harness.train.samplers import random_neg, star, static
from harness.train.samplers.base import TrainData, relevance_mask

N_DOCS = 300


# --- helpers ----------------------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Any:
    """Tiny models on a shared 2-core machine: torch's intra-op threads only spin-wait on each
    other (a training step goes from ~10 ms to ~0.5 s under load). One thread, then restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def quiet_console() -> Console:
    return Console(file=io.StringIO(), width=250, force_terminal=False)


def console_text(console: Console) -> str:
    return console.file.getvalue()  # type: ignore[attr-defined]


def hand_data() -> TrainData:
    """10 documents, 4 queries; q2 and q3 share document 2 (q3's only positive)."""
    positives = {"q1": (0,), "q2": (1, 2), "q3": (2,), "q4": (3,)}
    return TrainData(query_ids=("q1", "q2", "q3", "q4"),
                     queries={q: f"query {q}" for q in positives}, positives=positives,
                     doc_texts=tuple(f"doc {i}" for i in range(10)),
                     relevance={q: {r: 1 for r in rows} for q, rows in positives.items()})


# q4's only mined negative (doc 0) is q1's positive: a cross-query collision the masks must catch.
HAND_NEGATIVES = {"q1": np.array([5, 6, 7]), "q2": np.array([4, 5]), "q3": np.array([8, 9]),
                  "q4": np.array([0])}


def loop_params(**overrides: Any) -> dict[str, Any]:
    params = {"batch_size": 4, "epochs": 1, "max_steps": 5, "grad_accum": 1, "lr": 1e-3,
              "weight_decay": 0.01, "warmup_steps": 2, "grad_clip": 1.0, "checkpoint_every": 2}
    return {**params, **overrides}


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different[:5]}"


def folder_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def files_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cranfield(mirror: Path) -> Collection:
    """The first N_DOCS Cranfield documents and the queries judged on them."""
    full = load_collection("cranfield", mirror)
    keep = set(full.doc_ids[:N_DOCS])
    qrels = {q: {d: r for d, r in rels.items() if d in keep} for q, rels in full.qrels.items()}
    qrels = {q: rels for q, rels in qrels.items() if rels}
    return replace(full, doc_ids=full.doc_ids[:N_DOCS], doc_texts=full.doc_texts[:N_DOCS],
                   queries={q: full.queries[q] for q in qrels}, qrels=qrels)


@pytest.fixture
def use_cranfield(cranfield: Collection, monkeypatch: pytest.MonkeyPatch) -> Collection:
    """Make the pipeline and StageContext load the cut-down Cranfield."""
    def fake_load(dataset_id: str, mirror: Any = None, **_: Any) -> Collection:
        assert dataset_id == "cranfield"
        return cranfield

    monkeypatch.setattr("harness.pipeline.load_collection", fake_load)
    monkeypatch.setattr("harness.context.load_collection", fake_load)
    monkeypatch.setattr("harness.pipeline.git_commit", lambda _: (None, False))
    return cranfield


def recipe_text(folder: Path, model: Path, variants: str, *, name: str = "train-test",
                seed: int = 3, cache: str = "cache") -> str:
    return f"""\
[experiment]
name = "{name}"
seed = {seed}
store = "{folder}/drbench.db"
cache_dir = "{folder}/{cache}"
[model]
base = "{model}"
[data]
train = "cranfield"
eval = ["cranfield"]
[eval]
indexes = ["Flat"]
metrics = ["mrr@10", "recall@100"]
depth = 100
{variants}"""


def stage_context(text: str, cache_dir: Path) -> StageContext:
    console = quiet_console()
    return StageContext(parse_recipe(text), cache_dir, StageProgress(console), console)


def count_calls(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[Any]:
    """Wrap module.name, recording every call as (args, kwargs)."""
    calls: list[Any] = []
    original = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def forbid(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError(f"{module.__name__}.{name} must not be called")

    monkeypatch.setattr(module, name, refuse)


# --- mining -----------------------------------------------------------------------------------

def test_mined_negatives_drop_positives_keep_order_and_depth(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    data = hand_data()
    ranked = {"q1": [0, 5, 6, 7, 8, 9], "q2": [2, 4, 1, 5, 6], "q3": [3, 2], "q4": [3]}
    asked: list[int] = []

    def fake_rows(data_: TrainData, collection: Collection, k: int) -> dict[str, list[int]]:
        asked.append(k)
        return ranked

    monkeypatch.setattr(mining_mod, "_bm25_rows", fake_rows)
    collection = Collection("hand", "hand", tuple(map(str, range(10))), data.doc_texts, data.queries, {}, ())
    ctx = SimpleNamespace(cache_dir=tmp_path, console=quiet_console())
    negatives, key = mine_negatives("bm25", 3, data, collection, ctx)  # type: ignore[arg-type]
    assert asked == [3 + 10 + 2]  # depth + 10 + room for the largest positive set
    assert {q: v.tolist() for q, v in negatives.items()} == {"q1": [5, 6, 7], "q2": [4, 5, 6], "q3": [3],
                                                             "q4": []}
    # cached: a second call neither ranks again nor changes anything
    monkeypatch.setattr(mining_mod, "_bm25_rows", lambda *a: pytest.fail("mined twice"))
    again, key_again = mine_negatives("bm25", 3, data, collection, ctx)  # type: ignore[arg-type]
    assert key_again == key and {q: v.tolist() for q, v in again.items()} == {
        q: v.tolist() for q, v in negatives.items()}


def test_bm25_negatives_on_cranfield(cranfield: Collection, tmp_path: Path) -> None:
    data = TrainData.from_collection(cranfield)
    ctx = SimpleNamespace(cache_dir=tmp_path, console=quiet_console())
    depth = 20
    negatives, _ = mine_negatives("bm25", depth, data, cranfield, ctx)  # type: ignore[arg-type]
    room = depth + 10 + max(len(p) for p in data.positives.values())
    ranked = mining_mod._bm25_rows(data, cranfield, room)
    assert set(negatives) == set(data.query_ids)
    for q in data.query_ids:
        rows = negatives[q].tolist()
        assert len(rows) <= depth and len(set(rows)) == len(rows)
        assert not set(rows) & set(data.positives[q])
        assert all(0 <= r < N_DOCS for r in rows)
        # the top of BM25's own ranking, positives removed, order kept
        assert rows == [r for r in ranked[q] if r not in data.positives[q]][:depth]
    assert sum(len(v) == depth for v in negatives.values()) > 0.9 * len(negatives)

    # drawing from them: static never hands a query one of its positives
    params = {"negatives_per_query": 4}
    batch = static.build(list(data.query_ids), data, np.random.default_rng(0), params, negatives)
    for i, q in enumerate(data.query_ids):
        drawn = batch.negative_rows[i * 4:(i + 1) * 4]
        assert set(drawn) <= set(negatives[q].tolist())
        assert not set(drawn) & set(data.positives[q])
    assert batch.extra["neg_mask"].all()


# --- samplers ---------------------------------------------------------------------------------

def test_static_draws_own_negatives_and_masks_random_fallback() -> None:
    data = hand_data()
    params = {"negatives_per_query": 3}
    negatives = {**HAND_NEGATIVES, "q4": np.array([], dtype=np.int64)}  # q4: nothing mined
    for seed in range(20):
        batch = static.build(["q1", "q2", "q3", "q4"], data, np.random.default_rng(seed), params, negatives)
        assert len(batch.negative_rows) == 12 and batch.extra["neg_mask"].shape == (4, 3)
        for i, q in enumerate(["q1", "q2", "q3"]):
            assert set(batch.negative_rows[3 * i:3 * i + 3]) <= set(negatives[q].tolist())
        random_rows = batch.negative_rows[9:]
        assert all(0 <= r < 10 for r in random_rows)
        # the mask is False exactly where a drawn document is one of the query's positives
        expected = [[r not in data.positives[q] for r in batch.negative_rows[3 * i:3 * i + 3]]
                    for i, q in enumerate(["q1", "q2", "q3", "q4"])]
        assert batch.extra["neg_mask"].tolist() == expected
        assert batch.positive_rows[0] == 0 and batch.positive_rows[1] in (1, 2)


def test_star_one_hard_negative_per_query_from_its_own_list() -> None:
    data = hand_data()
    queries = ["q1", "q2", "q3", "q4"]
    seen: set[tuple[int, ...]] = set()
    for seed in range(30):
        batch = star.build(queries, data, np.random.default_rng(seed), {}, HAND_NEGATIVES)
        assert len(batch.negative_rows) == len(queries)
        for q, row in zip(queries, batch.negative_rows):
            assert row in HAND_NEGATIVES[q].tolist() and row not in data.positives[q]
        seen.add(tuple(batch.negative_rows))
        # every query is scored against every hard negative; q4's (doc 0) is q1's positive
        neg_mask = batch.extra["neg_mask"]
        assert neg_mask.shape == (4, 4)
        assert not neg_mask[0, 3] and neg_mask[1:, 3].all()
        assert neg_mask.tolist() == relevance_mask(queries, batch.negative_rows, data).tolist()
    assert len(seen) > 1  # the draw is random, not always the head of the list


def test_inbatch_masks_mark_positives_shared_between_queries() -> None:
    data = hand_data()
    queries = ["q1", "q2", "q3", "q4"]
    drew_shared = False
    for seed in range(30):
        for module in (star, random_neg):
            batch = module.build(queries, data, np.random.default_rng(seed),
                                 {"random_negatives": 2}, HAND_NEGATIVES)
            mask = batch.extra["rel_mask"]
            assert batch.positive_rows[2] == 2  # q3's only positive
            assert not mask[1, 2]  # ... is also q2's positive: not a negative for q2
            assert not mask.diagonal().any()
            assert mask[0, 1:].all() and mask[3, :3].all()  # q1 and q4 share nothing
            assert mask[2, 1] == (batch.positive_rows[1] != 2)
            drew_shared |= batch.positive_rows[1] == 2
    assert drew_shared


def test_random_negatives_are_uniform_corpus_rows_with_masks() -> None:
    data = hand_data()
    batch = random_neg.build(["q1", "q2"], data, np.random.default_rng(1), {"random_negatives": 50}, None)
    assert len(batch.negative_rows) == 100 and set(batch.negative_rows) <= set(range(10))
    assert len(set(batch.negative_rows)) == 10  # 100 uniform draws over 10 docs hit all of them
    assert batch.extra["neg_mask"].tolist() == relevance_mask(["q1", "q2"], batch.negative_rows,
                                                               data).tolist()


@pytest.mark.parametrize("module", [static, star, random_neg])
def test_same_seed_same_batch(module: Any) -> None:
    data = hand_data()
    params = {"negatives_per_query": 2, "random_negatives": 3}

    def draw(seed: int) -> tuple[Any, ...]:
        b = module.build(["q2", "q3", "q1"], data, np.random.default_rng([seed, 4, 0, 1]), params,
                         HAND_NEGATIVES)
        return b.positive_rows, b.negative_rows, {k: np.asarray(v).tolist() for k, v in b.extra.items()}

    assert draw(7) == draw(7)
    assert any(draw(7) != draw(s) for s in range(8, 20))


# --- loop: batches, steps, learning rate ------------------------------------------------------

@pytest.mark.parametrize("n, batch", [(10, 4), (12, 4), (3, 8)])
def test_micro_batch_covers_every_query_once_per_epoch(n: int, batch: int) -> None:
    ids = tuple(f"q{i}" for i in range(n))
    schedule = plan(n, loop_params(batch_size=batch, max_steps=0, epochs=3))
    orders = []
    for epoch in range(3):
        drawn = [q for i in range(schedule.batches_per_epoch)
                 for q in micro_batch(ids, schedule, 5, epoch * schedule.batches_per_epoch + i)]
        assert sorted(drawn) == sorted(ids)
        assert all(len(micro_batch(ids, schedule, 5, epoch * schedule.batches_per_epoch + i)) <= batch
                   for i in range(schedule.batches_per_epoch))
        orders.append(drawn)
    if n > 3:
        assert orders[0] != orders[1]  # reshuffled every epoch
    assert micro_batch(ids, schedule, 5, 1) == micro_batch(ids, schedule, 5, 1)


@pytest.mark.parametrize("overrides, total, per_epoch", [
    ({"epochs": 1}, 3, 3),                     # ceil(10 / 4) batches
    ({"epochs": 2}, 6, 3),
    ({"epochs": 2, "grad_accum": 2}, 3, 3),    # 6 micro-batches, 2 per optimizer step
    ({"epochs": 1, "grad_accum": 2}, 2, 3),    # rounds up: never less than the epochs asked
    ({"epochs": 5, "max_steps": 4}, 4, 3),     # max_steps wins
    ({"epochs": 1, "max_steps": 4, "grad_accum": 3}, 4, 3),
])
def test_plan_step_counts(overrides: dict[str, Any], total: int, per_epoch: int) -> None:
    schedule = plan(10, loop_params(**{"max_steps": 0, **overrides}))
    assert (schedule.total_steps, schedule.batches_per_epoch) == (total, per_epoch)
    assert schedule.grad_accum == overrides.get("grad_accum", 1)


def test_plan_with_fewer_queries_than_a_batch() -> None:
    assert plan(3, loop_params(max_steps=0, batch_size=32)).total_steps == 1


def test_lr_warms_up_linearly_then_decays_to_zero() -> None:
    model = torch.nn.ModuleDict({"dense": torch.nn.Linear(2, 2), "LayerNorm": torch.nn.LayerNorm(2),
                                 "norm": torch.nn.LayerNorm(2)})  # e.g. DistilBERT's `sa_layer_norm`
    optimizer, scheduler = optimizer_for(model, loop_params(lr=1.0, warmup_steps=4), total_steps=10)
    lrs = []
    for _ in range(10):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    expected = [0.2, 0.4, 0.6, 0.8] + [(10 - s) / 6 for s in range(4, 10)]
    assert lrs == pytest.approx(expected)
    assert max(lrs) == pytest.approx(1.0) and lrs.index(max(lrs)) == 4
    assert scheduler.get_last_lr()[0] == pytest.approx(0.0)
    # weight decay on weights only, never on biases or LayerNorm
    decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(model["dense"].weight)}


# --- loop: training and resume ----------------------------------------------------------------

TEXTS = ["the cell", "cells of the", "a cell in cells", "on the and", "to a is", "for with on",
         "cell cell cell", "the of and in", "is for", "with cells"]
QUERY_IDS = tuple(str(i) for i in range(len(TEXTS)))


class Interrupted(Exception):
    pass


def toy_step(model: torch.nn.Module, tokenizer: Any, calls: list[int],
             fail_at: int | None = None) -> Callable[..., Any]:
    """A loss that uses the sampling rng and dropout, so both must replay after a resume."""
    def step(query_ids: list[str], rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        calls.append(len(calls) + 1)
        if fail_at is not None and len(calls) == fail_at:
            raise Interrupted
        batch = tokenizer([TEXTS[int(q)] for q in query_ids], padding=True, return_tensors="pt")
        vectors = embed_batch(model, batch, pooling="mean", normalize=False)
        target = torch.from_numpy(rng.standard_normal(vectors.shape).astype(np.float32))
        return ((vectors - target) ** 2).mean(), {"target_mean": float(target.mean())}

    return step


def load_tiny(path: Path) -> tuple[torch.nn.Module, Any]:
    from transformers import AutoModel, AutoTokenizer

    return AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_resume_after_interruption_matches_uninterrupted(tiny_model: Path, tmp_path: Path,
                                                         grad_accum: int) -> None:
    params = loop_params(batch_size=3, max_steps=5, checkpoint_every=2, grad_accum=grad_accum)
    progress = StageProgress(quiet_console())

    model, tok = load_tiny(tiny_model)
    initial = state(model)
    calls: list[int] = []
    log, _ = train(model, params, QUERY_IDS, 11, toy_step(model, tok, calls), tmp_path / "whole", progress, "x")
    whole = state(model)
    assert [row["step"] for row in log] == [1, 2, 3, 4, 5] and len(calls) == 5 * grad_accum
    assert not all(torch.equal(initial[k], whole[k]) for k in whole)
    assert not model.training  # left in eval mode for encoding

    # die in the middle of step 4: the last checkpoint is after step 2
    model, tok = load_tiny(tiny_model)
    calls = []
    with pytest.raises(Interrupted):
        train(model, params, QUERY_IDS, 11, toy_step(model, tok, calls, fail_at=3 * grad_accum + 1),
              tmp_path / "cut", progress, "x")
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)["step"] == 2

    model, tok = load_tiny(tiny_model)  # a fresh process: weights from disk, then the checkpoint
    calls = []
    resumed_log, _ = train(model, params, QUERY_IDS, 11, toy_step(model, tok, calls), tmp_path / "cut",
                           progress, "x")
    assert len(calls) == 3 * grad_accum  # steps 3, 4, 5 only
    assert resumed_log == log
    assert_same_weights(state(model), whole)


def test_training_log_records_lr_schedule_and_checkpoints(tiny_model: Path, tmp_path: Path) -> None:
    params = loop_params(batch_size=4, max_steps=4, warmup_steps=2, lr=1e-3, checkpoint_every=1)
    model, tok = load_tiny(tiny_model)
    log, seconds = train(model, params, QUERY_IDS, 0, toy_step(model, tok, []), tmp_path,
                         StageProgress(quiet_console()), "x")
    assert [r["lr"] for r in log] == pytest.approx([1e-3 / 3, 2e-3 / 3, 1e-3, 5e-4])
    assert all(set(r) == {"step", "loss", "lr", "target_mean"} for r in log) and seconds > 0
    # the last checkpoint is the one before the final step (the final model is saved elsewhere)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == 3


def test_different_seed_trains_differently(tiny_model: Path, tmp_path: Path) -> None:
    params = loop_params(max_steps=2)
    finals = []
    for seed in (1, 1, 2):
        model, tok = load_tiny(tiny_model)
        train(model, params, QUERY_IDS, seed, toy_step(model, tok, []), tmp_path / f"{seed}-{len(finals)}",
              StageProgress(quiet_console()), "x")
        finals.append(state(model))
    assert_same_weights(finals[0], finals[1])
    assert not all(torch.equal(finals[0][k], finals[2][k]) for k in finals[0])


# --- ADORE units ------------------------------------------------------------------------------

def test_retrieved_lists_labels_and_appends_missing_positives() -> None:
    data = TrainData(("a", "b"), {"a": "x", "b": "y"}, {"a": (3,), "b": (7, 8)}, tuple("d" * 10),
                     relevance={"a": {3: 1}, "b": {7: 2, 8: 1}})
    ids = np.array([[5, 3, 1, -1], [0, 1, 2, -1]])
    rows, rel, metrics = retrieved_lists(ids, ["a", "b"], data, "mrr")
    assert [r.tolist() for r in rows] == [[5, 3, 1], [0, 1, 2, 7, 8]]  # -1 padding dropped
    assert [r.tolist() for r in rel] == [[0, 1, 0], [0, 0, 0, 1, 1]]
    assert metrics == [(0.5, 1.0), (0.0, 0.0)]  # measured before appending
    _, rel, _ = retrieved_lists(ids, ["a", "b"], data, "ndcg")
    assert [r.tolist() for r in rel] == [[0, 1, 0], [0, 0, 0, 2, 1]]  # graded labels
    # a list that found one positive gets nothing appended, even if it missed another
    rows, rel, metrics = retrieved_lists(np.array([[8, 0]]), ["b"], data, "mrr")
    assert rows[0].tolist() == [8, 0] and rel[0].tolist() == [1, 0] and metrics == [(1.0, 1.0)]


def test_adore_scores_with_the_decoded_pq_vectors(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    raw = rng.standard_normal((N_DOCS, 32)).astype(np.float32)
    raw /= np.linalg.norm(raw, axis=1, keepdims=True)
    fi = frozen_index("PQ8", raw, seed=0)
    decoded = stored_vectors(build_index("PQ8", raw, seed=0))
    assert np.array_equal(fi.vectors.numpy(), decoded)
    assert not np.allclose(decoded, raw, atol=1e-3)  # PQ is lossy: the test can tell them apart

    data = TrainData(("a", "b", "c"), {"a": "the cell", "b": "cells of the", "c": "on a is"},
                     {"a": (1,), "b": (2, 3), "c": (4,)}, tuple(f"doc {i}" for i in range(N_DOCS)))
    lists = count_calls(monkeypatch, adore_mod, "retrieved_lists")
    losses = count_calls(monkeypatch, adore_mod, "adore_batch_loss")
    model, tok = load_tiny(tiny_model)
    model.eval()  # no dropout, so the query vectors can be recomputed below
    settings = SimpleNamespace(query_prefix="", pooling="mean", normalize=True)
    params = {"query_max_length": 16, "top_k": 20, "weighting": "mrr", "scale": 2.0, "metric_cut": 10}
    loss, info = adore_step(model, tok, params, data, fi, settings)(["a", "b", "c"], np.random.default_rng(0))
    assert loss.requires_grad and set(info) == {"train_mrr@10", "train_recall@10"}

    q = embed_batch(model, tok(["the cell", "cells of the", "on a is"], padding=True, return_tensors="pt"),
                    pooling="mean", normalize=True).detach().numpy()
    [((ids, *_), _)] = lists  # what the index returned
    [((list_scores, *_), _)] = losses  # what the loss was given
    rows, _, _ = retrieved_lists(ids, ["a", "b", "c"], data, "mrr")
    for i, (r, s) in enumerate(zip(rows, list_scores)):
        s = s.detach().numpy()
        assert np.allclose(s, 2.0 * decoded[r] @ q[i], atol=1e-5)
        assert not np.allclose(s, 2.0 * raw[r] @ q[i], atol=1e-3)
        assert np.all(np.diff(s[:20]) <= 1e-5)  # the index ranked by these very scores


# --- ADORE through its stage ------------------------------------------------------------------

ADORE_VARIANT = """
[variant.adore]
kind = "adore"
max_steps = 3
batch_size = 8
lr = 1e-2
warmup_steps = 0
top_k = 50
query_max_length = 16
"""


def test_adore_moves_queries_and_never_documents(tiny_model: Path, tmp_path: Path, use_cranfield: Collection,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    text = recipe_text(tmp_path, tiny_model, ADORE_VARIANT)
    ctx = stage_context(text, tmp_path / "cache")
    base_files = files_digest(tiny_model)
    base = DenseModel.open(str(tiny_model), ctx.recipe.model)
    base_fingerprint = base.spec.fingerprint
    before, _ = base.encode_corpus(use_cranfield, tmp_path / "cache", ctx.progress, ctx.console)
    built = count_calls(monkeypatch, adore_mod, "frozen_index")

    ref = ctx.model_for("adore")

    # (a) documents: the base folder, untouched, and the index was built from its vectors
    assert ref.doc == str(tiny_model) and ref.query != ref.doc and Path(ref.query).is_dir()
    assert files_digest(tiny_model) == base_files
    model = ctx.dense(ref)
    assert model.spec.fingerprint == base_fingerprint and model.spec.path == tiny_model.resolve()
    (factory, doc_vectors, *_), _ = built[0]
    assert factory == "Flat" and np.array_equal(doc_vectors, before)
    after, _ = model.encode_corpus(use_cranfield, tmp_path / "cache", ctx.progress, ctx.console)
    assert np.array_equal(after, before)
    meta = json.loads((Path(ref.query) / "drbench.json").read_text())
    assert meta["pairs_with"] == base.record and meta["steps"] == 3

    # (b) the query encoder moved
    trained, initial = folder_weights(Path(ref.query)), folder_weights(tiny_model)
    moved = [k for k in initial if not torch.equal(initial[k], trained[k])]
    assert any("word_embeddings" in k for k in moved) and len(moved) > len(initial) // 2

    # (c) ... and with it what a query retrieves from the frozen index
    index = build_index("Flat", before, seed=0)
    query = [use_cranfield.queries[q] for q in sorted(use_cranfield.queries)[:5]]
    _, old_ids, _ = search(index, base.encode_queries(query, lambda n: None), 10)
    _, new_ids, _ = search(index, model.encode_queries(query, lambda n: None), 10)
    assert not np.array_equal(old_ids, new_ids)


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
    original = stages_mod._shared_step
    calls: list[int] = []
    fail = {"at": 3}

    def counting(*args: Any) -> Any:
        inner = original(*args)

        def step(query_ids: list[str], rng: np.random.Generator) -> Any:
            calls.append(1)
            if len(calls) == fail["at"]:
                raise Interrupted
            return inner(query_ids, rng)

        return step

    monkeypatch.setattr(stages_mod, "_shared_step", counting)
    with pytest.raises(Interrupted):
        stage_context(text, tmp_path / "a").model_for("inb")
    models = tmp_path / "a" / "models"
    [partial] = list(models.iterdir())
    assert partial.name.endswith(".partial") and (partial / "checkpoint.pt").is_file()

    calls.clear()
    fail["at"] = 0
    ctx = stage_context(text, tmp_path / "a")
    resumed = Path(ctx.model_for("inb").query)
    assert "resuming from" in console_text(ctx.console) and len(calls) == 1
    assert sorted(p.name for p in models.iterdir()) == [resumed.name]  # partial renamed into place
    assert not (resumed / "checkpoint.pt").exists()

    calls.clear()
    fresh = Path(stage_context(text, tmp_path / "b").model_for("inb").query)
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
        mp.setattr("harness.pipeline.load_collection", lambda *a, **k: cranfield)
        mp.setattr("harness.context.load_collection", lambda *a, **k: cranfield)
        mp.setattr("harness.pipeline.git_commit", lambda _: (None, False))
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
    forbid(monkeypatch, mining_mod, "_dense_rows")
    outcomes, console = run(star_run["text"], star_run["folder"])
    assert {o.status for o in outcomes} == {"skipped"} and len(outcomes) == 2
    assert console.count("trained model from cache") == 2


def test_new_experiment_with_an_extra_variant_reuses_trained_models(star_run: dict[str, Any],
                                                                    use_cranfield: Collection,
                                                                    tiny_model: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    forbid(monkeypatch, loop_mod, "train")
    forbid(monkeypatch, mining_mod, "_dense_rows")
    text = recipe_text(star_run["folder"], tiny_model, STAR_VARIANTS + '[variant.zs]\nkind = "zero-shot"\n',
                       name="chain-more")
    outcomes, console = run(text, star_run["folder"])
    assert [(o.variant, o.status) for o in outcomes] == [("star+adore", "done"), ("star", "done"),
                                                          ("zs", "done")]
    assert console.count("trained model from cache") == 2
    db = open_store(star_run["folder"] / "drbench.db")
    assert training_log(db, "chain-more", "star") == training_log(db, "chain", "star")


def test_shared_training_refuses_an_adore_init(star_run: dict[str, Any], use_cranfield: Collection,
                                               tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forbid(monkeypatch, loop_mod, "train")
    text = recipe_text(star_run["folder"], tiny_model,
                       STAR_VARIANTS + '[variant.bad]\nkind = "inbatch"\ninit = "star+adore"\n', name="chain")
    with pytest.raises(RecipeError, match="separate query and document encoders"):
        stage_context(text, star_run["folder"] / "cache").model_for("bad")


def test_star_reproducible_in_a_fresh_cache(star_run: dict[str, Any], use_cranfield: Collection,
                                            tiny_model: Path, tmp_path: Path) -> None:
    text = recipe_text(tmp_path, tiny_model, STAR_VARIANTS, name="again")
    again = Path(stage_context(text, tmp_path / "cache").model_for("star").query)
    first = star_run["models"]["star"]
    assert again.name == first.name
    assert_same_weights(folder_weights(again), folder_weights(first))
    assert (again / "train_log.jsonl").read_text() == (first / "train_log.jsonl").read_text()
