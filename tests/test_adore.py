"""ADORE: list labelling, decoded (compressed) document vectors, and a frozen document side."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import harness.train.frozen_index as adore_mod
from harness.data.collection import Collection
from harness.dense import DenseModel
from harness.index.faiss_index import build_index, search, stored_vectors
from harness.model.encoder import Encoder, embed_batch
from harness.train.frozen_index import frozen_index, live_retrieval_step, retrieved_lists
from harness.train.data import TrainData
from harness.train.strategies.adore import AdoreParams

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
    params = AdoreParams(query_max_length=16, top_k=20, weighting="mrr", scale=2.0, metric_cut=10)
    loss, info = live_retrieval_step(encoder, params, data, fi, settings)(["a", "b", "c"],
                                                                         np.random.default_rng(0), 0)
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
    base_fingerprint = base.doc_spec.fingerprint
    before, _ = base.encode_corpus(use_cranfield, tmp_path / "cache", ctx.progress, ctx.console)
    built = count_calls(monkeypatch, adore_mod, "frozen_index")

    ref = ctx.resolve("adore")

    # (a) documents: the base folder, untouched, and the index was built from its vectors
    assert ref.doc == str(tiny_model) and ref.query != ref.doc and Path(ref.query).is_dir()
    assert files_digest(tiny_model) == base_files
    model = ctx.open(ref)
    assert model.doc_spec.fingerprint == base_fingerprint and model.doc_spec.path == tiny_model.resolve()
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


def test_an_adore_step_ranks_positives_higher(tiny_model: Path, cranfield: Collection) -> None:
    """One gradient step on ADORE's loss must raise positives above what the index retrieved:
    the direction of the loss, which a flipped sign would reverse."""
    encoder = Encoder(tiny_model, pooling="mean", normalize=True, max_length=None)
    encoder.model.eval()  # no dropout: the before/after difference is the step's alone
    data = TrainData.from_collection(cranfield)
    docs = encoder.encode(list(cranfield.doc_texts))
    fi = frozen_index("Flat", docs, seed=0)
    params = AdoreParams(query_max_length=16, top_k=50, scale=20.0)
    settings = SimpleNamespace(query_prefix="")
    queries = list(data.query_ids[:16])

    def margin() -> float:
        """Mean over queries: mean positive score minus mean score of the retrieved non-relevant."""
        with torch.no_grad():
            q = encoder.embed([data.queries[x] for x in queries], max_length=16, prefix="").numpy()
        scores = q @ fi.vectors.numpy().T
        gaps = []
        for i, query_id in enumerate(queries):
            top = np.argsort(-scores[i])[:50]
            negatives = [r for r in top if r not in data.positives[query_id]]
            gaps.append(scores[i, list(data.positives[query_id])].mean() - scores[i, negatives].mean())
        return float(np.mean(gaps))

    before = margin()
    optimizer = torch.optim.SGD(encoder.model.parameters(), lr=0.05)
    loss, _ = live_retrieval_step(encoder, params, data, fi, settings)(queries, np.random.default_rng(0), 0)
    loss.backward()
    optimizer.step()
    assert margin() > before + 1e-4
