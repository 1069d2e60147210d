"""The local executor against Ray on the same machine: `drbench run RECIPE` (one process, torch's
default threads) against `drbench run RECIPE --executor ray --workers W --threads 1`.

Each runs into a fresh store and a fresh cache (nothing one trains or encodes serves the other),
timed as a whole process. `--shard I/N` times one shard of the recipe's plan (the same cut for
both), for a recipe too long to run twice in one sitting. Prints a markdown row per executor:
wall time, the ratio to the local executor, and how the stored metrics compare (identical, or the
largest difference: the two run at different thread counts, whose float sums round differently).

    .venv/bin/python benchmarks/bench_executors.py recipes/scifact_seeds.toml --shard 4/4 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(recipe: str, folder: Path, extra: list[str], mirror: str | None) -> float:
    args = [sys.executable, "-m", "harness", "run", recipe, "--store", str(folder / "drbench.db"),
            "--cache-dir", str(folder / "cache"), *extra] + (["--mirror", mirror] if mirror else [])
    start = time.perf_counter()
    with open(folder / "log.txt", "w") as log:
        subprocess.run(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - start


def _metrics(store: Path) -> dict[tuple, float]:
    with sqlite3.connect(store) as conn:
        return {tuple(row[:-1]): row[-1] for row in conn.execute(
            "SELECT variant, collection, seed, metric, value FROM metrics JOIN runs ON runs.id = run_id")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe")
    parser.add_argument("--shard", help="I/N: time this shard of the plan only")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mirror", default=os.environ.get("DRBENCH_MIRROR"))
    parser.add_argument("--keep", help="folder to keep the stores and logs in (default: a temp folder)")
    args = parser.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="bench-executors-"))
    shard = ["--shard", args.shard] if args.shard else []
    rows = {}
    for name, extra in (("local", []), ("ray", ["--executor", "ray", "--workers", str(args.workers),
                                                "--threads", "1"])):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=False)
        load = os.getloadavg()[0]
        seconds = _run(args.recipe, folder, shard + extra, args.mirror)
        rows[name] = {"seconds": seconds, "load_before": load, "metrics": _metrics(folder / "drbench.db")}
        print(f"{name}: {seconds:.0f} s (load average before: {load:.2f})", file=sys.stderr, flush=True)
    local, ray = rows["local"]["metrics"], rows["ray"]["metrics"]
    same = local.keys() == ray.keys()
    worst = max((abs(local[k] - ray[k]) for k in local if k in ray), default=0.0)
    print(f"| executor | wall | x local | runs' metrics |\n|---|---:|---:|---|")
    for name, row in rows.items():
        ratio = rows["local"]["seconds"] / row["seconds"]
        agree = "-" if name == "local" else (
            "identical" if same and worst == 0 else f"{len(ray)} of {len(local)} values, largest difference {worst:.2e}")
        print(f"| {name} | {row['seconds'] / 60:.1f} min | {ratio:.2f}x | {agree} |")
    (root / "result.json").write_text(json.dumps({k: {**v, "metrics": len(v["metrics"])} for k, v in rows.items()},
                                                 indent=1))
    print(f"stores and logs in {root}", file=sys.stderr)


if __name__ == "__main__":
    main()
