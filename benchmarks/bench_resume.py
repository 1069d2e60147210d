"""What a resumable corpus encode's bookkeeping costs: the same SciFact-shaped matrix (5,183 x 384
float32, batch 64, so groups of 1,024 rows) filled through `EmbeddingCache.writer` with the rows
done recorded after every group, against the same writer recording nothing (one publish at the
end); and the re-hash a resume does before it trusts a partial. No model runs: the vectors are
copied in, group by group in a shuffled (length-like) order, so the difference is the bookkeeping
alone, and it is set against the time drbench takes to encode those documents
(`--docs-per-second`, benchmarks/README.md's fp32 figure by default).

    .venv/bin/python benchmarks/bench_resume.py [--repeats 3] [--docs-per-second 20.8]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPE, BATCH = (5183, 384), 64


def fill(root: Path, vectors: np.ndarray, order: np.ndarray, resumable: bool) -> float:
    from harness.cache.partial import Schedule
    from harness.model.embedding_cache import EmbeddingCache

    shutil.rmtree(root, ignore_errors=True)
    cache = EmbeddingCache(root)
    key = cache.key(bench="resume")
    schedule = Schedule.of(BATCH, 100_000)
    start = time.perf_counter()
    with cache.writer(key, SHAPE, {}, schedule if resumable else None) as partial:
        position = 0
        for size in schedule.group_sizes(SHAPE[0]):
            rows = order[position:position + size]
            partial.vectors[rows] = vectors[rows]
            position += size
            if resumable:
                partial.commit(position, rows)
    return time.perf_counter() - start


def recheck(root: Path, vectors: np.ndarray, order: np.ndarray) -> float:
    """The re-hash a resume does: a partial with every group recorded, checked once."""
    from harness.cache.entries import Entries
    from harness.cache.partial import Partial, Schedule, partial_problem

    shutil.rmtree(root, ignore_errors=True)
    schedule = Schedule.of(BATCH, 100_000)
    partial = Partial.start(Entries(root, print), "0" * 64, SHAPE, schedule, print)
    position = 0
    for size in schedule.group_sizes(SHAPE[0]):
        rows = order[position:position + size]
        partial.vectors[rows] = vectors[rows]
        position += size
        partial.commit(position, rows)
    start = time.perf_counter()
    assert partial_problem(partial.folder, "0" * 64, SHAPE, schedule) is None
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--docs-per-second", type=float, default=20.8)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal(SHAPE, dtype=np.float32)
    order = rng.permutation(SHAPE[0])
    work = Path(tempfile.mkdtemp(prefix="bench-resume-"))
    try:
        plain = min(fill(work / "plain", vectors, order, False) for _ in range(args.repeats))
        resumable = min(fill(work / "resumable", vectors, order, True) for _ in range(args.repeats))
        check = min(recheck(work / "check", vectors, order) for _ in range(args.repeats))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    groups = -(-SHAPE[0] // 1024)
    encode = SHAPE[0] / args.docs_per_second
    extra = resumable - plain
    print(f"{SHAPE[0]:,} x {SHAPE[1]} float32, {groups} groups of 1,024 rows, best of {args.repeats}")
    print(f"| writer | ms | per group | bookkeeping / encode at {args.docs_per_second} docs/s |")
    print("|---|---:|---:|---:|")
    print(f"| one publish, nothing recorded | {plain * 1000:.1f} | - | - |")
    print(f"| rows done recorded per group | {resumable * 1000:.1f} | {extra * 1000 / groups:.2f} ms "
          f"| {extra / encode:.5f} ({extra / encode * 100:.3f}%) |")
    print(f"| resume check of the whole partial (re-hash) | {check * 1000:.1f} | - | {check / encode:.5f} |")


if __name__ == "__main__":
    main()
