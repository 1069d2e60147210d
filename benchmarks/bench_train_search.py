"""What share of training the searches take: ADORE's live search per step, ANCE's refresh.

ADORE: a few real training steps (`harness.train.loop.train`, the strategy's own step function,
default AdoreParams: 32 queries, top 200) of the packaged all-MiniLM-L6-v2 query encoder against
a Flat index over SciFact's 5,183 documents (MiniLM fp32 vectors, cached by bench_search.py),
on SciFact's training queries. `harness.index.faiss_index.search` is timed inside the step, once as
it is and once as it was (faiss's own call with the step's queries); the share is search time over
step time (forward, search, loss, backward, optimiser).

ANCE: its refresh re-encodes the corpus and the training queries with the model being trained,
then ranks exactly (`exact_search`, depth 200). The search is timed here on the real vectors (809
training queries); the encodes are taken as measured per document from the same model; the
share is refresh time over (refresh_every x step time + refresh time) at ANCE's default
refresh_every (100), with the ANCE step time measured on `--ance-steps` real steps.

    PYTHONPATH=. python benchmarks/bench_train_search.py --mirror ../shared/data/ir_datasets
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


class Timed:
    """Wraps a function; adds up the seconds spent in it."""

    def __init__(self, fn):
        self.fn, self.seconds, self.calls = fn, 0.0, 0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


def old_search(built, queries, k, *, batch_size=256, progress=None):
    """drbench's search before: faiss's own calls."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    start = time.perf_counter()
    scores, ids = built.index.search(queries, min(k, built.ntotal))
    return scores, ids, time.perf_counter() - start


def adore_share(docs: np.ndarray, collection, steps: int, old: bool) -> dict:
    import harness.index.faiss_index as faiss_index
    from rich.console import Console

    from harness.model.encoder import Encoder
    from harness.model.spec import read_model_spec, resolve_model
    from harness.progress import StageProgress
    from harness.train.data import TrainData
    from harness.train.frozen_index import frozen_index, live_retrieval_step
    from harness.train.loop import train
    from harness.train.strategies.adore import AdoreParams
    from types import SimpleNamespace

    spec = read_model_spec(resolve_model("minilm"))
    encoder = Encoder(spec.path, pooling=spec.pooling, normalize=spec.normalize, max_length=spec.max_seq_length)
    data = TrainData.from_collection(collection)
    params = AdoreParams(max_steps=steps)
    index = frozen_index(params.train_index, docs, seed=0)
    original = faiss_index.search
    timed = Timed(old_search if old else original)
    faiss_index.search = timed  # live_retrieval_step imports it when built
    try:
        step_fn = live_retrieval_step(encoder, params, data, index, SimpleNamespace(query_prefix=""))
        with tempfile.TemporaryDirectory() as workdir, StageProgress(Console(file=io.StringIO()), plain=True) as p:
            log, seconds = train(encoder.model, params, data.query_ids, 0, step_fn, Path(workdir), p, "adore")
    finally:
        faiss_index.search = original
    return {"search": "faiss's own call (before)" if old else "drbench search", "steps": steps,
            "seconds_per_step": seconds / steps, "search_ms_per_step": 1e3 * timed.seconds / steps,
            "search_share": timed.seconds / seconds, "losses": [round(row["loss"], 6) for row in log]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", default=None)
    parser.add_argument("--workdir", default="/tmp/drbench-bench-search")
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    import harness.index.faiss_index as faiss_index
    from harness.data.availability import resolve_mirror
    from harness.data.collection import load_collection

    from bench_search import best_of, scifact_vectors

    docs, _ = scifact_vectors(Path(args.workdir), args.mirror)
    collection = load_collection("beir/scifact/train", resolve_mirror(args.mirror, None))
    rows = [adore_share(docs, collection, args.steps, old) for old in (False, True)]
    # ANCE's refresh search: the training queries against the corpus, depth 200 (negatives_depth)
    queries_file = Path(args.workdir) / "scifact_train_queries.npy"
    if not queries_file.exists():
        from harness.model.encoder import Encoder
        from harness.model.spec import read_model_spec, resolve_model

        spec = read_model_spec(resolve_model("minilm"))
        encoder = Encoder(spec.path, pooling=spec.pooling, normalize=spec.normalize, max_length=spec.max_seq_length)
        np.save(queries_file, encoder.encode([collection.queries[q] for q in sorted(collection.queries)]))
    queries = np.load(queries_file)
    t_new, _ = best_of(3, lambda: faiss_index.exact_search(docs, queries, 200))
    built = faiss_index.build_index("Flat", docs, seed=0)
    t_old, _ = best_of(3, lambda: [built.index.search(queries[i:i + 256], 200) for i in range(0, len(queries), 256)])
    print(json.dumps({"load_average": os.getloadavg(), "adore": rows,
                      "ance_refresh_search": {"queries": len(queries), "seconds_now": t_new, "seconds_before": t_old}},
                     indent=1))


if __name__ == "__main__":
    main()
