"""Corpus-encoding throughput and quality: drbench's Encoder in fp32 and bf16 against
sentence-transformers (fp32, and under torch's bf16 autocast), in the same run.

All encode the same SciFact documents with the packaged all-MiniLM-L6-v2 (mean pooling,
normalised, 256 tokens, batch 64) on the CPU, timed alternately so that drift in machine load
hits every mode alike. Reported per mode: docs/s, the ratio to sentence-transformers fp32, and
the smallest cosine between a vector and its sentence-transformers fp32 twin. `--ndcg` also
encodes the whole corpus and the test queries with each drbench mode and reports nDCG@10 on
beir/scifact/test (exact inner-product search), so speed is never bought with quality unseen.

    pip install -e ".[bench]"
    IR_DATASETS_HOME=... python benchmarks/bench_encode.py --docs 500 --ndcg --mirror ../shared/data/ir_datasets
"""

from __future__ import annotations

import argparse
import contextlib
import time
from typing import Any, Callable

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=500, help="documents timed (first N of SciFact)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--mirror", default=None)
    parser.add_argument("--repeats", type=int, default=2, help="alternating timed passes per mode")
    parser.add_argument("--ndcg", action="store_true", help="also nDCG@10 of each drbench mode on the full test")
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from harness.data.availability import resolve_mirror
    from harness.data.collection import load_collection
    from harness.model.encoder import Encoder
    from harness.model.spec import read_model_spec, resolve_model

    collection = load_collection("beir/scifact/test", resolve_mirror(args.mirror, None))
    texts = list(collection.doc_texts[:args.docs])
    spec = read_model_spec(resolve_model("minilm"))
    ours = {p: Encoder(spec.path, pooling=spec.pooling, normalize=spec.normalize, max_length=spec.max_seq_length,
                       batch_size=args.batch_size, precision=p) for p in ("fp32", "bf16")}
    peer = SentenceTransformer(str(spec.path), device="cpu")
    peer.max_seq_length = spec.max_seq_length

    def st(autocast: bool) -> Callable[[list[str]], np.ndarray]:
        def encode(batch: list[str]) -> np.ndarray:
            context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
            with context:
                out = peer.encode(batch, batch_size=args.batch_size, convert_to_numpy=False,
                                  convert_to_tensor=True, normalize_embeddings=False, show_progress_bar=False)
            return out.float().numpy()
        return encode

    modes: dict[str, Callable[[list[str]], Any]] = {
        "sentence-transformers fp32": st(False),
        "sentence-transformers bf16 autocast": st(True),
        "drbench fp32": ours["fp32"].encode,
        "drbench bf16": ours["bf16"].encode,
    }
    timings: dict[str, list[float]] = {name: [] for name in modes}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for name, encode in modes.items():
            start = time.perf_counter()
            vectors[name] = encode(texts)
            timings[name].append(time.perf_counter() - start)

    reference = vectors["sentence-transformers fp32"]
    best = {name: min(ts) for name, ts in timings.items()}
    print(f"{len(texts)} SciFact documents, all-MiniLM-L6-v2, batch {args.batch_size}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, best of {args.repeats}")
    ndcg = _ndcg(collection, ours) if args.ndcg else {}
    print("| encoder | docs/s | vs sentence-transformers fp32 | min cosine to fp32 | nDCG@10 (full test) |")
    print("|---|---:|---:|---:|---:|")
    for name, seconds in best.items():
        cosine = float(np.min(np.sum(_unit(vectors[name]) * _unit(reference), axis=1)))
        score = ndcg.get(name.removeprefix("drbench "))
        print(f"| {name} | {len(texts) / seconds:.1f} | {best['sentence-transformers fp32'] / seconds:.2f}x "
              f"| {cosine:.6f} | {'-' if score is None else f'{score:.4f}'} |")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _ndcg(collection: Any, encoders: dict[str, Any]) -> dict[str, float]:
    """nDCG@10 of exact search over the whole corpus, per drbench precision."""
    from harness.evaluate.metrics import evaluate
    from harness.index.faiss_index import build_index, search

    query_ids = sorted(collection.queries)
    out = {}
    for precision, encoder in encoders.items():
        docs = encoder.encode(list(collection.doc_texts))
        queries = encoder.encode([collection.queries[q] for q in query_ids])
        scores, ids, _ = search(build_index("Flat", docs, seed=0), queries, 100)
        run = {q: [(collection.doc_ids[i], float(s)) for i, s in zip(ids[r], scores[r]) if i >= 0]
               for r, q in enumerate(query_ids)}
        out[precision] = evaluate(collection.qrels, run, ["ndcg@10"]).metrics["ndcg@10"]
    return out


if __name__ == "__main__":
    main()
