"""What checking a cache manifest costs, against what the checked artifact costs to load.

Peers, in the same run: loading the packaged all-MiniLM-L6-v2 with transformers
(`AutoModel.from_pretrained`) and `np.load` of a SciFact-sized embedding matrix (5,183 x 384
float32). For each: writing the manifest (hashing every file), the first check in a process
(sizes, then sha256), a repeated check in the same process (hashes are memoised per path,
size, mtime and inode) and the load itself; ratios are check / load.

    .venv/bin/python benchmarks/bench_cache.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np


def best(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from transformers import AutoModel

    from harness.cache import manifest
    from harness.model.spec import resolve_model

    work = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    model = shutil.copytree(resolve_model("minilm"), work / "model")
    vectors = work / "vectors"
    vectors.mkdir()
    np.save(vectors / "embeddings.npy", np.random.default_rng(0).standard_normal((5183, 384), dtype=np.float32))

    rows = []
    for name, folder, load in (
            ("all-MiniLM-L6-v2 folder", model, lambda: AutoModel.from_pretrained(model, use_safetensors=True)),
            ("SciFact embeddings", vectors, lambda: np.load(vectors / "embeddings.npy"))):
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        write = best(lambda: (manifest._HASHED.clear(), manifest.write_manifest(folder, key="k", produced_by={})),
                     args.repeats)
        first = best(lambda: (manifest._HASHED.clear(), manifest.damage(folder, "k")), args.repeats)
        again = best(lambda: manifest.damage(folder, "k"), args.repeats)
        loaded = best(load, args.repeats)
        rows.append((name, size, write, first, again, loaded))
    shutil.rmtree(work)

    print(f"| artifact | MB | write manifest | first check | repeated check | load (peer) | first check / load |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, size, write, first, again, loaded in rows:
        print(f"| {name} | {size / 1e6:.1f} | {write * 1e3:.0f} ms | {first * 1e3:.0f} ms | {again * 1e3:.2f} ms "
              f"| {loaded * 1e3:.0f} ms | {first / loaded:.2f}x |")


if __name__ == "__main__":
    main()
