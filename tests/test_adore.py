"""ADORE: list labelling, decoded (compressed) document vectors, and a frozen document side."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import harness.train.adore as adore_mod
from harness.data.collection import Collection
from harness.dense import DenseModel
from harness.index.faiss_index import build_index, search, stored_vectors
from harness.model.encoder import Encoder, embed_batch
from harness.train.adore import adore_step, frozen_index, retrieved_lists
from harness.train.samplers.base import TrainData

# Fixtures (cranfield, one_torch_thread, ...) are used by name, hence the noqa.
from train_helpers import (  # noqa: F401
    one_torch_thread, N_DOCS, folder_weights, files_digest, use_cranfield, recipe_text,
    stage_context, count_calls, cranfield)


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
    encoder = Encoder(tiny_model, pooling="mean", normalize=True, max_length=None)
    model, tok = encoder.model, encoder.tokenizer
    model.eval()  # no dropout, so the query vectors can be recomputed below
    settings = SimpleNamespace(query_prefix="", pooling="mean", normalize=True)
    params = {"query_max_length": 16, "top_k": 20, "weighting": "mrr", "scale": 2.0, "metric_cut": 10}
    loss, info = adore_step(encoder, params, data, fi, settings)(["a", "b", "c"], np.random.default_rng(0))
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
