"""Corpus-encoding throughput and quality: every drbench encode mode against every
sentence-transformers backend that can be installed, in the same run.

drbench's modes: torch fp32 and bf16 (`Encoder`), OpenVINO fp32, bf16 and static int8 and ONNX
Runtime fp32 and dynamic int8 (`RuntimeEncoder` over `harness.model.export`'s exports, made
before any timing; the export seconds are reported apart). The peer's: sentence-transformers'
torch fp32 and torch bf16 autocast, and its `backend="onnx"` (fp32, and
`export_dynamic_quantized_onnx_model` int8) and `backend="openvino"` (fp32 hint, its default
bf16, and static int8 through optimum-intel's OVQuantizer calibrated on ~300 of the
collection's own documents, offline) where they import.

The peer runs in worker processes (`peer_encode.py`, one per `--peer-python`; the first that can
load a mode runs it), since optimum-intel pins transformers below what drbench's venv has. All
modes encode the first `--docs` SciFact documents with the packaged all-MiniLM-L6-v2 (mean
pooling, normalised, 256 tokens, batch 64, torch's thread count everywhere), timed round-robin
over all modes of both processes so that drift in machine load hits every mode alike, best of
`--repeats`. Per mode: docs/s, the ratio to sentence-transformers torch fp32, the smallest cosine
between a vector and its sentence-transformers fp32 twin, and with `--ndcg` nDCG@10 of each
drbench mode on beir/scifact/test (whole corpus and test queries, exact Flat search; the peer's
too with `--ndcg-peer`). "in gate": |nDCG@10 - drbench fp32's| <= 0.002 and min cosine >= 0.99.

    pip install -e ".[bench]"
    python benchmarks/bench_encode.py --docs 500 --repeats 2 --ndcg --mirror ../shared/data/ir_datasets \\
        --peer-python ../peer-venv/bin/python --peer-python ../peer-onnx-venv/bin/python --json encode.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

DRBENCH_MODES = [("torch", "fp32"), ("torch", "bf16"), ("openvino", "fp32"), ("openvino", "bf16"),
                 ("openvino", "int8"), ("onnx", "fp32"), ("onnx", "int8")]
PEER_MODES = ["torch fp32", "torch bf16 autocast", "onnx fp32", "onnx int8", "openvino fp32", "openvino bf16",
              "openvino int8"]
GATE_NDCG, GATE_COSINE = 0.002, 0.99
WORKER = Path(__file__).with_name("peer_encode.py")


@dataclass
class Mode:
    """One timed encoder: its name, how it encodes a list of texts (returning vectors and the
    seconds the encode itself took), and the seconds its export and load took."""

    name: str
    encode: Callable[[list[str]], tuple[np.ndarray, float]]
    setup_seconds: float
    ours: bool
    reference: bool = False
    timings: list[float] = field(default_factory=list)
    vectors: np.ndarray | None = None
    ndcg: float | None = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=500, help="documents timed (first N of SciFact)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--mirror", default=None)
    parser.add_argument("--repeats", type=int, default=2, help="round-robin timed passes per mode")
    parser.add_argument("--ndcg", action="store_true", help="also nDCG@10 of each drbench mode on the full test")
    parser.add_argument("--ndcg-peer", action="store_true", help="nDCG@10 of each sentence-transformers mode")
    parser.add_argument("--modes", default=None, help="only these modes of either side, comma-separated (e.g. "
                        "'openvino int8,torch bf16'); torch fp32 always runs, the references")
    parser.add_argument("--peer-python", action="append", default=None,
                        help="a Python with sentence-transformers (repeatable; default: this one)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="exports go here (default: a fresh temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the table here as JSON")
    args = parser.parse_args()

    import torch

    from harness.data.availability import resolve_mirror
    from harness.data.collection import load_collection
    from harness.model.spec import read_model_spec, resolve_model

    collection = load_collection("beir/scifact/test", resolve_mirror(args.mirror, None))
    texts = list(collection.doc_texts[:args.docs])
    spec = read_model_spec(resolve_model("minilm"))
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="bench-encode-") as tmp:
        work = Path(tmp)
        cache_dir = args.cache_dir or work / "cache"
        peers = [Peer(python, work / f"peer{i}") for i, python in enumerate(args.peer_python or [sys.executable])]
        try:
            left_out: dict[str, str] = {}
            wanted = ({"torch fp32", *(m.strip() for m in args.modes.split(","))} if args.modes
                      else {*PEER_MODES, *(f"{b} {p}" for b, p in DRBENCH_MODES)})
            modes = _peer_modes(peers, spec, collection, texts, args, threads, left_out, wanted)
            modes += _drbench_modes(collection, cache_dir, args.batch_size, wanted)
            for _ in range(args.repeats):
                for mode in modes:
                    mode.vectors, seconds = mode.encode(texts)
                    mode.timings.append(seconds)
            versions = {"python": platform.python_version(), "torch": torch.__version__, **_versions(),
                        **{f"peer {i}": peer.versions for i, peer in enumerate(peers)}}
            _write(modes, len(texts), args, threads, versions, left_out, sys.stderr)  # the timings, before nDCG
            if args.ndcg or args.ndcg_peer:
                _ndcgs(modes, collection, args.ndcg, args.ndcg_peer)
        finally:
            for peer in peers:
                peer.close()
    _write(modes, len(texts), args, threads, versions, left_out, sys.stdout)


def _write(modes: list[Mode], count: int, args: argparse.Namespace, threads: int, versions: dict[str, Any],
           left_out: dict[str, str], stream: Any) -> None:
    report = _report(modes, count, args, threads, versions, left_out)
    print(_markdown(report), file=stream, flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def _ndcgs(modes: list[Mode], collection: Any, ours: bool, peer: bool) -> None:
    """nDCG@10 of drbench's modes (with `ours`) and the peer's (with `peer`): drbench torch fp32
    first (the gate's reference), then the fastest first; none for a mode whose cosine already
    fails the gate."""
    reference = next((m for m in modes if m.reference), modes[0])
    chosen = [m for m in modes if (ours if m.ours else peer) and _min_cosine(m, reference) >= GATE_COSINE]
    chosen.sort(key=lambda m: (m.name != "drbench torch fp32", min(m.timings)))
    for mode in chosen:
        start = time.perf_counter()
        mode.ndcg = _ndcg(collection, mode.encode)
        print(f"nDCG@10 {mode.name}: {mode.ndcg:.4f} ({time.perf_counter() - start:.0f}s)", file=sys.stderr, flush=True)


def _min_cosine(mode: Mode, reference: Mode) -> float:
    """The smallest cosine between a vector of `mode` and its twin of `reference`."""
    assert mode.vectors is not None and reference.vectors is not None
    return float(np.min(np.sum(_unit(mode.vectors) * _unit(reference.vectors), axis=1)))


class Peer:
    """A `peer_encode.py` worker in another Python: JSON commands on its stdin, one JSON answer
    a line on its stdout, vectors through .npy files in `work`."""

    def __init__(self, python: str, work: Path):
        work.mkdir(parents=True)
        self.python, self.work, self.count = python, work, 0
        self.process = subprocess.Popen([python, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, bufsize=1)
        self.versions: dict[str, str] = self.ask({"op": "hello"})["versions"]
        self._texts: dict[int, str] = {}

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.python} {WORKER.name} died (its stderr says why)")
        return json.loads(line)

    def texts_file(self, texts: list[str]) -> str:
        """A file holding `texts` (written once per list; the worker reads it once too)."""
        if id(texts) not in self._texts:
            path = self.work / f"texts{len(self._texts)}.json"
            path.write_text(json.dumps(texts))
            self._texts[id(texts)] = str(path)
        return self._texts[id(texts)]

    def encoder(self, mode: str) -> Callable[[list[str]], tuple[np.ndarray, float]]:
        def encode(texts: list[str]) -> tuple[np.ndarray, float]:
            self.count += 1
            out = self.work / f"vectors{self.count}.npy"
            answer = self.ask({"op": "encode", "mode": mode, "texts": self.texts_file(texts), "out": str(out)})
            vectors = np.load(out)
            out.unlink()
            return vectors, answer["seconds"]
        return encode

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(timeout=60)


def _peer_modes(peers: list[Peer], spec: Any, collection: Any, texts: list[str], args: argparse.Namespace,
                threads: int, left_out: dict[str, str], wanted: set[str]) -> list[Mode]:
    """The sentence-transformers modes some worker can load (exports and quantisation done
    now); why each of the others cannot, in `left_out`."""
    from harness.model.export import Calibration

    calibration = Calibration(collection.docs_id, collection.doc_texts)
    samples = [collection.doc_texts[i] for i in calibration.rows()]  # drbench's int8 calibrates on these too
    modes = []
    for mode in (m for m in PEER_MODES if m in wanted):
        name, reasons = f"sentence-transformers {mode}", []
        for peer in peers:
            answer = peer.ask({"op": "load", "mode": mode, "path": str(spec.path), "threads": threads,
                               "batch_size": args.batch_size, "max_length": spec.max_seq_length,
                               "calibration": peer.texts_file(samples)})
            if answer["ok"]:
                modes.append(Mode(f"{answer['version']} {mode}", peer.encoder(mode), answer["seconds"], ours=False,
                                  reference=mode == "torch fp32"))
                break
            reasons.append(f"{peer.python}: {answer['error']}")
        else:
            left_out[name] = "; ".join(reasons)
            print(f"left out {name}: {left_out[name]}", file=sys.stderr)
    return modes


def _drbench_modes(collection: Any, cache_dir: Path, batch_size: int, wanted: set[str]) -> list[Mode]:
    """drbench's modes, each through `DenseModel` as a recipe opens it (exports made now)."""
    from harness.dense import DenseModel
    from harness.model.compute import Compute
    from harness.recipe.model import ModelConfig

    modes = []
    for backend, precision in (m for m in DRBENCH_MODES if f"{m[0]} {m[1]}" in wanted):
        model = DenseModel.open("minilm", ModelConfig(batch_size=batch_size), Compute("cpu", precision, backend=backend))
        start = time.perf_counter()
        encoder = model._encoder("doc", collection, cache_dir, lambda line: print(line, file=sys.stderr))
        modes.append(Mode(f"drbench {backend} {precision}", _timed(encoder.encode), time.perf_counter() - start,
                          ours=True))
    return modes


def _timed(encode: Callable[[list[str]], np.ndarray]) -> Callable[[list[str]], tuple[np.ndarray, float]]:
    def timed(texts: list[str]) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        vectors = np.asarray(encode(texts), dtype=np.float32)
        return vectors, time.perf_counter() - start
    return timed


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _ndcg(collection: Any, encode: Callable[[list[str]], tuple[np.ndarray, float]]) -> float:
    """nDCG@10 of exact search over the whole corpus with `encode`'s vectors."""
    from harness.evaluate.metrics import evaluate
    from harness.index.faiss_index import build_index, search

    query_ids = sorted(collection.queries)
    docs, _ = encode(list(collection.doc_texts))
    queries, _ = encode([collection.queries[q] for q in query_ids])
    scores, ids, _ = search(build_index("Flat", docs, seed=0), queries, 100)
    run = {q: [(collection.doc_ids[i], float(s)) for i, s in zip(ids[r], scores[r]) if i >= 0]
           for r, q in enumerate(query_ids)}
    return evaluate(collection.qrels, run, ["ndcg@10"]).metrics["ndcg@10"]


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("transformers", "openvino", "nncf", "onnxruntime", "onnx", "faiss-cpu"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            pass
    return out


def _report(modes: list[Mode], count: int, args: argparse.Namespace, threads: int, versions: dict[str, Any],
            left_out: dict[str, str]) -> dict[str, Any]:
    """The table's rows and its verdict: drbench's fastest mode in the gate against the peer's."""
    ours = next(m for m in modes if m.name == "drbench torch fp32")
    reference = next((m for m in modes if m.reference), ours)
    fp32_ndcg = ours.ndcg
    rows = []
    for mode in modes:
        cosine = _min_cosine(mode, reference)
        best = min(mode.timings)
        if mode.ndcg is not None and fp32_ndcg is not None:
            gate: bool | None = abs(mode.ndcg - fp32_ndcg) <= GATE_NDCG and cosine >= GATE_COSINE
        else:
            gate = None if cosine >= GATE_COSINE else False  # None: the cosine passes, nDCG not measured
        rows.append({"mode": mode.name, "drbench": mode.ours, "docs_per_s": count / best,
                     "vs_reference": min(reference.timings) / best, "min_cosine": cosine, "ndcg@10": mode.ndcg,
                     "in_gate": gate, "setup_seconds": mode.setup_seconds, "seconds": mode.timings})
    fastest = {side: max((r for r in rows if r["drbench"] == ours and r["in_gate"] is not False),
                         key=lambda r: r["docs_per_s"], default=None)
               for side, ours in (("drbench", True), ("peer", False))}
    verdict: dict[str, Any] = {side: (r["mode"] if r else None) for side, r in fastest.items()}
    if fastest["drbench"] and fastest["peer"]:
        ratio = fastest["drbench"]["docs_per_s"] / fastest["peer"]["docs_per_s"]
        verdict.update(ratio=ratio, drbench_at_least_as_fast=ratio >= 1.0)
    return {"docs": count, "batch_size": args.batch_size, "max_length": 256, "threads": threads,
            "repeats": args.repeats, "reference": reference.name, "machine": platform.processor() or platform.machine(),
            "versions": versions, "left_out": left_out, "rows": rows, "fastest_in_gate": verdict}


def _markdown(report: dict[str, Any]) -> str:
    lines = [f"{report['docs']} SciFact documents, all-MiniLM-L6-v2, batch {report['batch_size']}, "
             f"{report['threads']} threads, best of {report['repeats']}; ratio and cosine against {report['reference']}",
             "", "| encoder | docs/s | vs ST torch fp32 | min cosine to ST fp32 | nDCG@10 (full test) | in gate "
             "| export + load s |", "|---|---:|---:|---:|---:|:---:|---:|"]
    for r in report["rows"]:
        score = "-" if r["ndcg@10"] is None else f"{r['ndcg@10']:.4f}"
        gate = {True: "yes", False: "no", None: "yes (cosine; nDCG not run)"}[r["in_gate"]]
        lines.append(f"| {r['mode']} | {r['docs_per_s']:.1f} | {r['vs_reference']:.2f}x | {r['min_cosine']:.6f} "
                     f"| {score} | {gate} | {r['setup_seconds']:.1f} |")
    verdict = report["fastest_in_gate"]
    lines.append("")
    lines.append(f"fastest in the gate: {verdict['drbench']} against {verdict['peer']}"
                 + (f"; drbench/peer = {verdict['ratio']:.2f}x "
                    f"({'at least as fast' if verdict['drbench_at_least_as_fast'] else 'slower'})"
                    if "ratio" in verdict else ""))
    for name, why in report["left_out"].items():
        lines.append(f"left out: {name}: {why}")
    lines.append(f"versions: {json.dumps(report['versions'])}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
