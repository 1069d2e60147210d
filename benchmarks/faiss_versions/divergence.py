"""Where do two faiss versions part ways inside OPQ training?  (faiss + numpy only)

  VENV/bin/python divergence.py INPUTS OUTDIR M [NITER ...]

Trains faiss.OPQMatrix(384, M) alone on the corpus (as IndexPreTransform does before the PQ)
stopping after NITER outer iterations (0 = the initial random rotation, QR of a seed-1234
Gaussian matrix; the first t iterations of a 50-iteration run are exactly a t-iteration run),
and saves every rotation to OUTDIR/<version>-opq<M>.npz; compare them with --compare.

  python divergence.py --compare OUTDIR/A-opq48.npz OUTDIR/B-opq48.npz
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def train(inputs: Path, out: Path, m: int, niters: list[int]) -> None:
    import faiss

    faiss.omp_set_num_threads(1)
    docs = np.ascontiguousarray(np.load(inputs / "docs.npy"), dtype=np.float32)
    saved = {}
    for t in niters:
        opq = faiss.OPQMatrix(docs.shape[1], m)
        opq.niter = t
        opq.train(docs)
        saved[f"A{t}"] = faiss.vector_to_array(opq.A)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / f"{faiss.__version__}-opq{m}.npz", **saved)


def compare(a: Path, b: Path) -> None:
    x, y = np.load(a), np.load(b)
    for key in sorted(set(x) & set(y), key=lambda k: int(k[1:])):
        diff = np.abs(x[key] - y[key]).max()
        print(f"{a.stem} vs {b.stem}  niter={key[1:]:>3}: max|dA| = {diff:.3g}"
              + ("  (bit-identical)" if diff == 0 else ""))


if __name__ == "__main__":
    if sys.argv[1] == "--compare":
        compare(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        train(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), [int(t) for t in sys.argv[4:]])
