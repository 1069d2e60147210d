"""What a trained model cost to make, along everything it builds on (issue 22 §6, the paper's
efficiency claim): the wall time of its training and of the trainings before it, and, in units
no hardware changes, the documents encoded and the training queries seen.

A model's cost is a set of parts, each counted once however many paths lead to it (STAR+ADORE
starts from STAR and searches STAR's documents: STAR's training is one part):

* `train <key>`: one training. Its seconds are the training's own (an ANCE refresh re-encodes
  inside it, so they are in); its documents are those its refreshes encoded; its examples are
  the queries its optimizer steps saw (steps x batch size x gradient accumulation).
* `encode <model> <corpus>`: a corpus encoded for training, not by it (the model mining hard
  negatives, ADORE's frozen documents). Documents only: the encode's time is not kept beside
  the cached vectors, and a cached encode costs no time at all.

BM25's mining encodes nothing. The counts are stored with each run of a trained model, in its
model record (`trained.cost`), the seconds in its timings (`train_chain`): both outside every
key, and only the counts the same on every machine and every rerun.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

PARTS = "parts"
SECONDS = "part_seconds"  # beside `cost` in a trained model's ref: the seconds of its training parts


def training_part(meta: dict[str, Any], log: list[dict[str, Any]], params: Any) -> tuple[list[int], float]:
    """One training's part ([documents, examples]) and its seconds, from its model's meta, its
    log and its parameters."""
    refreshed = sum(int((row.get("refresh") or {}).get("documents", 0)) for row in log)
    batch = getattr(params, "batch_size", 0) * getattr(params, "grad_accum", 1)
    return [refreshed, int(meta.get("steps", len(log))) * batch], float(meta.get("train_seconds") or 0.0)


def encode_part(identity: dict[str, Any], docs_id: str) -> str:
    """The id of the part "a corpus encoded by the model of `identity`"."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"encode {digest} {docs_id}"


def parts_of(trained: dict[str, Any] | None) -> tuple[dict[str, list[int]], dict[str, float]]:
    """The parts and part seconds a trained model's ref carries (none for an untrained model)."""
    trained = trained or {}
    return dict((trained.get("cost") or {}).get(PARTS) or {}), dict(trained.get(SECONDS) or {})


def cost_record(parts: dict[str, list[int]]) -> dict[str, Any]:
    """The stored cost: the parts and their sums (`units`: documents + examples).

    >>> cost_record({"train a": [0, 64], "encode m c": [100, 0]})["units"]
    164
    """
    documents = sum(int(p[0]) for p in parts.values())
    examples = sum(int(p[1]) for p in parts.values())
    return {"documents": documents, "examples": examples, "units": documents + examples,
            PARTS: dict(sorted(parts.items()))}
