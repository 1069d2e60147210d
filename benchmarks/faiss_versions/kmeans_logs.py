"""Log faiss's own k-means progress inside OPQ training, and find where two releases part.

  VENV/bin/python kmeans_logs.py train NITER > LOG      (OPQ48 on INPUTS=/tmp/fv/inputs, 1 thread)
  python kmeans_logs.py compare LOG_A LOG_B

`compare` prints the OPQ objective per outer iteration side by side, and how many sub-quantizer
k-means runs each log has and how long they ran (faiss >= 1.14 stops k-means early once the
objective repeats, #4741; that alone changes no centroid). The k-means objectives themselves
differ in the last printed digit from the first iteration on, with identical centroids: 1.14.2+
computes these distances on the sequential SIMD path, 1.13 through BLAS (#5022).
"""

from __future__ import annotations

import re
import sys

_PAT = re.compile(r"Iteration (\d+) \((\d+) PQ iterations\)[^,]*, obj=([0-9.e+-]+)"
                  r"|Iteration (\d+) [^:]*: objective=([0-9.e+-]+) imbalance=[0-9.]+ nsplit=(\d+)")


def train(niter: int) -> None:
    import faiss
    import numpy as np

    faiss.omp_set_num_threads(1)
    docs = np.ascontiguousarray(np.load("/tmp/fv/inputs/docs.npy"), dtype=np.float32)
    opq = faiss.OPQMatrix(docs.shape[1], 48)
    opq.niter, opq.verbose = niter, True
    opq.train(docs)


def parse(path: str):
    outer, runs = [], []
    for m in _PAT.finditer(open(path).read()):
        if m.group(1) is not None:
            outer.append(float(m.group(3)))
        else:
            if int(m.group(4)) == 0:
                runs.append([])
            runs[-1].append(float(m.group(5)))
    return outer, runs


def compare(a: str, b: str) -> None:
    (oa, ra), (ob, rb) = parse(a), parse(b)
    for i, (x, y) in enumerate(zip(oa, ob)):
        print(f"OPQ iteration {i:2d}: obj {x:.6g} vs {y:.6g}" + ("" if x == y else "   <- differs"))
    print(f"k-means runs: {len(ra)} vs {len(rb)}; iterations run: {sum(map(len, ra))} vs {sum(map(len, rb))}")


if __name__ == "__main__":
    train(int(sys.argv[2])) if sys.argv[1] == "train" else compare(sys.argv[2], sys.argv[3])
