"""Training against a frozen document index (ADORE's method): the live query encoder retrieves
from the index, and a LambdaLoss over the retrieved list teaches it the ranking metric.

Only the query encoder has gradients; documents are the index's own stored vectors (decoded
codes for a compressed index), so a query encoder trained on a PQ index fits that PQ index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from harness.train.losses import adore_batch_loss, train_list_metrics
from harness.train.data import TrainData
from harness.train.strategy import StepFn

if TYPE_CHECKING:
    from harness.dense import EncoderSettings
    from harness.model.encoder import Encoder


class LiveListParams(Protocol):
    """The keys a query-tower strategy declares for training against a frozen index."""

    query_max_length: int
    top_k: int
    weighting: str
    scale: float
    metric_cut: int
    batch_size: int
    loss_divisor: str


@dataclass
class FrozenIndex:
    """A faiss index over the frozen corpus and the vectors it scores with."""

    built: Any
    vectors: torch.Tensor


def frozen_index(factory: str, doc_vectors: np.ndarray, seed: int, nprobe: int = 16,
                 gpu: int | None = None) -> FrozenIndex:
    from harness.index.faiss_index import build_index, stored_vectors

    built = build_index(factory, doc_vectors, seed=seed, nprobe=nprobe, gpu=gpu)
    return FrozenIndex(built, torch.from_numpy(stored_vectors(built)))


def retrieved_lists(ids: np.ndarray, query_ids: list[str], data: TrainData,
                    weighting: str) -> tuple[list[np.ndarray], list[np.ndarray], list[tuple[float, float]]]:
    """Label each retrieved list with the qrels; append the positives a list missed entirely.

    Returns (document rows, relevance, training (MRR@10, R@10) before appending) per query.
    """
    rows_out, rel_out, metrics = [], [], []
    for row, query_id in enumerate(query_ids):
        rows = ids[row][ids[row] >= 0]
        graded = data.relevance.get(query_id, {})
        rel = np.array([graded.get(int(r), 0) if weighting == "ndcg" else int(int(r) in data.positives[query_id])
                        for r in rows], dtype=np.float32)
        rel = np.clip(rel, 0, None)
        metrics.append(train_list_metrics(rel > 0))
        if not (rel > 0).any():
            missing = [p for p in data.positives[query_id]]
            rows = np.concatenate([rows, np.asarray(missing, dtype=rows.dtype)])
            extra = [max(graded.get(p, 1), 1) if weighting == "ndcg" else 1 for p in missing]
            rel = np.concatenate([rel, np.asarray(extra, dtype=np.float32)])
        rows_out.append(rows)
        rel_out.append(rel)
    return rows_out, rel_out, metrics


def live_retrieval_step(encoder: Encoder, params: LiveListParams, data: TrainData, index: FrozenIndex,
                        settings: EncoderSettings) -> StepFn:
    """The loop's step function; `encoder` is the query encoder, the only one that trains.

    Each step's queries are searched in one call, as they always were (`faiss_index.search`: a Flat
    index answers through BLAS what faiss's per-pair path answers, bit for bit).
    """
    from harness.index.faiss_index import search

    def step(query_ids: list[str], rng: np.random.Generator, at: int) -> tuple[torch.Tensor, dict[str, float]]:
        q = encoder.embed([data.queries[x] for x in query_ids], max_length=params.query_max_length,
                          prefix=settings.query_prefix)
        k = min(params.top_k, index.built.ntotal)
        q = q.float()  # scores stay fp32 whatever the encoder's precision (see harness.train.losses)
        _, ids, _ = search(index.built, q.detach().cpu().numpy(), k, batch_size=max(len(query_ids), 1))
        rows, rel, metrics = retrieved_lists(ids, query_ids, data, params.weighting)
        with torch.autocast(device_type=q.device.type, enabled=False):
            scores = [params.scale * (index.vectors[torch.from_numpy(r.astype(np.int64))].to(q.device) @ q[i])
                      for i, r in enumerate(rows)]
        loss = adore_batch_loss(scores, [torch.from_numpy(r).to(q.device) for r in rel], params.metric_cut,
                                weighting=params.weighting)
        if params.loss_divisor == "nominal":  # the official code's: the sum over batch_size, however many came
            loss = loss * (len(query_ids) / params.batch_size)
        mrr, recall = np.mean(metrics, axis=0)
        return loss, {"train_mrr@10": float(mrr), "train_recall@10": float(recall)}

    return step
