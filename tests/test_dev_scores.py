"""`eval_every`'s dev scores (harness/pipeline/dev_scores.py): the split encoded with the
training encoder at the evaluation prefixes and lengths, ranked exactly, scored with the
recipe's metrics; a query-tower model ranks against its frozen document vectors."""

from __future__ import annotations

import numpy as np
import pytest

from harness.data.collection import Collection
from harness.dense import EncoderSettings
from harness.pipeline.dev_scores import dev_scorer

LETTERS = "abc"


class LetterEncoder:
    """Encodes a text as the one-hot vector of its first letter after the prefix; records calls."""

    def __init__(self) -> None:
        self.prefix = "training"
        self.calls: list[tuple[str, int | None, int]] = []

    def encode(self, texts: list[str], max_length: int | None = None) -> np.ndarray:
        self.calls.append((self.prefix, max_length, len(texts)))
        out = np.zeros((len(texts), len(LETTERS)), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row, LETTERS.index(text[0])] = 1.0
        return out


DEV = Collection("dev", "dev", ("da", "db", "dc"), ("apple", "banana", "cherry"),
                 {"q1": "a query", "q2": "b query", "q3": "c query"},
                 {"q1": {"da": 1}, "q2": {"db": 1}, "q3": {"da": 1}}, ())
SETTINGS = EncoderSettings(pooling="mean", normalize=True, query_max_length=7, doc_max_length=11,
                           query_prefix="Q:", doc_prefix="D:", batch_size=4)


def test_scores_the_split_with_the_recipes_metrics_and_settings() -> None:
    encoder = LetterEncoder()
    scores = dev_scorer(DEV, SETTINGS, ("recall@1", "mrr@10"), depth=3)(encoder)
    # q1 and q2 find their document first; q3 ("c") finds dc first, and da only among the tied zeros
    assert scores["dev_recall@1"] == pytest.approx(2 / 3)
    assert set(scores) == {"dev_recall@1", "dev_mrr@10"}
    assert encoder.calls == [("Q:", 7, 3), ("D:", 11, 3)]
    assert encoder.prefix == "training"  # restored for the training steps that follow


def test_a_query_tower_model_ranks_against_frozen_vectors_without_encoding_documents() -> None:
    frozen = np.eye(3, dtype=np.float32)[[2, 1, 0]]  # da looks like "c", dc like "a"
    encoder = LetterEncoder()
    scores = dev_scorer(DEV, SETTINGS, ("recall@1",), depth=3, frozen_docs=lambda: frozen)(encoder)
    assert scores == {"dev_recall@1": pytest.approx(2 / 3)}  # q2 -> db, q3 -> da; q1 -> dc misses
    assert encoder.calls == [("Q:", 7, 3)]


def test_the_prefix_is_restored_when_encoding_fails() -> None:
    class Failing(LetterEncoder):
        def encode(self, texts: list[str], max_length: int | None = None) -> np.ndarray:
            raise RuntimeError("out of memory")

    encoder = Failing()
    with pytest.raises(RuntimeError):
        dev_scorer(DEV, SETTINGS, ("recall@1",), depth=3)(encoder)
    assert encoder.prefix == "training"
