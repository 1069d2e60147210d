"""Dev splits held out of the training queries (`[data] dev = "holdout:F"`).

The holdout is a seeded fraction of the training split's judged queries, drawn with a fixed seed
(`HOLDOUT_SEED`), not the recipe's: every seed of a recipe, and every recipe on the same
training split and fraction, trains without the same queries and selects on them.
"""

from __future__ import annotations

from dataclasses import replace
from collections.abc import Iterable

import numpy as np

from harness.data.collection import Collection

HOLDOUT_SEED = 0


def holdout_size(n: int, fraction: float) -> int:
    """How many of `n` queries a `holdout:F` dev split holds out: round(F x n), at least one.

    >>> holdout_size(10, 0.25), holdout_size(3, 0.1)
    (2, 1)
    """
    return max(1, round(fraction * n))


def holdout_ids(query_ids: Iterable[str], fraction: float) -> frozenset[str]:
    """round(fraction x n) of the query ids (at least one), drawn with `HOLDOUT_SEED`.

    >>> sorted(holdout_ids([f"q{i}" for i in range(10)], 0.2))
    ['q4', 'q6']
    """
    ids = sorted(query_ids)
    count = holdout_size(len(ids), fraction)
    order = np.random.default_rng(HOLDOUT_SEED).permutation(len(ids))
    return frozenset(ids[i] for i in order[:count])


def holdout_label(train_id: str, dev: str) -> str:
    """The collection name dev runs are stored under, e.g. `beir/scifact/train[holdout:0.1]`;
    :func:`held_out_of` reads it back."""
    return f"{train_id}[{dev}]"


def held_out_of(collection: str) -> str:
    """The ir_datasets id behind a stored collection name: the training split a
    :func:`holdout_label` names, else the name itself.

    >>> held_out_of(holdout_label("beir/scifact/train", "holdout:0.1")), held_out_of("cranfield")
    ('beir/scifact/train', 'cranfield')
    """
    train_id, bracket, dev = collection.partition("[")
    return train_id if bracket and dev.endswith("]") else collection


def holdout_collection(train: Collection, dev: str, fraction: float) -> Collection:
    """The training split restricted to its held-out queries, named :func:`holdout_label`."""
    held = holdout_ids(train.queries, fraction)
    return replace(train, dataset_id=holdout_label(train.dataset_id, dev),
                   queries={q: text for q, text in train.queries.items() if q in held},
                   qrels={q: rels for q, rels in train.qrels.items() if q in held})
