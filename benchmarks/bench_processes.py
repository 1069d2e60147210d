"""One process against N on the same machine: `drbench run --nproc N` against `drbench run`.

Runs a zero-shot recipe (the corpus encoding is the work) and a short ADORE training on it, each
into a fresh cache and store, first with one process (torch's default threads), then with N
processes (torchrun gives each cores / N threads). Prints a markdown table: corpus docs/s,
training steps/s, wall time, the ratio to one process, and whether the stored metrics agree.

    .venv/bin/python benchmarks/bench_processes.py [--collection cranfield] [--nproc 2]
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
RECIPE = """\
[experiment]
name = "processes"
seed = 13
store = "{folder}/drbench.db"
cache_dir = "{folder}/cache"

[model]
base = "minilm"
doc_max_length = 128

[data]
train = "{collection}"
eval = ["{collection}"]

[eval]
indexes = ["Flat"]
metrics = ["ndcg@10", "mrr@10", "recall@100"]
depth = 100

[compute]
device = "cpu"
precision = "{precision}"

[variant.zero-shot]
kind = "zero-shot"

[variant.adore]
kind = "adore"
index_from = "base"
max_steps = 10
batch_size = 16
warmup_steps = 1
lr = 1e-5
scale = 20.0
"""


def run(nproc: int, collection: str, precision: str, mirror: str) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-nproc{nproc}-"))
    recipe = folder / "recipe.toml"
    recipe.write_text(RECIPE.format(folder=folder, collection=collection, precision=precision))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "harness", "run", str(recipe), "--mirror", mirror,
                           "--nproc", str(nproc)], cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"nproc {nproc} failed:\n{done.stderr[-2000:]}")
    with sqlite3.connect(folder / "drbench.db") as db:
        runs = {v: (json.loads(t), n) for v, t, n in db.execute("SELECT variant, timings, n_docs FROM runs")}
        metrics = db.execute("SELECT r.variant, m.metric, m.value FROM metrics m JOIN runs r ON r.id = m.run_id "
                             "ORDER BY 1, 2").fetchall()
        steps = db.execute("SELECT count(*) FROM training_log WHERE variant = 'adore'").fetchone()[0]
    timings, n_docs = runs["zero-shot"]
    return {"docs_per_s": n_docs / timings["encode_docs"], "steps_per_s": steps / runs["adore"][0]["train"],
            "wall": wall, "metrics": metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", default="cranfield")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--mirror", default=str(REPO.parent / "shared" / "data" / "ir_datasets"))
    args = parser.parse_args()
    os.environ.setdefault("IR_DATASETS_HOME", tempfile.mkdtemp(prefix="bench-irds-"))
    print(f"load average before: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    one = run(1, args.collection, args.precision, args.mirror)
    many = run(args.nproc, args.collection, args.precision, args.mirror)
    print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    print(f"{args.collection}, MiniLM, {args.precision}, {os.cpu_count()} cores\n")
    print("| processes | corpus docs/s | ratio | ADORE steps/s | ratio | wall s |")
    print("|---|---|---|---|---|---|")
    for n, r in ((1, one), (args.nproc, many)):
        print(f"| {n} | {r['docs_per_s']:.1f} | {r['docs_per_s'] / one['docs_per_s']:.2f}x | "
              f"{r['steps_per_s']:.2f} | {r['steps_per_s'] / one['steps_per_s']:.2f}x | {r['wall']:.0f} |")
    print()
    for (variant, metric, a), (_, _, b) in zip(one["metrics"], many["metrics"]):
        print(f"{variant} {metric}: 1 process {a:.6f}, {args.nproc} processes {b:.6f} (diff {b - a:+.6f})")


if __name__ == "__main__":
    main()
