"""Corpus-encoding throughput: drbench's Encoder against sentence-transformers, same run.

Both encode the same SciFact documents with the packaged all-MiniLM-L6-v2 (mean pooling,
normalised, 256 tokens, batch 64) on the CPU; the script reports docs/s for each, the ratio,
and the largest difference between the two sets of vectors (they must agree).

    pip install -e ".[bench]"
    IR_DATASETS_HOME=... python benchmarks/bench_encode.py --docs 1000 --mirror ../shared/data/ir_datasets
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000, help="documents to encode (first N of SciFact)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--mirror", default=None)
    parser.add_argument("--repeats", type=int, default=2, help="alternating timed passes per encoder")
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from harness.data.availability import resolve_mirror
    from harness.data.collection import load_collection
    from harness.model.encoder import Encoder
    from harness.model.spec import read_model_spec, resolve_model

    texts = list(load_collection("beir/scifact/test", resolve_mirror(args.mirror, None)).doc_texts[:args.docs])
    spec = read_model_spec(resolve_model("minilm"))
    ours = Encoder(spec.path, pooling=spec.pooling, normalize=spec.normalize, max_length=spec.max_seq_length,
                   batch_size=args.batch_size)
    peer = SentenceTransformer(str(spec.path), device="cpu")
    peer.max_seq_length = spec.max_seq_length

    timings: dict[str, list[float]] = {"drbench": [], "sentence-transformers": []}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):  # alternate, so drift in machine load hits both alike
        start = time.perf_counter()
        vectors["drbench"] = ours.encode(texts)
        timings["drbench"].append(time.perf_counter() - start)
        start = time.perf_counter()
        vectors["sentence-transformers"] = peer.encode(texts, batch_size=args.batch_size, convert_to_numpy=True,
                                                       normalize_embeddings=False, show_progress_bar=False)
        timings["sentence-transformers"].append(time.perf_counter() - start)

    best = {name: min(ts) for name, ts in timings.items()}
    print(f"{len(texts)} SciFact documents, all-MiniLM-L6-v2, batch {args.batch_size}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, seconds in best.items():
        print(f"  {name:22s} {len(texts) / seconds:7.1f} docs/s  (best of {args.repeats}: {seconds:.1f}s)")
    print(f"  ratio drbench / sentence-transformers: {best['sentence-transformers'] / best['drbench']:.2f}x")
    diff = np.abs(vectors["drbench"] - vectors["sentence-transformers"]).max()
    print(f"  max |difference| between the vectors: {diff:.2e}")


if __name__ == "__main__":
    main()
