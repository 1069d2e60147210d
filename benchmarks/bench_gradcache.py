"""Gradient caching (`chunk_size`) against one whole batch: time per training step and peak memory.

STAR's step (64 queries of 32 tokens, 64 positives and 64 hard negatives of 128 tokens) on the
packaged MiniLM (dropout 0.0), fp32 on the CPU, trained with AdamW for a few steps, with and without
`chunk_size`. Each setting runs in a fresh process (peak memory is that process's
`ru_maxrss`, which sees torch's own allocations where tracemalloc does not); the settings
alternate, `--repeats` times each, and the table keeps each one's best step time and lowest peak.
Ratios are against the unchunked run of the same invocation.

    .venv/bin/python benchmarks/bench_gradcache.py [--batch 64] [--chunk 16] [--steps 3] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _texts(count: int, words: int, seed: int) -> list[str]:
    """Texts of `words` words drawn from a fixed list (each word one or two WordPiece tokens)."""
    import numpy as np

    vocab = ("retrieval dense query document negative positive model training batch memory gradient protein "
             "cell gene expression study patients results analysis effect increase level human clinical data "
             "method based using two high").split()
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(vocab, words)) for _ in range(count)]


def one(batch: int, chunk: int, steps: int, threads: int) -> dict[str, float]:
    """Train `steps` steps in this process; its step times and memory, in a dict."""
    import numpy as np
    import torch

    from harness.dense import EncoderSettings
    from harness.model.encoder import Encoder, set_dropout
    from harness.model.spec import read_model_spec, resolve_model
    from harness.train.data import TrainData
    from harness.train.loop import optimizer_for
    from harness.train.strategies.star import KIND as star, StarParams
    from harness.train.strategy import TrainInputs

    torch.set_num_threads(threads)
    spec = read_model_spec(resolve_model("minilm"))
    encoder = Encoder.from_spec(spec)
    set_dropout(encoder.model, 0.0)  # so the two settings' losses must agree (README: with dropout they need not)
    encoder.model.train()
    query_ids = tuple(f"q{i}" for i in range(batch))
    docs = tuple(_texts(2 * batch, 110, 1))  # ~128 tokens each once tokenized
    data = TrainData(query_ids=query_ids, queries=dict(zip(query_ids, _texts(batch, 24, 2))),
                     positives={q: (i,) for i, q in enumerate(query_ids)}, doc_texts=docs,
                     relevance={q: {i: 1} for i, q in enumerate(query_ids)})
    negatives = {q: np.array([batch + i]) for i, q in enumerate(query_ids)}
    params = StarParams(batch_size=batch, chunk_size=chunk, query_max_length=32, doc_max_length=128,
                        scale=20.0, lr=1e-5)
    settings = EncoderSettings(pooling=spec.pooling, normalize=spec.normalize, query_max_length=None,
                               doc_max_length=None, query_prefix="", doc_prefix="", batch_size=64)
    step = star.step(encoder, params, TrainInputs(data=data, settings=settings, seed=0, nprobe=1,
                                                  negatives=negatives))
    optimizer, _ = optimizer_for(encoder.model, params, steps)
    loaded_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds, losses = [], []
    for at in range(steps):
        torch.manual_seed(at)
        start = time.perf_counter()
        loss, _ = step(list(query_ids), np.random.default_rng(at), at)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - start)
        losses.append(float(loss.detach()))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"chunk": chunk, "step_s": min(seconds[1:] or seconds), "loaded_mib": loaded_kb / 1024,
            "peak_mib": peak_kb / 1024, "training_mib": (peak_kb - loaded_kb) / 1024, "losses": losses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # a child: this chunk size
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.batch, args.one, args.steps, args.threads)))
        return
    runs: dict[int, list[dict[str, float]]] = {0: [], args.chunk: []}
    for _ in range(args.repeats):
        for chunk in runs:  # alternate, so load on the machine hits both alike
            out = subprocess.run([sys.executable, __file__, "--one", str(chunk), "--batch", str(args.batch),
                                  "--steps", str(args.steps), "--threads", str(args.threads)],
                                 cwd=REPO, capture_output=True, text=True, check=True)
            runs[chunk].append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = {chunk: {"step_s": min(r["step_s"] for r in rs), "peak_mib": min(r["peak_mib"] for r in rs),
                    "training_mib": min(r["training_mib"] for r in rs), "loaded_mib": min(r["loaded_mib"] for r in rs),
                    "losses": rs[0]["losses"]} for chunk, rs in runs.items()}
    base = best[0]
    print(f"STAR step, batch {args.batch} (+{args.batch} positives, {args.batch} negatives), MiniLM fp32 CPU, "
          f"{args.threads} threads, best of {args.repeats} x {args.steps} steps (first step of each left out)\n")
    print("| chunk_size | s/step | vs whole batch | peak RSS MiB | training MiB (peak - loaded) | vs whole batch |")
    print("|---:|---:|---:|---:|---:|---:|")
    for chunk, b in best.items():
        print(f"| {chunk or '0 (off)'} | {b['step_s']:.2f} | {b['step_s'] / base['step_s']:.2f}x | "
              f"{b['peak_mib']:.0f} | {b['training_mib']:.0f} | {b['training_mib'] / base['training_mib']:.2f}x |")
    drift = max(abs(a - b) for a, b in zip(base["losses"], best[args.chunk]["losses"]))
    print(f"\ndropout 0.0: largest per-step loss difference, chunked vs whole: {drift:.1e} "
          f"(median step loss {statistics.median(base['losses']):.4f})")


if __name__ == "__main__":
    main()
