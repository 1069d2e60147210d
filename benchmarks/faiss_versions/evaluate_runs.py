"""nDCG@10 of every saved run (main venv: drbench's ranx evaluate), and whether its codes equal a
reference version's.

  IR_DATASETS_HOME=/tmp/fv/irds .venv/bin/python benchmarks/faiss_versions/evaluate_runs.py \
      INPUTS OUTDIR [--ref 1.15.1] [--flat]

Two nDCG@10 columns: `faiss order` (ranked as faiss returns them: what drbench stored before
commit 9615392, i.e. when benchmarks/README.md was written) and `trec order` (ties by doc id
descending, what drbench evaluates since). --flat adds the exact Flat run as a check on the inputs.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from harness.data.collection import load_collection
from harness.evaluate.metrics import evaluate
from harness.evaluate.ties import trec_order

MIRROR = Path("/work/shared/data/ir_datasets")


def ndcg(qrels, query_ids, doc_ids, ids, scores, tie_break):
    results = {q: [(doc_ids[i], float(s)) for i, s in zip(ids[r], scores[r]) if i >= 0]
               for r, q in enumerate(query_ids)}
    if tie_break:
        results = {q: trec_order(ranked) for q, ranked in results.items()}
    return evaluate(qrels, results, ["ndcg@10"]).metrics["ndcg@10"]


def version_key(name):
    return tuple(int(x) for x in re.findall(r"\d+", name.split("-")[0]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("inputs", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--ref", default="1.15.1")
    ap.add_argument("--flat", action="store_true")
    args = ap.parse_args()
    qrels = load_collection("beir/scifact/test", MIRROR, with_docs=False).qrels
    doc_ids = json.loads((args.inputs / "doc_ids.json").read_text())
    query_ids = json.loads((args.inputs / "query_ids.json").read_text())
    if args.flat:
        import faiss
        docs, queries = np.load(args.inputs / "docs.npy"), np.load(args.inputs / "queries.npy")
        index = faiss.IndexFlatIP(docs.shape[1])
        index.add(docs)
        scores, ids = index.search(queries, 1000)
        print(f"Flat: faiss order {ndcg(qrels, query_ids, doc_ids, ids, scores, False):.4f}  "
              f"trec order {ndcg(qrels, query_ids, doc_ids, ids, scores, True):.4f}")
    rows = []
    for npz in sorted(args.out.glob("*.npz"), key=lambda p: (p.stem.split("-", 1)[1], version_key(p.stem))):
        version, mode, factory = npz.stem.split("-", 2)
        run = np.load(npz)
        ref = args.out / f"{args.ref}-{mode}-{factory}.npz"
        same = "-"
        if ref.exists() and ref != npz:
            r = np.load(ref)
            same = ("identical" if np.array_equal(run["codes"], r["codes"])
                    else f"{(run['codes'] != r['codes']).any(axis=1).mean():.0%} docs differ")
            same += "; A equal" if np.array_equal(run["opq_A"], r["opq_A"]) else \
                f"; |dA|max {np.abs(run['opq_A'] - r['opq_A']).max():.2g}"
        row = {"faiss": version, "mode": mode, "factory": factory.replace("_", ","),
               "ndcg@10 faiss order": round(ndcg(qrels, query_ids, doc_ids, run["ids"], run["scores"], False), 4),
               "ndcg@10 trec order": round(ndcg(qrels, query_ids, doc_ids, run["ids"], run["scores"], True), 4),
               f"vs {args.ref}": same}
        rows.append(row)
        print(" | ".join(str(v) for v in row.values()))
    (args.out / "summary.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
