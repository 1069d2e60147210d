"""Fix the inputs once (main venv), so every faiss version sees identical vectors.

Writes to OUT (default /tmp/fv/inputs):
  docs.npy     zero-shot MiniLM SciFact document vectors (fp32 CPU, from drbench's cache;
               checked against a fresh encoding of a few documents and against the cache key
               drbench computes today)
  queries.npy  the 300 beir/scifact/test queries, encoded with drbench's query encoder, in
               sorted query-id order (as harness/pipeline/run.py does)
  doc_ids.json, query_ids.json

  IR_DATASETS_HOME=/tmp/fv/irds .venv/bin/python benchmarks/faiss_versions/prepare.py DOCS.npy [OUT]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from harness.data.collection import load_collection
from harness.dense import TEXT_FORMAT, DenseModel
from harness.model.compute import Compute
from harness.model.embedding_cache import EmbeddingCache
from harness.recipe.model import ModelConfig

MIRROR = Path("/work/shared/data/ir_datasets")


def main() -> None:
    docs_npy = Path(sys.argv[1])
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp/fv/inputs")
    out.mkdir(parents=True, exist_ok=True)
    collection = load_collection("beir/scifact/test", MIRROR)
    model = DenseModel.open("minilm", ModelConfig(), Compute())
    s = model.settings
    key = EmbeddingCache.key(model=model.doc_spec.fingerprint, docs=collection.docs_id,
                             doc_count=len(collection.doc_ids), max_length=s.doc_max_length,
                             pooling=s.pooling, normalize=s.normalize, prefix=s.doc_prefix,
                             text_format=TEXT_FORMAT, **Compute().key_parts())
    print("fp32 CPU cache key today:", key, "| given file:", docs_npy.name)
    docs = np.load(docs_npy)
    assert docs.shape == (len(collection.doc_ids), 384) and docs.dtype == np.float32, docs.shape

    texts = list(collection.doc_texts)
    sample = [0, 1, 2, 100, 1000, 2500, 4000, 5182]
    fresh = model._encoder("doc").encode([texts[i] for i in sample])
    print("max |cached - fresh fp32| over", len(sample), "docs:", float(np.abs(fresh - docs[sample]).max()))

    query_ids = sorted(collection.queries)
    queries = model.encode_queries([collection.queries[q] for q in query_ids], lambda _: None)
    np.save(out / "docs.npy", np.ascontiguousarray(docs))
    np.save(out / "queries.npy", queries)
    (out / "doc_ids.json").write_text(json.dumps(list(collection.doc_ids)))
    (out / "query_ids.json").write_text(json.dumps(query_ids))
    print("queries", queries.shape, "->", out)


if __name__ == "__main__":
    main()
